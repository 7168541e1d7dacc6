package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl/ctltest"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// runTop runs src as x.star with no tor and returns what Run returned and
// how long it took.
func runTop(t *testing.T, ctx context.Context, src string, opts Options, setup func(*Runtime)) (code int, took time.Duration, log *ctltest.SyncBuffer, err error) {
	t.Helper()
	log = &ctltest.SyncBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(log, nil))
	}
	opts.Stdout = &ctltest.SyncBuffer{}
	r := New(opts)
	if setup != nil {
		setup(r)
	}
	start := time.Now()
	code, err = exitOf(r.Run(ctx, "x.star", []byte(src)))
	return code, time.Since(start), log, err
}

// TestTopLevelDeadline: a top level that loops forever is stopped at the
// top-level timeout, with exit status 1, an OverrunError and a backtrace
// naming the loop's line.
func TestTopLevelDeadline(t *testing.T) {
	t.Parallel()
	src := "x = 1\nwhile True:\n    pass\n"
	code, took, _, err := runTop(t, context.Background(), src, Options{MaxSteps: 1e15, TopLevelTimeout: 200 * time.Millisecond}, nil)
	var ov *OverrunError
	if code != 1 || !errors.As(err, &ov) {
		t.Fatalf("Run = %d, %v; want 1 and an OverrunError", code, err)
	}
	if tick := watchTick(2 * time.Second); took < 200*time.Millisecond || took > 200*time.Millisecond+2*tick+300*time.Millisecond {
		t.Errorf("stopped after %v, want 200ms (+ two ticks of %v)", took, tick)
	}
	msg := FormatError(err)
	for _, s := range []string{"x.star:3:5: in <toplevel>", "top level of x.star ran longer than the top-level timeout (200ms)"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error lacks %q:\n%s", s, msg)
		}
	}
}

// TestTopLevelSteps: the top level has the step budget too.
func TestTopLevelSteps(t *testing.T) {
	t.Parallel()
	src := "def spin():\n    n = 0\n    while True:\n        n += 1\nspin()\n"
	code, took, _, err := runTop(t, context.Background(), src, Options{MaxSteps: 100_000}, nil)
	var ov *OverrunError
	if code != 1 || !errors.As(err, &ov) || ov.Steps != 100_000 {
		t.Fatalf("Run = %d, %v; want 1 and an OverrunError of the step budget", code, err)
	}
	if took > 5*time.Second {
		t.Errorf("took %v", took)
	}
	msg := FormatError(err)
	for _, s := range []string{"x.star:4:9: in spin", "too many steps", "top level of x.star took more than 100000 steps (--max-steps)"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error lacks %q:\n%s", s, msg)
		}
	}
}

// TestTopLevelInterrupted: SIGINT or SIGTERM (the context) stops a top
// level that loops, long before its deadline; then the run ends cleanly.
func TestTopLevelInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	code, took, _, err := runTop(t, ctx, "while True:\n    pass\n", Options{MaxSteps: 1e15}, nil)
	if code != 0 || err != nil {
		t.Errorf("Run = %d, %v; want 0, nil", code, err)
	}
	if took > time.Second {
		t.Errorf("took %v after an interrupt at 100ms", took)
	}
}

// TestLoadedModuleLimits: a module the top level loads runs within the
// top level's deadline.
func TestLoadedModuleLimits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctltest.WriteFiles(t, dir, map[string]string{"spin.star": "def f():\n    pass\nwhile True:\n    pass\n"})
	r := New(Options{Logger: discardLogger(), Stdout: &ctltest.SyncBuffer{}, MaxSteps: 1e15, TopLevelTimeout: 200 * time.Millisecond})
	start := time.Now()
	code, err := exitOf(r.Run(context.Background(), dir+"/x.star", []byte("load(\"spin.star\", \"f\")\n")))
	var ov *OverrunError
	if code != 1 || !errors.As(err, &ov) {
		t.Fatalf("Run = %d, %v; want 1 and an OverrunError", code, err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v", took)
	}
	if msg := FormatError(err); !strings.Contains(msg, "cannot load spin.star") || !strings.Contains(msg, "top-level timeout (200ms)") {
		t.Errorf("error:\n%s", msg)
	}
}

// blockBuiltin is a builtin that ignores cancellation, as a long Go
// operation does: it returns when release is closed.
func blockBuiltin(release <-chan struct{}) *starlark.Builtin {
	return starlark.NewBuiltin("block", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
		<-release
		return starlark.None, nil
	})
}

// TestTopLevelWedged: a top level blocked where cancellation cannot reach
// is reported to OnWedged, from the watchdog's goroutine, WedgeGrace after
// the deadline (within two ticks), and once.
func TestTopLevelWedged(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var mu sync.Mutex
	var calls []string
	var at time.Duration
	start := time.Now()
	opts := Options{MaxSteps: 1e15, TopLevelTimeout: 200 * time.Millisecond, OnWedged: func(what string, since time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, what)
		at = time.Since(start)
		if since < WedgeGrace {
			t.Errorf("OnWedged says %v since the cancel, want at least %v", since, WedgeGrace)
		}
		close(release) // as the guardian's kill would end it
	}}
	code, _, _, err := runTop(t, context.Background(), "x = 1\nblock()\n", opts, func(r *Runtime) { r.pre["block"] = blockBuiltin(release) })
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 || calls[0] != "top level of x.star" {
		t.Fatalf("OnWedged calls %q, want one for the top level", calls)
	}
	tick := watchTick(2 * time.Second)
	if want := 200*time.Millisecond + WedgeGrace; at < want || at > want+2*tick+100*time.Millisecond {
		t.Errorf("OnWedged at %v, want %v (+ two ticks of %v)", at, want, tick)
	}
	// The builtin returned: cancellation then ends the top level.
	var ov *OverrunError
	if code != 1 || !errors.As(err, &ov) {
		t.Errorf("Run = %d, %v; want 1 and an OverrunError", code, err)
	}
}

// TestWedgedLogged: with no OnWedged, a wedge is logged as an error once.
func TestWedgedLogged(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	time.AfterFunc(700*time.Millisecond, func() { close(release) })
	_, _, log, _ := runTop(t, context.Background(), "block()\n", Options{TopLevelTimeout: 100 * time.Millisecond},
		func(r *Runtime) { r.pre["block"] = blockBuiltin(release) })
	if n := strings.Count(log.String(), "level=ERROR msg=\"a cancelled evaluation has not returned"); n != 1 {
		t.Errorf("%d error lines, want 1:\n%s", n, log.String())
	}
	if !strings.Contains(log.String(), `what="top level of x.star"`) {
		t.Errorf("log:\n%s", log.String())
	}
}

// TestHandlerWedged: a handler blocked where cancellation cannot reach is
// reported too, and the loop goes on once it returns.
func TestHandlerWedged(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	release := make(chan struct{})
	wedged := make(chan string, 4)
	r := New(Options{Connect: f.Connect, Logger: discardLogger(), Stdout: &ctltest.SyncBuffer{}, HandlerTimeout: 100 * time.Millisecond,
		OnWedged: func(what string, _ time.Duration) { wedged <- what }})
	r.pre["block"] = blockBuiltin(release)
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); <-done }()
	go func() {
		defer close(done)
		r.Run(ctx, "x.star", []byte("def on_circ(c):\n    block()\ntor.on(\"circ\", on_circ)\n"))
	}()
	f.WaitCommand("SETEVENTS CIRC")
	sent := time.Now()
	f.Event("CIRC 1 LAUNCHED")
	select {
	case what := <-wedged:
		if what != "call to on_circ" {
			t.Errorf("OnWedged(%q)", what)
		}
		if d := time.Since(sent); d > 100*time.Millisecond+WedgeGrace+200*time.Millisecond {
			t.Errorf("OnWedged %v after the event", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnWedged not called")
	}
	close(release)
}

// TestOverrunLine: a call stopped in `while True: pass` names the line of
// the loop's body, not its def line, in a policy, a handler, a timer and
// the top level, whether the deadline or the step budget stopped it.
func TestOverrunLine(t *testing.T) {
	t.Parallel()
	const spin = `
def spin(x = None):
    n = 0
    while True:
        pass
`
	for _, tc := range []struct {
		name, src string
		event     string
		opts      Options
		want      string
	}{
		{"handler", spin + "tor.on(\"circ\", spin)\n", "CIRC 1 LAUNCHED", Options{}, "x.star:5:9: in spin"},
		{"timer", spin + "tor.after(0.01, spin)\n", "", Options{}, "x.star:5:9: in spin"},
		{"policy", spin + "tor.policy(spin)\n", stream7New, Options{}, "x.star:5:9: in spin"},
		{"policy steps", spin + "tor.policy(spin)\n", stream7New, Options{MaxSteps: 10_000}, "x.star:5:9: in spin"},
		{"after a call", "def spin(x = None):\n    print(x)\n    while True:\n        pass\ntor.on(\"circ\", spin)\n", "CIRC 1 LAUNCHED", Options{}, "x.star:4:9: in spin"},
		{"top level", "tor.on(\"circ\", print)\nwhile True:\n    pass\n", "", Options{TopLevelTimeout: 100 * time.Millisecond}, "x.star:3:5: in <toplevel>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newTestTor(t)
			if tc.opts.MaxSteps == 0 {
				tc.opts.MaxSteps = 1e15
			}
			tc.opts.HandlerTimeout = 100 * time.Millisecond
			r := startScript(t, f, tc.src, tc.opts)
			if tc.event != "" {
				if strings.HasPrefix(tc.event, "STREAM") {
					r.started()
				} else {
					f.WaitCommand("SETEVENTS CIRC")
				}
				f.Event(tc.event)
			}
			if tc.name == "top level" {
				code, err := r.wait(5 * time.Second)
				if code != 1 || !strings.Contains(FormatError(err), tc.want) {
					t.Errorf("Run = %d, %s; want 1 and %q", code, FormatError(err), tc.want)
				}
				return
			}
			r.waitLog("failed")
			waitUntil(t, 5*time.Second, "the backtrace", func() bool { return strings.Contains(r.log.String(), "in spin") })
			if log := r.log.String(); !strings.Contains(log, tc.want) {
				t.Errorf("log lacks %q:\n%s", tc.want, log)
			}
		})
	}
}

// TestSilentLoop: where placeOverrun moves a frame, and where it trusts
// Starlark's position.
func TestSilentLoop(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		fn        string
		line, col int32 // what Starlark reported
		want      int32 // the line placed; 0 for none
	}{
		{"def line", "def f():\n    while True:\n        pass\n", "f", 1, 1, 3},
		{"top level start", "x = 1\nwhile True:\n    pass\n", "<toplevel>", 1, 1, 3},
		{"after a statement", "def f():\n    g()\n    y = None\n    while True:\n        pass\n", "f", 2, 6, 5},
		{"in a loop that records positions", "def f():\n    while True:\n        g()\n    while True:\n        pass\n", "f", 3, 10, 0},
		{"a call between", "def f():\n    g()\n    h()\n    while True:\n        pass\n", "f", 2, 6, 0},
		{"inner def", "def f():\n    def g():\n        while True:\n            pass\n    g()\n", "g", 2, 5, 4},
		{"in a branch", "def f(x):\n    if x:\n        g()\n        while True:\n            pass\n", "f", 3, 10, 5},
		{"a lambda", "f = lambda: 1\n", "lambda", 1, 5, 0},
		{"a def at 1:1", "def f():\n    pass\nwhile True:\n    pass\n", "<toplevel>", 1, 1, 4},
		{"a call at 1:1", "g()\nwhile True:\n    pass\n", "<toplevel>", 1, 2, 3},
		{"a loop at 1:1", "while True:\n    g()\n", "<toplevel>", 1, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file, err := FileOptions().Parse("x.star", []byte(tc.src), 0)
			if err != nil {
				t.Fatal(err)
			}
			name := "x.star"
			got, ok := silentLoop(file, tc.fn, syntaxPos(&name, tc.line, tc.col))
			if tc.want == 0 {
				if ok {
					t.Errorf("placed at %v, want Starlark's position kept", got)
				}
				return
			}
			if !ok || got.Line != tc.want {
				t.Errorf("placed at %v (%v), want line %d", got, ok, tc.want)
			}
		})
	}
}

func syntaxPos(file *string, line, col int32) syntax.Position {
	return syntax.MakePosition(file, line, col)
}

// TestEvalLimits: torscript eval's code is a top level too.
func TestEvalLimits(t *testing.T) {
	t.Parallel()
	r := New(Options{Logger: discardLogger(), Stdout: &ctltest.SyncBuffer{}, MaxSteps: 1e15, TopLevelTimeout: 100 * time.Millisecond})
	code, err := exitOf(r.Eval(context.Background(), "x = 1\nwhile True: pass\n"))
	var ov *OverrunError
	if code != 1 || !errors.As(err, &ov) {
		t.Fatalf("Eval = %d, %v; want 1 and an OverrunError", code, err)
	}
	if msg := FormatError(err); !strings.Contains(msg, "<eval>:2:13: in <toplevel>") || !strings.Contains(msg, "top level of <eval> ran longer than the top-level timeout (100ms)") {
		t.Errorf("error:\n%s", msg)
	}
}

// TestSessionLimits: at the prompt with no policy, input runs unbounded
// until Interrupt; a file loaded with :load is bounded like a top level.
func TestSessionLimits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctltest.WriteFiles(t, dir, map[string]string{"spin.star": "def f():\n    pass\nwhile True:\n    pass\n"})
	r := New(Options{Logger: discardLogger(), Stdout: &ctltest.SyncBuffer{}, MaxSteps: 1e15, HandlerTimeout: 50 * time.Millisecond, TopLevelTimeout: 100 * time.Millisecond})
	s, err := r.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	start := time.Now()
	err = s.Do(func(th *starlark.Thread, _ starlark.StringDict) error {
		_, err := s.Load(th, dir+"/spin.star")
		return err
	})
	var ov *OverrunError
	if !errors.As(err, &ov) || !strings.Contains(FormatError(err), "spin.star:4:5: in <toplevel>") {
		t.Errorf(":load = %s; want an overrun at spin.star:4:5", FormatError(err))
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf(":load stopped after %v", took)
	}

	time.AfterFunc(400*time.Millisecond, s.Interrupt)
	start = time.Now()
	err = s.Do(func(th *starlark.Thread, g starlark.StringDict) error {
		_, err := starlark.ExecFileOptions(FileOptions(), th, "<prompt>", "while True:\n    pass\n", g)
		return err
	})
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "interrupted") || errors.As(err, &ov) {
		t.Errorf("input = %v; want it interrupted, not an overrun", err)
	}
	if took < 400*time.Millisecond || took > 2*time.Second {
		t.Errorf("input ran %v; want until the interrupt at 400ms", took)
	}
	// The session goes on.
	if err := s.Do(func(th *starlark.Thread, g starlark.StringDict) error {
		_, err := starlark.ExecFileOptions(FileOptions(), th, "<prompt>", "y = 1\n", g)
		return err
	}); err != nil {
		t.Errorf("after the interrupt: %v", err)
	}
}

// TestWatchdogSleepsWhenIdle: with nothing running for a tick the
// watchdog sleeps (an idle torscript is not woken every few milliseconds),
// and the first evaluation after wakes it: a handler that spins after a
// long idle spell is still stopped at its deadline, twice in a row.
func TestWatchdogSleepsWhenIdle(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	const timeout = 100 * time.Millisecond
	r := startScript(t, f, "def spin(c):\n    while True:\n        pass\ntor.on(\"circ\", spin)\n", Options{HandlerTimeout: timeout, MaxSteps: 1e15})
	f.WaitCommand("SETEVENTS CIRC")
	idle := func() bool { return r.rt.watchIdle.Load() }
	for i := 1; i <= 2; i++ {
		waitUntil(t, 5*time.Second, "the watchdog to sleep", idle)
		sent := time.Now()
		f.Event(fmt.Sprintf("CIRC %d LAUNCHED", i))
		waitUntil(t, 5*time.Second, "the spinning handler to be stopped", func() bool {
			return strings.Count(r.log.String(), "handler timeout") >= i
		})
		// Within two ticks of its deadline, as when the watchdog was awake
		// (and a generous margin for a busy machine).
		if d := time.Since(sent); d > timeout+2*watchTick(timeout)+time.Second {
			t.Errorf("spin %d stopped %v after its event", i, d)
		}
	}
}

// TestStopNeverReachesTheNextCall runs handlers that end about when their
// deadline comes, some just before it and some after, each followed by a
// short one. The watchdog decides to stop a call, then (beforeStop) waits
// long enough for a call just past its deadline to return on its own and
// the next ones to start: its stop (a compare-and-swap on the outermost
// call's state, which the call's own end races) must then stop nothing.
// Every call runs to its end or is an overrun, and every short one runs.
func TestStopNeverReachesTheNextCall(t *testing.T) {
	// Not parallel: beforeStop is the package's.
	f := newTestTor(t)
	const timeout = 10 * time.Millisecond // the watchdog ticks every 5 ms
	beforeStop = func() { time.Sleep(8 * time.Millisecond) }
	t.Cleanup(func() { beforeStop = nil })
	src := `
done = {"long": 0, "short": 0}
def h(c):
    n = int(c.id)
    if c.status == "BUILT":
        done["short"] += 1
        if n == int(argv[1]):
            print("long", done["long"], "short", done["short"])
        return
    # from 5 to 25 ms: some end before their deadline, some after it,
    # within the watchdog's wait or later
    d = time.millisecond * (5 + n % 21)
    t0 = time.now()
    while time.now() - t0 < d:
        pass
    done["long"] += 1
tor.on("circ", h)
`
	const pairs = 120
	r := startScript(t, f, src, Options{HandlerTimeout: timeout, MaxSteps: 1e15, Args: []string{strconv.Itoa(pairs)}})
	f.WaitCommand("SETEVENTS CIRC")
	for i := 1; i <= pairs; i++ {
		f.Event(fmt.Sprintf("CIRC %d LAUNCHED", i))
		f.Event(fmt.Sprintf("CIRC %d BUILT", i))
	}
	var long, short int
	waitUntil(t, 30*time.Second, "the last short handler", func() bool {
		_, err := fmt.Sscanf(r.out.String(), "long %d short %d", &long, &short)
		return err == nil
	})
	over := int(r.rt.overruns.Load())
	t.Logf("%d long handlers ran to their end, %d were stopped", long, over)
	if short != pairs || long+over != pairs {
		t.Errorf("short handlers ran to their end: %d, long ones %d, stopped %d; want %d, and %d in all; log:\n%s", short, long, over, pairs, pairs, r.log.String())
	}
	if over == 0 || long == 0 {
		t.Errorf("every long handler ran to its end, or none did: the test did not race the deadline")
	}
}
