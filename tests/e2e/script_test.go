package e2e

// What the example and fault tests share: a running torscript whose output
// the test reads while it runs, and the checks of what it leaves behind in
// tor (__LeaveStreamsUnattached, streams waiting for a controller).

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/ctl/ctltest"
)

const (
	leaveKey = "__LeaveStreamsUnattached"
	// termMax is how long torscript may take to exit after SIGTERM.
	termMax = 15 * time.Second
)

// scriptProc is a running `torscript run`.
type scriptProc struct {
	cmd            *exec.Cmd
	stdout, stderr ctltest.SyncBuffer
	done           chan struct{}
	err            error
}

// startScript starts cmd, a `torscript run`. When the test ends the
// process is killed if it still runs, and its output is logged if the test
// failed.
func startScript(t *testing.T, cmd *exec.Cmd) *scriptProc {
	t.Helper()
	p := &scriptProc{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("torscript %s\nstderr:\n%s\nstdout:\n%s", strings.Join(cmd.Args[1:], " "), p.stderr.String(), p.stdout.String())
		}
	})
	return p
}

func (p *scriptProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitFor waits until buf holds sub n times.
func (p *scriptProc) waitFor(t *testing.T, buf *ctltest.SyncBuffer, name, sub string, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for strings.Count(buf.String(), sub) < n {
		if p.exited() {
			t.Fatalf("torscript exited (%v) before its %s showed %q %d times", p.err, name, sub, n)
		}
		if time.Now().After(deadline) {
			t.Fatalf("torscript's %s did not show %q %d times within %v", name, sub, n, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLog waits for sub in torscript's log (stderr).
func (p *scriptProc) waitLog(t *testing.T, sub string, d time.Duration) {
	t.Helper()
	p.waitFor(t, &p.stderr, "log", sub, 1, d)
}

// waitStarted waits until torscript logs that the policy started.
func (p *scriptProc) waitStarted(t *testing.T) {
	t.Helper()
	p.waitLog(t, "policy started", 30*time.Second)
}

// waitOut waits for sub n times in what the script printed (stdout).
func (p *scriptProc) waitOut(t *testing.T, sub string, n int, d time.Duration) {
	t.Helper()
	p.waitFor(t, &p.stdout, "output", sub, n, d)
}

// term sends SIGTERM and returns the exit status and how long the exit
// took; it fails the test if torscript takes longer than termMax.
func (p *scriptProc) term(t *testing.T) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(termMax):
		t.Fatalf("torscript did not exit within %v of SIGTERM", termMax)
	}
	return exitStatus(p.err), time.Since(start)
}

// termOK sends SIGTERM and wants exit status 0.
func (p *scriptProc) termOK(t *testing.T) {
	t.Helper()
	code, took := p.term(t)
	if code != 0 {
		t.Fatalf("torscript exited with status %d after SIGTERM (%v)", code, p.err)
	}
	t.Logf("torscript exited 0, %v after SIGTERM", took.Round(time.Millisecond))
}

// writeScript writes src to dir/name, making the directories it needs,
// and returns its path.
func writeScript(t *testing.T, dir, name, src string) string {
	t.Helper()
	ctltest.WriteFiles(t, dir, map[string]string{name: src})
	return filepath.Join(dir, name)
}

// leaveValue returns tor's __LeaveStreamsUnattached.
func leaveValue(t *testing.T, c *ctl.Conn) string {
	t.Helper()
	return getConf(t, c, leaveKey)
}

// getConf returns tor's value of a config key.
func getConf(t *testing.T, c *ctl.Conn, key string) string {
	t.Helper()
	conf, err := c.GetConf(testCtx(t, 10*time.Second), key)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := conf.Lookup(key)
	return e.Value
}

// waitingStreams returns the streams without a circuit that wait for a
// controller.
func waitingStreams(ctx context.Context, c *ctl.Conn) ([]ctl.Stream, error) {
	streams, err := c.Streams(ctx)
	if err != nil {
		return nil, err
	}
	var w []ctl.Stream
	for _, s := range streams {
		if s.CircuitID != "0" && s.CircuitID != "" {
			continue
		}
		switch s.Status {
		case ctl.StreamNew, ctl.StreamNewResolve, ctl.StreamControllerWait, ctl.StreamDetached:
			w = append(w, s)
		}
	}
	return w, nil
}

// restoreLeave makes sure, when the test ends (after its torscript was
// killed: cleanups run last first), that __LeaveStreamsUnattached is
// leave again and no stream waits for a controller, so that a failed test
// does not break the next ones. Call it before starting torscript.
func restoreLeave(t *testing.T, leave string) {
	n := testnet.Shared(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, _, err := ctl.Connect(ctx, n.ControlAddr(), ctl.Credentials{CookieFile: n.CookiePath()}, ctl.Options{})
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer c.Close()
		if err := c.SetConf(ctx, ctl.ConfEntry{Key: leaveKey, Value: leave}); err != nil {
			t.Errorf("cleanup: restoring %s: %v", leaveKey, err)
		}
		w, _ := waitingStreams(ctx, c)
		for _, s := range w {
			c.AttachStream(ctx, s.ID, "0", 0)
		}
	})
}

// checkLeftBehind checks, once torscript has exited, that
// __LeaveStreamsUnattached is want and that no stream waits for a
// controller.
func checkLeftBehind(t *testing.T, c *ctl.Conn, want string) {
	t.Helper()
	checkLeftBehindExcept(t, c, want, nil)
}

// checkLeftBehindExcept is checkLeftBehind, passing over the streams in
// before: they waited before torscript started (an earlier test's stream
// that tor itself still tries to attach, which stream-status also
// reports as NEW on circuit 0).
func checkLeftBehindExcept(t *testing.T, c *ctl.Conn, want string, before map[string]bool) {
	t.Helper()
	if got := leaveValue(t, c); got != want {
		t.Errorf("after torscript exited %s=%s, want %s", leaveKey, got, want)
	}
	w, err := waitingStreams(testCtx(t, 10*time.Second), c)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range w {
		if !before[s.ID] {
			t.Errorf("after torscript exited stream %s %s to %s is left unattached", s.ID, s.Status, s.Target)
		}
	}
}

// waitingIDs are the ids of the streams waiting now (waitingStreams).
func waitingIDs(t *testing.T, c *ctl.Conn) map[string]bool {
	t.Helper()
	w, err := waitingStreams(testCtx(t, 10*time.Second), c)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, s := range w {
		ids[s.ID] = true
	}
	return ids
}

// eventLog records the events of a control connection, so that a test can
// look for the events of several streams in any order.
type eventLog struct {
	mu  sync.Mutex
	evs []ctl.Event
}

// watchEvents subscribes c to types and records what arrives.
func watchEvents(t *testing.T, c *ctl.Conn, types ...string) *eventLog {
	t.Helper()
	if err := c.SetEvents(testCtx(t, 10*time.Second), types...); err != nil {
		t.Fatal(err)
	}
	e := &eventLog{}
	go func() {
		for ev := range c.Events() {
			e.mu.Lock()
			e.evs = append(e.evs, ev)
			e.mu.Unlock()
		}
	}()
	return e
}

// all returns the events recorded so far that match.
func (e *eventLog) all(match func(ctl.Event) bool) []ctl.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var r []ctl.Event
	for _, ev := range e.evs {
		if match(ev) {
			r = append(r, ev)
		}
	}
	return r
}

// wait waits up to d for an event that matches and returns the first.
func (e *eventLog) wait(t *testing.T, d time.Duration, what string, match func(ctl.Event) bool) ctl.Event {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if evs := e.all(match); len(evs) > 0 {
			return evs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// end waits for the event that ends a stream: SUCCEEDED, FAILED or
// CLOSED.
func (e *eventLog) end(t *testing.T, id string) *ctl.StreamEvent {
	t.Helper()
	return e.wait(t, 20*time.Second, "the end of stream "+id, func(ev ctl.Event) bool {
		s, ok := ev.(*ctl.StreamEvent)
		return ok && s.ID == id && (s.Status == ctl.StreamSucceeded || s.Status == ctl.StreamFailed || s.Status == ctl.StreamClosed)
	}).(*ctl.StreamEvent)
}
