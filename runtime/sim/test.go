package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/runtime"
	"github.com/torscript/torscript/runtime/simtor"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarktest"
	"go.starlark.net/syntax"
)

// ErrNoTests is RunTests' error for a file without test_ functions:
// reported, not a failure.
var ErrNoTests = errors.New("no test_ functions")

// TestResult is the outcome of one test function.
type TestResult struct {
	Name     string
	Failures []string // each with its Starlark backtrace; empty when it passed
	Output   string   // what it printed
}

// Passed reports whether the test had no failure.
func (t *TestResult) Passed() bool { return len(t.Failures) == 0 }

// RunTests runs the test_* functions of a test file, each against a fresh
// simulated tor with a fresh runtime: the file's top level runs first,
// then the function. Scripts see assert (starlarktest's) and sim
// besides what every script sees. Each test (the file's top level and the
// test function together) runs under the step budget (MaxSteps) and a wall
// deadline (TopLevelTimeout); one that overruns fails and the next runs.
// When ctx ends (SIGINT, SIGTERM) the running test is stopped and RunTests
// returns ctx's error with the results so far. Only MaxSteps,
// HandlerTimeout, TopLevelTimeout and Stdlib of opts are used; what a test
// prints and logs is in its result. A file that does not compile is an
// error.
func RunTests(ctx context.Context, filename string, src []byte, opts runtime.Options) ([]*TestResult, error) {
	f, err := runtime.FileOptions().Parse(filename, src, 0)
	if err != nil {
		return nil, fmt.Errorf("%s", runtime.FormatError(err))
	}
	var names []string
	for _, st := range f.Stmts {
		if def, ok := st.(*syntax.DefStmt); ok && strings.HasPrefix(def.Name.Name, "test_") {
			names = append(names, def.Name.Name)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: %w", filename, ErrNoTests)
	}
	assert, err := starlarktest.LoadAssertModule()
	if err != nil {
		return nil, err
	}
	var results []*TestResult
	for _, name := range names {
		res, err := runTestGuarded(ctx, filename, src, name, assert, opts)
		if err != nil {
			return results, err
		}
		results = append(results, res)
	}
	return results, nil
}

// runTestGuarded runs one test on a goroutine of its own, so that a test
// stuck where cancellation cannot reach (one builtin or Go operation that
// ignores it) is abandoned, failed, and the next one runs; and so that
// SIGINT or SIGTERM returns at once even then.
func runTestGuarded(ctx context.Context, filename string, src []byte, name string, assert starlark.StringDict, opts runtime.Options) (*TestResult, error) {
	type wedge struct {
		what  string
		since time.Duration
	}
	wedged := make(chan wedge, 1)
	opts.OnWedged = func(what string, since time.Duration) {
		select {
		case wedged <- wedge{what, since}:
		default:
		}
	}
	done := make(chan *TestResult, 1)
	go func() { done <- runTest(ctx, filename, src, name, assert, opts) }()
	select {
	case res := <-done:
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return res, nil
	case w := <-wedged:
		return &TestResult{Name: name, Failures: []string{fmt.Sprintf(
			"%s was stopped by its deadline but has not returned %v later: it is blocked inside one builtin or Go operation that cannot be interrupted; abandoned",
			w.what, w.since.Round(time.Millisecond))}}, nil
	case <-ctx.Done():
		// The test is being interrupted: give it a moment to finish.
		select {
		case <-done:
		case <-time.After(runtime.WedgeGrace):
		}
		return nil, ctx.Err()
	}
}

// testReporter collects assert's failures, each led by the place in the
// test file where it happened.
type testReporter struct {
	file     string
	thread   *starlark.Thread
	failures []string
}

func (r *testReporter) Error(args ...any) {
	msg := fmt.Sprint(args...)
	// starlarktest's message is "Traceback ... Error: MSG".
	short := msg
	if i := strings.LastIndex(msg, "Error: "); i >= 0 {
		short = msg[i+len("Error: "):]
	}
	r.failures = append(r.failures, r.where(r.thread.CallStack())+short+"\n"+msg)
}

// where is "FILE:LINE:COL: " of the innermost frame of stack in the test
// file (or of the innermost frame).
func (r *testReporter) where(stack starlark.CallStack) string {
	for i := len(stack) - 1; i >= 0; i-- {
		if stack[i].Pos.Filename() == r.file {
			return stack[i].Pos.String() + ": "
		}
	}
	if len(stack) > 0 {
		return stack[len(stack)-1].Pos.String() + ": "
	}
	return ""
}

// failure formats an error that ended a test.
func (r *testReporter) failure(err error) string {
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		return r.where(ee.CallStack) + ee.Msg + "\n" + runtime.FormatError(err)
	}
	return runtime.FormatError(err)
}

func runTest(ctx context.Context, filename string, src []byte, name string, assert starlark.StringDict, opts runtime.Options) *TestResult {
	res := &TestResult{Name: name}
	var out strings.Builder
	st := simtor.New()
	opts.Connect = st.Dial
	opts.Stdout = &out
	// The log goes with what the test printed, shown when it fails.
	opts.Logger = slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: dropTime}))
	opts.Bootstrap, opts.DryRun, opts.Args = nil, false, nil
	opts.Allow = []string{"all"} // the simulated tor is the test's own
	opts.Clock = &runtime.VirtualClock{}
	// A handler, timer, policy or at_exit call that fails fails the test,
	// unless the test takes the failure with sim.failures().
	var pending []string
	opts.OnFailure = func(msg string, err error) {
		pending = append(pending, msg+": "+runtime.FormatError(err))
	}
	r := runtime.New(opts)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	end := r.Begin(ctx, filename, src)
	defer func() {
		end()
		st.Close()
		res.Output = out.String()
	}()
	t := r.Thread()
	rep := &testReporter{file: filename, thread: t}
	starlarktest.SetReporter(t, rep)
	sm := &simModule{r: r, tor: st, testFile: filename}
	sim := sm.module()
	sim.Members["failures"] = failuresBuiltin(sm, &pending)
	pre := testGlobals(assert["assert"], sim)
	for k, v := range r.Predeclared() {
		pre[k] = v
	}
	_, prog, err := starlark.SourceProgramOptions(runtime.FileOptions(), filename, src, pre.Has)
	if err == nil {
		err = r.Supervise(ctx, "test "+name, func() error {
			g, err := prog.Init(t, pre)
			if err != nil {
				return err
			}
			sm.settle()
			if _, err := starlark.Call(t, g[name].(starlark.Callable), nil, nil); err != nil {
				return err
			}
			sm.settle()
			return nil
		})
	}
	var exit *runtime.ExitError
	if err != nil && !errors.As(err, &exit) {
		rep.failures = append(rep.failures, rep.failure(err))
	}
	if err := r.Fatal(); err != nil {
		rep.failures = append(rep.failures, runtime.FormatError(err))
	}
	for _, p := range pending {
		rep.failures = append(rep.failures, "the script under test failed (sim.failures() takes a failure the test expects): "+p)
	}
	res.Failures = rep.failures
	return res
}

// failuresBuiltin is sim.failures(): it takes the failures of the script
// under test so far, which would otherwise fail the test.
func failuresBuiltin(sm *simModule, pending *[]string) *starlark.Builtin {
	return starlark.NewBuiltin("sim.failures", func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
			return nil, err
		}
		sm.settle()
		l := make([]starlark.Value, len(*pending))
		for i, p := range *pending {
			l[i] = starlark.String(p)
		}
		*pending = nil
		return starlark.NewList(l), nil
	})
}

// Globals are the names torscript test adds to what every script sees,
// for runtime.Options.ExtraGlobals when checking a test file.
func Globals() []string {
	var names []string
	for name := range testGlobals(nil, nil) {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// GlobalAttrs are the attributes of the modules torscript test adds (sim
// and assert), for runtime.Options.ExtraGlobalAttrs: check flags sim.X
// and assert.X that do not exist.
func GlobalAttrs() (map[string][]string, error) {
	assert, err := starlarktest.LoadAssertModule()
	if err != nil {
		return nil, err
	}
	sim := (&simModule{}).module()
	sim.Members["failures"] = starlark.None
	attrs := map[string][]string{"sim": sim.AttrNames()}
	if m, ok := assert["assert"].(starlark.HasAttrs); ok {
		attrs["assert"] = m.AttrNames()
	}
	return attrs, nil
}

// testGlobals are the names torscript test adds to what every script
// sees; check reads a _test.star file with them.
func testGlobals(assert, sim starlark.Value) starlark.StringDict {
	return starlark.StringDict{"assert": assert, "sim": sim}
}

// dropTime leaves the time out of a test's log lines.
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey && len(groups) == 0 {
		return slog.Attr{}
	}
	return a
}

// settle lets the runtime catch up with the simulated tor: it handles the
// events and replies the simulated tor has sent, and what they cause, until
// nothing more happens.
func (sm *simModule) settle() { sm.r.RunUntilIdle(simtor.SyncCommand) }

// idString is a circuit or stream id given as an int or a str; None is 0
// (tor chooses).
func idString(v starlark.Value) string {
	if c, ok := builtins.CircuitOfValue(v); ok {
		return c.ID
	}
	switch v := v.(type) {
	case starlark.String:
		return string(v)
	case starlark.Int:
		return v.String()
	case starlark.NoneType:
		return "0"
	case *builtins.Stream:
		return v.Strm().ID
	}
	return v.String()
}

// writeTestReport writes the results of one file as `go test -v` does, with
// each failure's location first. It returns the number of failed tests.
func WriteTestReport(w io.Writer, file string, results []*TestResult, verbose bool) int {
	failed := 0
	for _, res := range results {
		if res.Passed() {
			if verbose {
				fmt.Fprintf(w, "PASS %s (%s)\n", res.Name, file)
			}
			continue
		}
		failed++
		fmt.Fprintf(w, "FAIL %s (%s)\n", res.Name, file)
		for _, f := range res.Failures {
			fmt.Fprintln(w, indentLines(f))
		}
		if res.Output != "" {
			fmt.Fprintf(w, "  output:\n%s", indentLines(res.Output))
		}
	}
	return failed
}

func indentLines(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n") + "\n"
}
