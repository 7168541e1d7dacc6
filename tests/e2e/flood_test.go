package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFaultEventFlood: tor sends events faster than the script's handler
// takes them, for as long as the test wants (DEBUG log lines, which the
// test's own GETINFOs keep coming), so that torscript's event queue never
// runs out. The script's timer still fires on time, and SIGTERM still ends
// the run at once, restoring __LeaveStreamsUnattached.
func TestFaultEventFlood(t *testing.T) {
	ctx, _ := faultBegin(t)
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := faultStart(ctx, t, `
n = [0]
def slow(e):
    x = 0
    for i in range(3000):
        x += i
    n[0] += 1
tor.on("debug", slow)
def tick():
    print("tick", n[0])
tor.every(0.2, tick)
tor.policy(lambda s: None)
`, "--metrics", metrics)
	// What makes tor log at debug level: commands, as fast as tor answers.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		c := dial(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.GetInfo(ctx, "version"); err != nil {
					return
				}
			}
		}()
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	// The backlog builds: the handler falls behind and the queue stays
	// long, sampled every 100 ms; the ticks go on.
	time.Sleep(2 * time.Second)
	before := strings.Count(p.stdout.String(), "tick")
	least := -1.0
	for range 30 {
		d := queueDepth(t, metrics)
		if least < 0 || d < least {
			least = d
		}
		time.Sleep(100 * time.Millisecond)
	}
	ticks := strings.Count(p.stdout.String(), "tick") - before
	t.Logf("over 3 s of flood: %d ticks (about 15 due), the event queue at least %.0f long; last: %s", ticks, least, lastLine(strings.TrimSpace(p.stdout.String())))
	if least < 100 {
		t.Fatalf("the event queue fell to %.0f during the flood: no backlog, the test proves nothing", least)
	}
	if ticks < 8 {
		t.Errorf("the timer (every 0.2 s) fired %d times in 3 s of flood", ticks)
	}
	code, took := p.term(t)
	if code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
	if took > 3*time.Second {
		t.Errorf("torscript took %v to exit after SIGTERM, during the flood", took)
	}
	t.Logf("torscript exited %d, %v after SIGTERM", code, took.Round(time.Millisecond))
	checkLeftBehind(t, dial(t), "0")
}

// queueDepth reads torscript_event_queue_depth from torscript's metrics.
func queueDepth(t *testing.T, addr string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		// torscript_event_queue_depth{tor_instance="..."} 123
		if rest, ok := strings.CutPrefix(line, "torscript_event_queue_depth"); ok && (rest[0] == '{' || rest[0] == ' ') {
			d, err := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("metrics: %q: %v", line, err)
			}
			return d
		}
	}
	t.Fatalf("metrics: no torscript_event_queue_depth in:\n%s", b)
	return 0
}
