package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowDebug is a script's handler on DEBUG events far slower than tor
// sends them under debugLoad.
const slowDebug = `
n = [0]
def slow(e):
    x = 0
    for i in range(3000):
        x += i
    n[0] += 1
tor.on("debug", slow)
`

// debugLoad makes tor log at debug level as fast as it can: commands on
// four connections of the test's, as fast as tor answers. It returns the
// function that stops them.
func debugLoad(ctx context.Context, t *testing.T) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		c := dial(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := c.GetInfo(ctx, "version"); err != nil {
					return
				}
			}
		}()
	}
	return func() {
		close(done)
		wg.Wait()
	}
}

// TestFaultEventFlood: tor sends events faster than the script's handler
// takes them, for as long as the test wants (DEBUG log lines, which the
// test's own GETINFOs keep coming), so that torscript's event queue never
// runs out. The script's timer still fires on time, and SIGTERM still ends
// the run at once. (No policy: with one, the loop would skip the DEBUG
// handlers once behind, TestFaultEventFloodStream.)
func TestFaultEventFlood(t *testing.T) {
	ctx, _ := faultBegin(t)
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	script := writeScript(t, t.TempDir(), "flood.star", slowDebug+`
def tick():
    print("tick", n[0])
tor.every(0.2, tick)
print("ready")
`)
	p := startScript(t, cli(ctx, t, "run", "--metrics", metrics, script))
	p.waitOut(t, "ready", 1, 30*time.Second)
	defer debugLoad(ctx, t)()
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

// TestFaultEventFloodStream: a policy, a handler on DEBUG events far
// slower than tor sends them, and curl's stream, which comes behind a
// backlog of thousands of DEBUG events. Once the loop has been over a
// second behind tor, it skips the DEBUG handlers (counted in the metrics)
// and gets to the stream: curl completes within seconds, where the
// handler would have held it for as long as the backlog takes. SIGTERM
// during the flood restores __LeaveStreamsUnattached.
func TestFaultEventFloodStream(t *testing.T) {
	ctx, ev := faultBegin(t)
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := faultStart(ctx, t, slowDebug+`
tor.policy(lambda s: None)
`, "--metrics", metrics)
	port := httpServer(t, "through the flood")
	defer debugLoad(ctx, t)()
	time.Sleep(2 * time.Second) // the backlog builds
	if d := queueDepth(t, metrics); d < 100 {
		t.Logf("the event queue is %.0f long before curl", d)
	}
	r := <-faultCurl(ctx, t, port)
	skipped := metric(t, metrics, "torscript_handler_calls_skipped_total")
	t.Logf("%v; %.0f DEBUG handler calls skipped", r, skipped)
	if r.err != nil || r.code != 200 || r.body != "through the flood" {
		t.Fatalf("%v; want HTTP 200", r)
	}
	if r.took > 5*time.Second {
		t.Errorf("curl took %v behind a backlog of DEBUG events", r.took)
	}
	if skipped == 0 {
		t.Errorf("no DEBUG handler call was skipped: the backlog the test wants did not build")
	}
	ev.succeededOn(t, port, "")
	code, took := p.term(t)
	if code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
	t.Logf("torscript exited %d, %v after SIGTERM", code, took.Round(time.Millisecond))
	checkLeftBehind(t, dial(t), "0")
}

// queueDepth reads torscript_event_queue_depth from torscript's metrics.
func queueDepth(t *testing.T, addr string) float64 {
	t.Helper()
	return metric(t, addr, "torscript_event_queue_depth")
}

// metric reads the value of a metric (without labels but tor_instance)
// from torscript's metrics.
func metric(t *testing.T, addr, name string) float64 {
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
		if rest, ok := strings.CutPrefix(line, name); ok && (rest[0] == '{' || rest[0] == ' ') {
			d, err := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("metrics: %q: %v", line, err)
			}
			return d
		}
	}
	t.Fatalf("metrics: no %s in:\n%s", name, b)
	return 0
}
