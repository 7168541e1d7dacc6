package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/starlarktest"
	"go.starlark.net/syntax"
)

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
		return nil, fmt.Errorf("%s: no test_ functions", filename)
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
	st := newSimTor()
	opts.Connect = func(context.Context) (*ctl.Conn, error) { return st.connect(), nil }
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
		st.close()
		res.Output = out.String()
	}()
	t := r.Thread()
	rep := &testReporter{file: filename, thread: t}
	starlarktest.SetReporter(t, rep)
	sm := &simModule{r: r, st: st, testFile: filename}
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

// simModule is the sim module of a test: it makes things happen in the
// simulated tor and checks the commands the script sent. Each member is a
// method, registered by newSimModule.
type simModule struct {
	r        *runtime.Runtime
	st       *simTor
	testFile string
}

// module builds the sim module of a test.
func (sm *simModule) module() *starlarkstruct.Module {
	m := starlark.StringDict{}
	for _, e := range []struct {
		name string
		fn   func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error)
	}{
		{"run", sm.run},
		{"stream_new", sm.streamNew},
		{"stream_event", sm.streamEvent},
		{"circ_launched", sm.circEvent("LAUNCHED")},
		{"circ_built", sm.circEvent("BUILT")},
		{"circ_failed", sm.circEvent("FAILED")},
		{"circ_closed", sm.circEvent("CLOSED")},
		{"reply", sm.reply},
		{"commands", sm.commands},
		{"conf", sm.conf},
		{"mappings", sm.mappings},
		{"advance", sm.advance},
		{"expect_attach", sm.expectAttach},
		{"expect_close", sm.expectClose},
		{"expect_redirect", sm.expectRedirect},
		{"expect_extend", sm.expectExtend},
		{"expect_command", sm.expectCommand},
		{"expect_no_decision", sm.expectNoDecision},
		{"replay", sm.replay},
	} {
		m[e.name] = starlark.NewBuiltin("sim."+e.name, e.fn)
	}
	return &starlarkstruct.Module{Name: "sim", Members: m}
}

func (sm *simModule) locked(f func()) {
	sm.st.mu.Lock()
	f()
	sm.st.flush()
	sm.st.mu.Unlock()
	sm.settle()
}

func (sm *simModule) run(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var path string
	var argv *starlark.List
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "path", &path, "args?", &argv); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(sm.testFile), path)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", b.Name(), err)
	}
	list := []starlark.Value{starlark.String(path)}
	if argv != nil {
		for i := 0; i < argv.Len(); i++ {
			list = append(list, argv.Index(i))
		}
	}
	g, err := sm.r.ExecFile(t, path, src, list)
	if err != nil {
		return nil, err
	}
	sm.settle()
	return &starlarkstruct.Module{Name: filepath.Base(path), Members: g}, nil
}

func (sm *simModule) streamNew(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	target, source, purpose, resolve := "", "127.0.0.1:50000", "USER", false
	var user, pass string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "target", &target, "source?", &source, "purpose?", &purpose, "resolve?", &resolve,
		"socks_username?", &user, "socks_password?", &pass); err != nil {
		return nil, err
	}
	if !strings.Contains(target, ":") {
		return nil, fmt.Errorf("%s: target %q: want HOST:PORT", b.Name(), target)
	}
	var id string
	sm.locked(func() {
		s := &simStream{id: sm.st.newID(), target: target, source: source, purpose: purpose, socksUser: user, socksPass: pass}
		sm.st.streams[s.id] = s
		id = s.id
		status := "NEW"
		if resolve {
			status = "NEWRESOLVE"
		}
		sm.st.streamStatus(s, status, "")
	})
	return starlark.String(id), nil
}

func (sm *simModule) streamEvent(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var id, status, reason, remote string
	var circ starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "stream", &id, "status", &status, "circuit?", &circ, "reason?", &reason, "remote_reason?", &remote); err != nil {
		return nil, err
	}
	var err error
	sm.locked(func() {
		s := sm.st.streams[id]
		if s == nil {
			err = fmt.Errorf("%s: no stream %s", b.Name(), id)
			return
		}
		if circ != starlark.None {
			s.circ = idString(circ)
		}
		extra := ""
		if reason != "" {
			extra += " REASON=" + reason
		}
		if remote != "" {
			extra += " REMOTE_REASON=" + remote
		}
		status = strings.ToUpper(status)
		sm.st.streamStatus(s, status, extra) // DETACHED names the circuit it left, as tor does
		if status == "DETACHED" {
			s.circ = "0"
		}
		if status == "CLOSED" { // tor sends FAILED, then CLOSED
			delete(sm.st.streams, id)
		}
	})
	return starlark.None, err
}

func (sm *simModule) circEvent(status string) func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var id starlark.Value = starlark.None
		var path *starlark.List
		purpose, reason := "GENERAL", ""
		if status == "FAILED" {
			reason = "TIMEOUT"
		} else if status == "CLOSED" {
			reason = "FINISHED"
		}
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "id?", &id, "path?", &path, "purpose?", &purpose, "reason?", &reason); err != nil {
			return nil, err
		}
		var err error
		var got string
		sm.locked(func() {
			var c *simCirc
			if id == starlark.None {
				if status != "BUILT" && status != "LAUNCHED" {
					err = fmt.Errorf("%s: which circuit?", b.Name())
					return
				}
				c = &simCirc{id: sm.st.newID(), purpose: purpose, path: sm.st.defaultPath()}
				sm.st.circs[c.id] = c
			} else if c = sm.st.circs[idString(id)]; c == nil {
				err = fmt.Errorf("%s: no circuit %s (sim.circ_built() with no id makes one)", b.Name(), idString(id))
				return
			}
			if path != nil {
				c.path = nil
				for i := 0; i < path.Len(); i++ {
					s, _ := starlark.AsString(path.Index(i))
					rl, ok := sm.st.relay(s)
					if !ok {
						err = fmt.Errorf("%s: no relay %q in the simulated network", b.Name(), s)
						return
					}
					c.path = append(c.path, "$"+rl.fp+"~"+rl.nick)
				}
			}
			extra := ""
			if reason != "" && (status == "FAILED" || status == "CLOSED") {
				extra = " REASON=" + reason
			}
			sm.st.circStatus(c, status, extra)
			if status == "FAILED" || status == "CLOSED" {
				delete(sm.st.circs, c.id)
			}
			got = c.id
		})
		if err != nil {
			return nil, err
		}
		return starlark.String(got), nil
	}
}

func (sm *simModule) reply(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var command, text string
	var code int
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "command", &command, "code", &code, "text?", &text); err != nil {
		return nil, err
	}
	if code < 200 || code > 599 {
		return nil, fmt.Errorf("%s: code %d: want 2xx-5xx", b.Name(), code)
	}
	if text == "" {
		text = "OK"
	}
	kw := strings.ToUpper(command)
	sm.st.mu.Lock()
	sm.st.replies[kw] = append(sm.st.replies[kw], simReply{code, text})
	sm.st.mu.Unlock()
	return starlark.None, nil
}

func (sm *simModule) commands(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	sm.st.mu.Lock()
	defer sm.st.mu.Unlock()
	var l []starlark.Value
	for _, c := range sm.st.cmds {
		l = append(l, starlark.String(c.line))
	}
	return starlark.NewList(l), nil
}

func (sm *simModule) conf(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var key string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "key", &key); err != nil {
		return nil, err
	}
	sm.st.mu.Lock()
	defer sm.st.mu.Unlock()
	if v, ok := sm.st.conf[key]; ok {
		return starlark.String(v), nil
	}
	return starlark.None, nil
}

func (sm *simModule) mappings(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	sm.st.mu.Lock()
	defer sm.st.mu.Unlock()
	d := starlark.NewDict(len(sm.st.maps))
	for k, v := range sm.st.maps {
		d.SetKey(starlark.String(k), starlark.String(v))
	}
	return d, nil
}

func (sm *simModule) advance(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var d builtins.Duration
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "duration", &d); err != nil {
		return nil, err
	}
	sm.r.Advance(time.Duration(d), syncCommand)
	return starlark.None, nil
}

func (sm *simModule) expect(b *starlark.Builtin, keyword, what string, ok func(args []string) bool) (simCmd, error) {
	sm.settle()
	sm.st.mu.Lock()
	defer sm.st.mu.Unlock()
	var seen []string
	for i := range sm.st.cmds {
		c := &sm.st.cmds[i]
		f := strings.Fields(c.line)
		if c.used || len(f) == 0 || !strings.EqualFold(f[0], keyword) {
			continue
		}
		if ok(f[1:]) {
			c.used = true
			return *c, nil
		}
		seen = append(seen, c.line)
	}
	if len(seen) == 0 {
		seen = append(seen, "none")
	}
	return simCmd{}, fmt.Errorf("%s: want %s; %s commands not expected yet: %s", b.Name(), what, keyword, strings.Join(seen, ", "))
}

func (sm *simModule) expectAttach(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var stream, circ starlark.Value
	hop := 0
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "stream", &stream, "circuit", &circ, "hop?", &hop); err != nil {
		return nil, err
	}
	s, c := idString(stream), idString(circ)
	want := "ATTACHSTREAM " + s + " " + c
	if hop > 0 {
		want += " HOP=" + strconv.Itoa(hop)
	}
	_, err := sm.expect(b, "ATTACHSTREAM", want, func(a []string) bool { return strings.Join(a, " ") == strings.TrimPrefix(want, "ATTACHSTREAM ") })
	return starlark.None, err
}

func (sm *simModule) expectClose(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var stream starlark.Value
	var reason builtins.RelayEndReason
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "stream", &stream, "reason", &reason); err != nil {
		return nil, err
	}
	s := idString(stream)
	want := fmt.Sprintf("CLOSESTREAM %s %d (%s)", s, int(reason), ctl.RelayEndReason(reason))
	_, err := sm.expect(b, "CLOSESTREAM", want, func(a []string) bool {
		return len(a) >= 2 && a[0] == s && a[1] == strconv.Itoa(int(reason))
	})
	return starlark.None, err
}

func (sm *simModule) expectRedirect(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var stream starlark.Value
	var host string
	port := 0
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "stream", &stream, "host", &host, "port?", &port); err != nil {
		return nil, err
	}
	want := []string{idString(stream), host}
	if port > 0 {
		want = append(want, strconv.Itoa(port))
	}
	_, err := sm.expect(b, "REDIRECTSTREAM", "REDIRECTSTREAM "+strings.Join(want, " "), func(a []string) bool { return slices.Equal(a, want) })
	return starlark.None, err
}

func (sm *simModule) expectExtend(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var path *starlark.List
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "path?", &path); err != nil {
		return nil, err
	}
	var want []string
	if path != nil {
		for i := 0; i < path.Len(); i++ {
			s, _ := starlark.AsString(path.Index(i))
			want = append(want, s)
		}
	}
	what := "EXTENDCIRCUIT 0"
	if want != nil {
		what += " through " + strings.Join(want, ",")
	}
	c, err := sm.expect(b, "EXTENDCIRCUIT", what, func(a []string) bool {
		if len(a) == 0 || a[0] != "0" {
			return false
		}
		if want == nil {
			return true
		}
		if len(a) < 2 {
			return false
		}
		hops := strings.Split(a[1], ",")
		if len(hops) != len(want) {
			return false
		}
		for i, h := range hops {
			r1, ok1 := sm.st.relay(h)
			r2, ok2 := sm.st.relay(want[i])
			if !ok1 || !ok2 || r1.fp != r2.fp {
				return false
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return starlark.String(c.result), nil
}

func (sm *simModule) expectCommand(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var prefix string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "prefix", &prefix); err != nil {
		return nil, err
	}
	kw, _, _ := strings.Cut(prefix, " ")
	got, err := sm.expect(b, kw, prefix+"…", func(a []string) bool {
		return strings.HasPrefix(strings.Join(append([]string{kw}, a...), " "), prefix)
	})
	if err != nil {
		return nil, err
	}
	return starlark.String(got.line), nil
}

func (sm *simModule) expectNoDecision(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var stream starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "stream?", &stream); err != nil {
		return nil, err
	}
	sm.settle()
	sm.st.mu.Lock()
	defer sm.st.mu.Unlock()
	for _, c := range sm.st.cmds {
		f := strings.Fields(c.line)
		if c.used || len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "ATTACHSTREAM", "CLOSESTREAM", "REDIRECTSTREAM":
			if stream == starlark.None || f[1] == idString(stream) {
				return nil, fmt.Errorf("%s: the script sent %s", b.Name(), c.line)
			}
		}
	}
	return starlark.None, nil
}

func (sm *simModule) replay(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var path string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "path", &path); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(sm.testFile), path)
	}
	n, err := replay(sm, path)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", b.Name(), err)
	}
	return starlark.MakeInt(n), nil
}

// settle lets the runtime catch up with the simulated tor: it handles the
// events and replies the simulated tor has sent, and what they cause, until
// nothing more happens.
func (sm *simModule) settle() { sm.r.RunUntilIdle(syncCommand) }

// idString is a circuit or stream id given as an int or a str; None is 0
// (tor chooses).
func idString(v starlark.Value) string {
	switch v := v.(type) {
	case starlark.String:
		return string(v)
	case starlark.Int:
		return v.String()
	case starlark.NoneType:
		return "0"
	case *builtins.Circuit:
		return v.C.ID
	case *builtins.Stream:
		return v.S.ID
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
