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

// BenchmarkAttachClosed measures the policy's round trip against the fake
// control port (ctltest, not tor), one stream at a time as tests/bench's
// attach-closed does: the fake answers each ATTACHSTREAM with 250 OK, the
// stream's SUCCEEDED and CLOSED and the next stream's NEW in one write.
// Its allocs/op (the fake's included) is the figure to watch; its time
// shares one process and one Go scheduler with the fake.
func BenchmarkAttachClosed(b *testing.B) {
	f, err := ctltest.NewFakeControlPort()
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	newLine := func(buf []byte, id int) []byte {
		buf = append(buf, "650 STREAM "...)
		buf = strconv.AppendInt(buf, int64(id), 10)
		return append(buf, " NEW 0 example.com:80 SOURCE_ADDR=127.0.0.1:40000 PURPOSE=USER\r\n"...)
	}
	n := b.N + 100 // a warm-up of 100
	next := 0
	done := make(chan struct{})
	var start time.Time
	buf := make([]byte, 0, 512)
	f.SetOnAttach(func(stream, circuit string, _ time.Time) []byte {
		id := 1000 + next
		next++
		if next == 100 {
			start = time.Now()
		}
		buf = append(buf[:0], "650 STREAM "...)
		buf = strconv.AppendInt(buf, int64(id), 10)
		buf = append(buf, " SUCCEEDED 1 example.com:80\r\n650 STREAM "...)
		buf = strconv.AppendInt(buf, int64(id), 10)
		buf = append(buf, " CLOSED 1 example.com:80 REASON=DONE\r\n"...)
		if next == n {
			close(done)
			return buf
		}
		return newLine(buf, id+1)
	})
	const src = `
def policy(stream):
    if stream.target_port == 80:
        return "1"
    return None
tor.policy(policy)
`
	connect := func(ctx context.Context) (*ctl.Conn, error) {
		return ctl.Dial(ctx, f.Addr(), ctl.Options{Logger: discardLogger()})
	}
	rt := New(Options{Connect: connect, Logger: discardLogger(), Stdout: &ctltest.SyncBuffer{}})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- rt.Run(ctx, "policy.star", []byte(src)) }()
	if _, _, err := f.WaitCommand(0, 10*time.Second, nil, func(c ctltest.Command) bool { return c.Keyword() == "SETEVENTS" }); err != nil {
		b.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the policy's setup
	b.ReportAllocs()
	b.ResetTimer()
	if err := f.Send(newLine(nil, 1000)); err != nil {
		b.Fatal(err)
	}
	select {
	case <-done:
	case err := <-ran:
		b.Fatalf("Run ended: %v", err)
	case <-time.After(time.Minute):
		b.Fatalf("%d of %d streams attached in a minute", next, n)
	}
	b.StopTimer()
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N), "ns/attach")
	cancel()
	<-ran
}
