package runtime

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

// ErrSessionEnded is returned by Session.Do once the session's loop has
// ended (exit(), Close, SIGTERM).
var ErrSessionEnded = errors.New("the session has ended")

// Session is a Runtime driven interactively, as by the REPL: Open connects
// and starts the event loop on a goroutine of its own, and Do runs input on
// that loop, between events, with the session's globals. Handlers, timers
// and a policy registered at the prompt run as they do in a script.
type Session struct {
	r *Runtime
	// globals are the session's names: the predeclared ones and every
	// name the input has bound. Only code run by Do may touch them.
	globals starlark.StringDict

	cancel   context.CancelFunc
	loopDone chan struct{}
	stop     func() // the watchdog's

	mu        sync.Mutex
	interrupt func() // stops the running Do; nil when none runs
	closed    bool

	// loads are what each file Load ran registered, by its path, for
	// Reload to replace.
	loads map[string]*loaded
}

// loaded is what a file Load ran registered: its handlers and timers,
// its arguments, and whether it set the policy.
type loaded struct {
	reg    registrations
	args   []string
	policy bool
}

// Open connects to tor and starts the session's loop. It keeps the live
// state of circuits and streams from the start (tor.circuits() and
// completion need it). Its error is a *ConnectError.
func (r *Runtime) Open(ctx context.Context) (*Session, error) {
	ctx, cancel := context.WithCancel(ctx)
	r.ctx = ctx
	r.pre["argv"].(*starlark.List).SetIndex(0, starlark.String("<repl>"))
	r.loader.setRoot(".", true)
	if r.opts.Connect != nil {
		c, err := r.connectTor(ctx)
		if err != nil {
			cancel()
			return nil, &ConnectError{Err: err}
		}
		r.conn = c
		r.metrics.useConn(c)
		r.connN++
		if err := (*host)(r).track(ctx); err != nil {
			c.Close()
			cancel()
			return nil, &ConnectError{Err: err}
		}
	}
	s := &Session{r: r, globals: starlark.StringDict{}, cancel: cancel, loopDone: make(chan struct{})}
	for k, v := range r.pre {
		s.globals[k] = v
	}
	s.stop = r.startWatchdog()
	go func() {
		defer close(s.loopDone)
		r.loop()
	}()
	return s, nil
}

// Done is closed when the session's loop has ended: exit() was called, or
// Close.
func (s *Session) Done() <-chan struct{} { return s.loopDone }

// Do runs f on the loop goroutine with the session's thread and globals,
// between events, and returns what f returned. Without a policy f runs
// without a step budget or deadline until it ends or Interrupt stops it;
// with a policy it is supervised like a handler, so that streams do not
// wait on the prompt.
func (s *Session) Do(f func(t *starlark.Thread, globals starlark.StringDict) error) error {
	res := make(chan error, 1)
	s.r.tasks.post(func() {
		err := s.run(f)
		s.r.exitRequested(err) // exit() at the prompt ends the session
		res <- err
	})
	select {
	case err := <-res:
		return err
	case <-s.loopDone:
		select {
		case err := <-res:
			return err
		default:
			return ErrSessionEnded
		}
	}
}

// TryDo is Do for work that must not wait long (completion): it gives up
// after d and returns false if the loop was busy.
func (s *Session) TryDo(d time.Duration, f func(globals starlark.StringDict)) bool {
	res := make(chan struct{})
	var mu sync.Mutex
	abandoned := false
	s.r.tasks.post(func() {
		mu.Lock()
		defer mu.Unlock()
		if !abandoned {
			f(s.globals)
			close(res)
		}
	})
	select {
	case <-res:
		return true
	case <-time.After(d):
	case <-s.loopDone:
	}
	mu.Lock()
	defer mu.Unlock()
	select {
	case <-res:
		return true
	default:
		abandoned = true
		return false
	}
}

func (s *Session) run(f func(*starlark.Thread, starlark.StringDict) error) error {
	r := s.r
	t := r.thread
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	s.mu.Lock()
	s.interrupt = func() {
		r.interrupt()
		cancel()
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.interrupt = nil
		s.mu.Unlock()
		r.uninterrupt()
	}()
	if r.policy == nil {
		t.SetMaxExecutionSteps(math.MaxUint64)
		ctx := scriptContext(ctx)
		builtins.SetContext(t, ctx)
		r.threadCtx = ctx
		return f(t, s.globals)
	}
	// Under a policy: supervised like a handler, and Interrupt reaches
	// builtins waiting for tor through the call's context.
	r.callCtx, r.callStop = context.WithCancel(scriptContext(ctx))
	defer func() { r.callCtx, r.callStop = context.WithCancel(scriptContext(context.Background())) }()
	fn := starlark.NewBuiltin("<prompt>", func(t *starlark.Thread, _ *starlark.Builtin, _ starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
		return starlark.None, f(t, s.globals)
	})
	_, err := r.call(fn, nil)
	var over *OverrunError
	if errors.As(err, &over) {
		err = fmt.Errorf("%w; with a stream policy active, input at the prompt is bounded like a handler (--handler-timeout, --max-steps)", err)
	}
	return err
}

// Interrupt stops what Do is running, as Ctrl-C does.
func (s *Session) Interrupt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.interrupt != nil {
		s.interrupt()
	}
}

// Load runs a script file into the session, as torscript run would run
// it: its handlers, timers and policy become the session's, and its
// globals are bound in the session. Its top level runs under the step
// budget and the top-level timeout. Call it from Do, with t the thread Do
// gave. It returns the names of the globals it bound, sorted.
func (s *Session) Load(t *starlark.Thread, path string, args ...string) ([]string, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	_, prog, err := starlark.SourceProgramOptions(FileOptions(), path, src, s.r.pre.Has)
	if err != nil {
		return nil, err
	}
	// A file's top level is bounded as torscript run bounds it, with or
	// without a policy.
	r := s.r
	r.sources[path] = src
	pre := r.fileGlobals(path, args)
	var g starlark.StringDict
	before := r.registered()
	hadPolicy := r.policy != nil && !r.policy.own
	_, err = r.superviseTop("top level of "+path, "top-level timeout", r.opts.TopLevelTimeout, func() (starlark.Value, error) {
		var err error
		g, err = prog.Init(t, pre)
		return starlark.None, err
	})
	if s.loads == nil {
		s.loads = map[string]*loaded{}
	}
	s.loads[path] = &loaded{reg: r.registeredSince(before), args: args,
		policy: !hadPolicy && r.policy != nil && !r.policy.own}
	return s.bind(g), err
}

// fileGlobals are what a file run into the session sees: the predeclared
// names, with argv its path and then the arguments after "--".
func (r *Runtime) fileGlobals(path string, args []string) starlark.StringDict {
	pre := make(starlark.StringDict, len(r.pre))
	for k, v := range r.pre {
		pre[k] = v
	}
	argv := []starlark.Value{starlark.String(path)}
	for _, a := range args {
		argv = append(argv, starlark.String(a))
	}
	pre["argv"] = starlark.NewList(argv)
	return pre
}

// bind binds a file's globals in the session and returns their names,
// sorted.
func (s *Session) bind(g starlark.StringDict) []string {
	names := make([]string, 0, len(g))
	for k, v := range g {
		s.globals[k] = v
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Reload runs a file loaded before (Load) again, as torscript run reloads
// on SIGHUP: if its new top level runs cleanly, the handlers and timers it
// registers replace those its last Load registered (what was typed at the
// prompt stays), its policy replaces the running one (asking it about
// the streams held), and its globals are bound; if not, nothing of it is
// kept and the error says why. The arguments are those of the last Load.
// Call it from Do.
func (s *Session) Reload(t *starlark.Thread, path string) ([]string, error) {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	last := s.loads[path]
	if last == nil {
		return nil, fmt.Errorf("%s was not loaded in this session (:load it first)", path)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := s.r
	_, prog, err := starlark.SourceProgramOptions(FileOptions(), path, src, r.pre.Has)
	if err != nil {
		return nil, errors.New(FormatError(err))
	}
	before := r.registered()
	p, g, err := r.runReloaded(path, src, prog, r.fileGlobals(path, last.args))
	added := r.registeredSince(before)
	if err != nil {
		r.drop(added)
		return nil, err
	}
	if err := r.swapPolicy(p, last.policy); err != nil {
		r.drop(added)
		return nil, err
	}
	r.drop(last.reg)
	s.loads[path] = &loaded{reg: added, args: last.args, policy: last.policy || p != nil}
	return s.bind(g), nil
}

// StopPolicy removes the policy: the streams it holds go back to tor (or
// are closed, per its on_error), __LeaveStreamsUnattached gets its earlier
// value, its mappings are removed and the tor's policy lock is given up.
// It reports whether there was one.
// Call it from Do.
func (s *Session) StopPolicy() bool {
	if s.r.policy == nil {
		return false
	}
	s.r.removePolicy("policy removed")
	return true
}

// removePolicy ends the running policy as StopPolicy does, logging msg.
// Call it on the loop, with a policy running.
func (r *Runtime) removePolicy(msg string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 15*time.Second)
	defer cancel()
	taken := r.policyShutdown(ctx)
	r.policy = nil
	if r.own.held {
		// Another torscript may take this tor's policy now; a later
		// :load takes the lock again. (The journal says the policy's
		// changes were undone: leave_restored, unmap.)
		r.own.policy.Unlock()
		r.own.held = false
	}
	if err := r.subscribe(); err != nil {
		r.log.Warn("after removing the policy: subscribing to events", "err", err)
	}
	r.log.Info(msg)
	r.dispatchEvents(taken, nil) // the handlers still see them
}

// Docs are the tor module's docstrings.
func (s *Session) Docs() builtins.Docs { return s.r.tor.Docs }

// HasPolicy reports whether a policy is set. Call it from Do.
func (s *Session) HasPolicy() bool { return s.r.policy != nil }

// Subscribe sets the events the session itself wants (raw SETEVENTS,
// watches), under a name, besides those its handlers need. Call it from
// Do.
func (s *Session) Subscribe(owner string, types []string) error {
	r := s.r
	if r.extraEvents == nil {
		r.extraEvents = map[string][]string{}
	}
	old := r.extraEvents[owner]
	r.extraEvents[owner] = slices.Clone(types)
	if err := r.subscribe(); err != nil {
		r.extraEvents[owner] = old
		return err
	}
	return nil
}

// Conn is the control connection; nil while reconnecting. Call it from Do.
func (s *Session) Conn() *ctl.Conn { return s.r.conn }

// ConnN counts the connections made so far, so that what was learnt from
// one connection can be refreshed on the next. Call it from Do.
func (s *Session) ConnN() int { return s.r.connN }

// CircuitIDs and StreamIDs are the live circuits' and streams' ids, oldest
// first. Call them from Do or TryDo.
func (s *Session) CircuitIDs() []string {
	var ids []string
	for _, c := range s.r.state.circs.All() {
		ids = append(ids, c.ID)
	}
	return ids
}

func (s *Session) StreamIDs() []string {
	var ids []string
	for _, st := range s.r.state.streams.All() {
		ids = append(ids, st.ID)
	}
	return ids
}

// Close ends the session as a script ends: it stops the loop, then undoes
// what the session changed in tor (the policy's streams and setting,
// address mappings). It returns the *ExitError of an exit() that asked
// for a code other than 0, else nil.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return exitErr(s.r.exitCode)
	}
	s.closed = true
	s.mu.Unlock()
	s.Interrupt()
	s.cancel()
	<-s.loopDone
	s.stop()
	s.r.shutdown()
	if s.r.conn != nil {
		s.r.conn.Close()
	}
	return exitErr(s.r.exitCode)
}

// EventValue is the value a handler would receive for ev. Call it from the
// loop (Options.OnEvent).
func (s *Session) EventValue(ev ctl.Event) starlark.Value {
	return builtins.EventValue(ev, (*host)(s.r))
}

// Call calls fn under supervision, as a handler is called. Call it from
// the loop (Options.OnEvent).
func (s *Session) Call(fn starlark.Callable, args starlark.Tuple) (starlark.Value, error) {
	return s.r.call(fn, args)
}
