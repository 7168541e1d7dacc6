package runtime

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/ctl/ctltest"
)

// BenchmarkHandlerEvents measures events through Starlark handlers: CIRC,
// STREAM, BW and ORCONN events from the simulated tor, each calling a
// handler that counts it. It reports events/s end to end (parsing,
// queueing, dispatch, the Starlark call).
func BenchmarkHandlerEvents(b *testing.B) {
	f := newTestTor(b)
	f.SetConnOptions(ctl.Options{Logger: discardLogger(), EventBacklog: b.N + 1024}) // drop no BW event: the count must reach N
	const src = `
N = int(argv[1])
n = [0]
def count(e):
    n[0] += 1
    if n[0] == N:
        exit(0)
for name in ("circ", "stream", "bw", "orconn"):
    tor.on(name, count)
`
	lines := []string{
		"650 CIRC 5 BUILT " + fpA + "," + fpB + "," + fpC + " BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL TIME_CREATED=2024-05-01T10:00:00.000000\r\n",
		"650 STREAM 7 SUCCEEDED 5 example.com:80\r\n",
		"650 BW 1024 2048\r\n",
		"650 ORCONN " + fpA + " CONNECTED NCIRCS=2 ID=12\r\n",
	}
	rt := New(Options{Connect: f.Connect, Logger: discardLogger(), Stdout: &ctltest.SyncBuffer{}, Args: []string{strconv.Itoa(b.N)}})
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		code, err := exitOf(rt.Run(ctx, "bench.star", []byte(src)))
		done <- result{code, err}
	}()
	f.WaitCommand("SETEVENTS BW CIRC ORCONN STREAM")

	b.ResetTimer()
	start := time.Now()
	go func() {
		const chunk = 256
		var buf strings.Builder
		for i := 0; i < b.N; i++ {
			buf.WriteString(lines[i%len(lines)])
			if (i+1)%chunk == 0 || i == b.N-1 {
				if err := f.Send(buf.String()); err != nil {
					return
				}
				buf.Reset()
			}
		}
	}()
	var res result
	select {
	case res = <-done:
	case <-time.After(time.Minute):
		b.Fatal("handlers did not see every event within a minute")
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if res.code != 0 || res.err != nil {
		b.Fatalf("Run = %d, %v", res.code, res.err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}
