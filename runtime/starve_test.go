package runtime

import (
	"fmt"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl"
)

// flood keeps torscript's event queue from ever running empty until stop
// is closed: BW events, far more than a slow handler takes, in writes of
// 20,000 (each waits while torscript's reader waits for the handler). It
// returns when stop is closed and its last write is done, or a write
// failed (torscript ended).
func flood(f *testTor, stop <-chan struct{}) {
	lines := make([]string, 20000)
	for i := range lines {
		lines[i] = fmt.Sprintf("BW %d 0", i)
	}
	for {
		select {
		case <-stop:
			return
		default:
		}
		if f.Tor.Event(lines...) != nil {
			return
		}
	}
}

// startFlood starts flood and returns the function that ends it and
// waits for its last write.
func startFlood(f *testTor) (end func()) {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		flood(f, stop)
	}()
	return func() {
		close(stop)
		<-done
	}
}

// TestTimerFiresDuringAFlood: a timer is due while a slow handler has a
// backlog of events that never runs out; it fires on time, not after the
// flood.
func TestTimerFiresDuringAFlood(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	f.SetConnOptions(ctl.Options{Logger: discardLogger()})
	r := startScript(t, f, `
n = [0]
def slow(e):
    x = 0
    for i in range(300):
        x += i
    n[0] += 1
    if n[0] == 3000: # the backlog is there
        tor.after(0.05, tick)
        print("armed")
def tick():
    print("tick after", n[0])
tor.on("bw", slow)
print("ready")
`, Options{MaxSteps: 1e12})
	r.waitOut("ready")
	end := startFlood(f)
	defer end()
	r.waitOutWithin("armed", 20*time.Second)
	start := time.Now()
	r.waitOutWithin("tick after", 20*time.Second)
	if took := time.Since(start); took > time.Second {
		t.Errorf("the timer, due in 50 ms, fired after %v, during a flood", took)
	}
}

// TestStopDuringAFlood: SIGTERM (the context's end) while a slow handler
// has a backlog that never runs out ends the run promptly.
func TestStopDuringAFlood(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	f.SetConnOptions(ctl.Options{Logger: discardLogger()})
	r := startScript(t, f, `
def slow(e):
    x = 0
    for i in range(300):
        x += i
tor.on("bw", slow)
print("ready")
`, Options{MaxSteps: 1e12})
	r.waitOut("ready")
	end := startFlood(f)
	defer end()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	r.cancel()
	r.wait(10 * time.Second)
	if took := time.Since(start); took > time.Second {
		t.Errorf("Run returned %v after its context ended, during a flood", took)
	}
}

// TestHoldTimeoutDuringAFlood: a held stream nobody attaches gets on_error
// after the policy's timeout even while a slow handler has a backlog of
// events that never runs out: the flood does not leave it hanging.
func TestHoldTimeoutDuringAFlood(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	f.SetConnOptions(ctl.Options{Logger: discardLogger()})
	r := startScript(t, f, `
def slow(e):
    x = 0
    for i in range(300):
        x += i
tor.on("bw", slow)
def hold(s):
    print("held", s.id)
    return tor.hold()
tor.policy(hold, timeout="300ms")
`, Options{MaxSteps: 1e12})
	r.started()
	end := startFlood(f)
	defer end()
	time.Sleep(500 * time.Millisecond) // the backlog is there
	f.Event(stream7New)                // behind the backlog: it waits its turn
	r.waitOutWithin("held 7", 20*time.Second)
	held := time.Now()
	c, ok := f.Tor.WaitCommand("ATTACHSTREAM 7 0", 1, 10*time.Second)
	if !ok {
		t.Fatalf("no ATTACHSTREAM 7 0; log:\n%s", r.log.String())
	}
	if d := c.At.Sub(held); d > 1200*time.Millisecond {
		t.Errorf("on_error applied %v after the policy held the stream, with a timeout of 300 ms, during a flood", d)
	}
}
