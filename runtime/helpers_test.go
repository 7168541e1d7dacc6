package runtime

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/ctl/ctltest"
	"github.com/torscript/torscript/runtime/simtor"
)

// testTor is the simulated tor, scripted (simtor.NewScripted: it answers as
// an idle tor and sends only the events a test sends), as the runtime's
// tests use it: its waits fail the test, and mu guards what a test's
// goroutines share.
type testTor struct {
	*simtor.Tor
	t  testing.TB
	mu sync.Mutex
}

// newTestTor is a scripted simulated tor whose first EXTENDCIRCUIT gets id
// 12, closed when the test ends.
func newTestTor(t testing.TB) *testTor {
	f := &testTor{Tor: simtor.NewScripted(12), t: t}
	f.SetConnOptions(ctl.Options{Logger: discardLogger()})
	t.Cleanup(f.Close)
	return f
}

// Connect is an Options.Connect that dials the simulated tor.
func (f *testTor) Connect(ctx context.Context) (*ctl.Conn, error) { return f.Dial(ctx) }

// locked runs fn with f.mu held.
func (f *testTor) locked(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// Event sends event lines ("650 STREAM 7 NEW ...", or without "650 ") on
// the current connection, in one write.
func (f *testTor) Event(lines ...string) {
	f.t.Helper()
	if err := f.Tor.Event(lines...); err != nil {
		f.t.Errorf("simtor: sending events %q: %v", lines, err)
	}
}

// Lines is every command line received so far that starts with one of
// the prefixes (all of them when none is given).
func (f *testTor) Lines(prefixes ...string) []string {
	var out []string
	for _, c := range f.Commands() {
		if len(prefixes) == 0 {
			out = append(out, c.Line)
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(c.Line, p) {
				out = append(out, c.Line)
				break
			}
		}
	}
	return out
}

// ConnectCount is how often Connect was called.
func (f *testTor) ConnectCount() int { return len(f.Dials()) }

// WaitCommand waits until a command line equal to line has been received
// (the n-th one, counting from 1, when n is given) and returns it.
func (f *testTor) WaitCommand(line string, n ...int) simtor.Command {
	f.t.Helper()
	want := 1
	if len(n) > 0 {
		want = n[0]
	}
	c, ok := f.Tor.WaitCommand(line, want, 5*time.Second)
	if !ok {
		f.t.Fatalf("simtor: no command %q (#%d) within 5s; got:\n%s", line, want, strings.Join(f.Lines(), "\n"))
	}
	return c
}

// WaitConns waits until n connections were made.
func (f *testTor) WaitConns(n int) {
	f.t.Helper()
	if !f.Tor.WaitConns(n, 5*time.Second) {
		f.t.Fatalf("simtor: %d connections, want %d", f.CurrentConn(), n)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// waitUntil polls cond until it holds or timeout passes.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// scriptRun is a script running in the background against the simulated tor.
type scriptRun struct {
	t      testing.TB
	f      *testTor
	rt     *Runtime
	log    *ctltest.SyncBuffer
	out    *ctltest.SyncBuffer
	cancel context.CancelFunc
	done   chan struct{}
	code   int
	runErr error // what Run returned
	err    error
}

// startScript runs src as "x.star" with opts (Connect, Logger and Stdout
// filled in when unset) until stop or the script ends.
func startScript(t testing.TB, f *testTor, src string, opts Options) *scriptRun {
	t.Helper()
	r := &scriptRun{t: t, f: f, log: &ctltest.SyncBuffer{}, out: &ctltest.SyncBuffer{}, done: make(chan struct{})}
	if opts.Connect == nil && f != nil {
		opts.Connect = f.Connect
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.Stdout == nil {
		opts.Stdout = r.out
	}
	r.rt = New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		r.runErr = r.rt.Run(ctx, "x.star", []byte(src))
		r.code, r.err = exitOf(r.runErr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(20 * time.Second):
			t.Errorf("Run did not return after its context was cancelled")
		}
	})
	return r
}

// stop cancels the script's context, as SIGTERM does, and waits for Run.
func (r *scriptRun) stop() (int, error) {
	r.t.Helper()
	r.cancel()
	return r.wait(10 * time.Second)
}

// wait waits for Run to return.
func (r *scriptRun) wait(timeout time.Duration) (int, error) {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(timeout):
		r.t.Fatalf("Run did not return within %v; log:\n%s", timeout, r.log.String())
	}
	return r.code, r.err
}

// waitOut waits until the script has printed s.
func (r *scriptRun) waitOut(s string) {
	r.t.Helper()
	r.waitOutWithin(s, 5*time.Second)
}

// waitOutWithin waits up to d until the script has printed s.
func (r *scriptRun) waitOutWithin(s string, d time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(r.out.String(), s) {
		if time.Now().After(deadline) {
			r.t.Fatalf("script did not print %q within %v; stdout:\n%s\nlog:\n%s", s, d, r.out.String(), r.log.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitLog waits until the log contains s.
func (r *scriptRun) waitLog(s string) {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(r.log.String(), s) {
		if time.Now().After(deadline) {
			r.t.Fatalf("log has no %q within 5s; log:\n%s", s, r.log.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// newStream7 waits until the policy has started, then a client opens
// stream 7 (stream7New).
func (r *scriptRun) newStream7() {
	r.t.Helper()
	r.started()
	r.f.Event(stream7New)
}

// started waits until the policy has started: GETINFO stream-status is the
// last command startPolicy sends before any MAPADDRESS.
func (r *scriptRun) started() {
	r.t.Helper()
	r.f.WaitCommand("GETINFO stream-status")
	r.waitLog("policy started")
}
