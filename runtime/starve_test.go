package runtime

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
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

// skipUnderRace skips a test that needs a handler to fall behind a flood
// by a backlog it works off in seconds: under the race detector the
// interpreter is so slow that the backlog takes minutes, and the simulated
// tor's writes (5 s each) time out behind it.
func skipUnderRace(t *testing.T) {
	if raceDetector {
		t.Skip("a flood's timing; the race detector makes the handler too slow to work off its backlog")
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

// slowHandler is a handler on BW far slower than a flood's events come:
// the script of the flood tests, before their own.
var slowHandler = slowBW(300)

// slowBW is a script whose handler on BW takes steps steps an event and
// counts the events in n[0].
func slowBW(steps int) string {
	return fmt.Sprintf(`
n = [0]
def slow(e):
    x = 0
    for i in range(%d):
        x += i
    n[0] += 1
tor.on("bw", slow)
`, steps)
}

// startSlow runs slowHandler and then src (skipped under the race
// detector).
func startSlow(t *testing.T, src string) (*testTor, *scriptRun) {
	t.Helper()
	skipUnderRace(t)
	f := newTestTor(t)
	f.SetConnOptions(ctl.Options{Logger: discardLogger()})
	return f, startScript(t, f, slowHandler+src, Options{MaxSteps: 1e12})
}

// TestTimerFiresDuringAFlood: a timer is due while a slow handler has a
// backlog of events that never runs out; it fires on time, not after the
// flood.
func TestTimerFiresDuringAFlood(t *testing.T) {
	t.Parallel()
	f, r := startSlow(t, `
def arm(e):
    if n[0] == 3000: # the backlog is there
        tor.after(0.05, tick)
        print("armed")
def tick():
    print("tick after", n[0])
tor.on("bw", arm)
print("ready")
`)
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
	f, r := startSlow(t, `print("ready")`)
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
	f, r := startSlow(t, `
def hold(s):
    print("held", s.id)
    return tor.hold()
tor.policy(hold, timeout="300ms")
`)
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

// TestStopPolicyDuringAFloodKeepsOrder: the prompt removes the policy
// while a slow handler is in the middle of a long batch of events; the
// removal takes the events queued behind that batch, and the handler still
// sees every event once, in tor's order.
func TestStopPolicyDuringAFloodKeepsOrder(t *testing.T) {
	t.Parallel()
	skipUnderRace(t)
	const n = 6000
	f := newTestTor(t)
	f.SetConnOptions(ctl.Options{Logger: discardLogger()})
	r := New(Options{Connect: f.Connect, Logger: discardLogger(), Stdout: io.Discard, MaxSteps: 1e12})
	s, err := r.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	path := t.TempDir() + "/flood.star"
	if err := os.WriteFile(path, []byte(`
seen = []
def slow(c):
    x = 0
    for i in range(300):
        x += i
    seen.append(int(c.id))
tor.on("circ", slow)
tor.policy(lambda s: None)
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var seen *starlark.List
	if err := s.Do(func(th *starlark.Thread, g starlark.StringDict) error {
		if _, err := s.Load(th, path); err != nil {
			return err
		}
		seen = g["seen"].(*starlark.List)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.WaitCommand("GETINFO stream-status")
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("CIRC %d LAUNCHED", i+1)
	}
	sent := make(chan error, 1)
	go func() {
		for i := 0; i < n; i += 500 {
			if err := f.Tor.Event(lines[i : i+500]...); err != nil {
				sent <- fmt.Errorf("simtor: sending events %d to %d: %w", i+1, i+500, err)
				return
			}
		}
		sent <- nil
	}()
	// Once the handler is well into the events, and while they keep
	// coming, the prompt removes the policy.
	// Looked at every 20 ms: each look is a task that runs between two
	// events.
	seenLen := func() int {
		var k int
		s.Do(func(*starlark.Thread, starlark.StringDict) error { k = seen.Len(); return nil })
		return k
	}
	for deadline := time.Now().Add(60 * time.Second); seenLen() < 500; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the handler saw %d events in 60 s", seenLen())
		}
	}
	var at int
	if err := s.Do(func(*starlark.Thread, starlark.StringDict) error {
		at = seen.Len()
		if !s.StopPolicy() {
			return fmt.Errorf("no policy to stop")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if at >= n-500 {
		t.Fatalf("the policy was removed after %d of %d events: too late to test the order", at, n)
	}
	var got []int
	defer func() {
		gap := -1
		for i, k := range got {
			if k != i+1 {
				gap = i
				break
			}
		}
		t.Logf("stopped at %d; %d seen; first out of place at %d", at, len(got), gap)
		if gap >= 0 {
			t.Logf("around it: %v", got[max(gap-3, 0):min(gap+5, len(got))])
		}
	}()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); seenLen() < n && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	s.Do(func(*starlark.Thread, starlark.StringDict) error {
		for i := range seen.Len() {
			k, _ := starlark.AsInt32(seen.Index(i))
			got = append(got, k)
		}
		return nil
	})
	for i, k := range got {
		if k != i+1 {
			t.Fatalf("event %d seen as circuit %d (the policy was removed after %d events): out of order", i, k, at)
		}
	}
	if len(got) != n {
		t.Fatalf("%d events seen, want %d", len(got), n)
	}
}

// TestStreamNotHeldBehindTelemetry: a handler on BW events far slower than
// they come, a policy, and a client stream's NEW event behind a backlog of
// BW events that would take the handler many seconds. Once the loop has
// been over a second behind tor, it skips the BW handlers (counted) and
// the stream is decided within seconds, not after the backlog; the
// handler still ran for the events before.
func TestStreamNotHeldBehindTelemetry(t *testing.T) {
	t.Parallel()
	skipUnderRace(t)
	f := newTestTor(t)
	f.SetConnOptions(ctl.Options{Logger: discardLogger()})
	r := startScript(t, f, slowBW(3000)+`
tor.policy(lambda s: None)
`, Options{MaxSteps: 1e12})
	r.started()
	end := startFlood(f)
	defer end()
	time.Sleep(500 * time.Millisecond) // the backlog is there
	sent := time.Now()
	f.Event(stream7New) // behind the backlog
	c, ok := f.Tor.WaitCommand("ATTACHSTREAM 7 0", 1, 60*time.Second)
	if !ok {
		t.Fatalf("no ATTACHSTREAM 7 0; log:\n%s", r.log.String())
	}
	took := c.At.Sub(sent)
	t.Logf("the stream behind the backlog was decided after %v; %d BW handler calls skipped", took.Round(time.Millisecond), r.rt.skipped.Load())
	if took > 4*time.Second {
		t.Errorf("a stream behind a backlog of telemetry was decided after %v", took)
	}
	if r.rt.skipped.Load() == 0 {
		t.Errorf("no handler call was skipped")
	}
	if !strings.Contains(r.log.String(), "handlers of high-volume events are skipped") {
		t.Errorf("the skipping was not logged; log:\n%s", r.log.String())
	}
}
