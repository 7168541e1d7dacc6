// Package runtime runs a torscript script: it owns the Starlark interpreter
// and the one event-loop goroutine on which the script's top level, its
// event handlers, its timers and its stream policy run, one at a time. It
// supervises every call (a step budget and a wall deadline), keeps the live
// state of circuits and streams, reconnects to tor, and when the script
// ends hands back every stream it was holding and undoes what it changed.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/stdlib"
	"go.starlark.net/lib/json"
	"go.starlark.net/lib/math"
	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// Options configure a Runtime.
type Options struct {
	// Connect dials and authenticates to tor. It is called again, with
	// backoff, after the connection is lost. Nil runs without tor (check,
	// tests): every command fails with builtins.ErrNotConnected.
	Connect func(ctx context.Context) (*ctl.Conn, error)
	Logger  *slog.Logger
	// Stdout receives print(); default os.Stdout.
	Stdout io.Writer
	// MaxSteps bounds the Starlark steps of one handler, timer or policy
	// call. Default 10,000,000.
	MaxSteps uint64
	// HandlerTimeout bounds the wall time of one handler, timer or policy
	// call. Default 2s.
	HandlerTimeout time.Duration
	// DryRun calls the policy and logs its decisions but lets tor attach
	// every stream itself.
	DryRun bool
	// Args are the script's arguments, after its path (argv[1:]).
	Args []string
	// Stdlib holds the @stdlib/ modules; default the stdlib package.
	Stdlib fs.FS
	// Bootstrap, if set, makes Run wait for tor to finish bootstrapping
	// before running the script, writing progress lines to it.
	Bootstrap io.Writer
	// FormatValue, if set, formats the value of an expression Eval
	// prints (default: its String).
	FormatValue func(starlark.Value) string
	// OnEvent, if set, sees every event first, on the loop goroutine (the
	// REPL's event buffer and watches).
	OnEvent func(ctl.Event)
	// Allow are the user's grants (--allow): what the script may do that
	// changes tor for everyone. See ParseGrants.
	Allow []string

	// The top level's limits. TopLevelTimeout bounds the
	// wall time of the script's top level, of each module it loads with
	// it, and of a file loaded at the prompt; MaxSteps bounds their steps
	// too. Default 30s.
	TopLevelTimeout time.Duration

	// OnWedged, if set, is called from the watchdog's goroutine (never the
	// loop) when a call it cancelled has not returned WedgeGrace later:
	// cancellation cannot reach it (it is blocked inside one builtin or one
	// long Go operation). The guardian kills the interpreter and takes the
	// streams over.
	OnWedged func(what string, since time.Duration)

	// ExtraGlobals are names a runner adds to what every script sees
	// (torscript test's assert and sim): CheckRequirements accepts them.
	ExtraGlobals []string
	// Instance names the tor (tor.instance): its control address as the
	// user gave it.
	Instance string
	// QuietDecisions logs each policy decision at DEBUG rather than
	// INFO (--quiet).
	QuietDecisions bool
	// ExtraGlobalAttrs are the attributes of those of ExtraGlobals that
	// are modules, for Check to flag an attribute that does not exist.
	ExtraGlobalAttrs map[string][]string

	// Clock, if set, is the time of the script's timers instead of the
	// wall clock: it moves only with Advance (a simulator's virtual time).
	Clock *VirtualClock
	// OnFailure, if set, sees every failed handler, timer, policy or
	// at_exit call (a simulator fails the test with it).
	OnFailure func(msg string, err error)
	// Metrics, if set, counts what the runtime does (NewMetrics) and
	// holds the script's own metrics (tor.metrics); without it those
	// work and are not exported.
	Metrics *Metrics

	// Owner records what the run changes on tor before it changes it, and
	// holds the tor's stream policy (see Ownership); nil records nothing
	// (torscript test, check).
	Owner *Ownership
}

// ParseGrants checks grants given with --allow.
func ParseGrants(allow []string) error {
	_, err := newGrants(allow)
	return err
}

// Runtime runs one script. Create it with New; Run it once.
type Runtime struct {
	opts Options
	log  *slog.Logger

	ctx    context.Context // Run's context
	conn   *ctl.Conn       // nil while disconnected
	connN  int             // connections made so far
	tor    *builtins.Tor
	pre    starlark.StringDict
	thread *starlark.Thread
	loader *loader

	tasks tasks

	handlers    handlerTable
	extraEvents map[string][]string // events a Session asked for, by owner
	subs        string              // the SETEVENTS argument in effect
	timers      map[*timer]struct{}
	policy      *policyEngine
	state       *liveState
	routers     routerTable
	waiters     []*waiter // builtins' waits with callbacks, in the order made
	probes      probeSet  // tor.fetch and tor.connect (probes.go)
	maps        []mapping

	// Supervision: the watchdog stops an evaluation that overruns (loop.go).
	// A watch's state word makes "is it still running" and "stop it" one
	// step, so the watchdog never stops the next one by mistake; watchMu
	// orders the watchdog's stopping against the loop's slower paths.
	watchMu sync.Mutex
	// watches are the supervised evaluations, outermost first: callWatch
	// always (running or not), then those running inside it or instead of
	// it, innermost last; changed under watchMu.
	watches   []*watch
	watchSeq  uint64                        // counts supervised evaluations (loop goroutine)
	watchIdle atomic.Bool                   // the watchdog sleeps until enter sends on watchWake
	watchWake atomic.Pointer[chan struct{}] // capacity 1
	arg1      callArgs                      // the arguments of a handler call
	skipped   atomic.Uint64                 // events whose handlers were skipped (loop.go skip)
	// backlog is what is left of the loop's batch of events while tasks
	// run between two of its events (dispatchEvents): a task that takes
	// events (a policy's shutdown) takes these first (takeEvents), so
	// that the events keep their order.
	backlog     []ctl.Event
	callWatch   watch              // the outermost call's (loop.go call): watches[0]
	loading     []*starlark.Thread // threads of modules being loaded; under watchMu
	interrupted bool               // SIGINT/SIGTERM: keep the thread cancelled; under watchMu
	stepLimit   uint64             // the step budget in effect; 0 when none (loop goroutine)
	sources     map[string][]byte  // the source of each file run, to place an overrun
	callCtx     context.Context
	threadCtx   context.Context // the context set on thread
	callStop    context.CancelFunc
	overruns    atomic.Uint64
	exitCode    int
	exiting     bool
	fatal       error
	unexported  *Metrics // holds the script's metrics without Options.Metrics
	metrics     *Metrics // Options.Metrics; nil: not counted
	reconnect   *reconnector
	grants      *grants
	atExit      []starlark.Callable // tor.at_exit, last first at shutdown
	own         ownState            // this run's records (ownership.go)
	topLevel    bool                // the main script's top level is running
	deferred    *builtins.Policy    // tor.policy called by the top level, started after it
	reloading   bool                // a new version's top level runs (Reload)
}

type handler struct {
	fn       starlark.Callable
	failures int // in a row
}

// handlerTable is the script's handlers by event type. Those of the types
// the connection defers (CIRC, STREAM, BW, ORCONN: most of a flood) are
// also in an array, found by comparing the type with four constants
// rather than by hashing it for a map on every event.
type handlerTable struct {
	m   map[string][]*handler // every type's; iterate it, change it with set
	hot [4][]*handler         // CIRC, STREAM, BW and ORCONN's (hotIndex)
}

func hotIndex(typ string) int {
	switch typ {
	case ctl.EventCirc:
		return 0
	case ctl.EventStream:
		return 1
	case ctl.EventBW:
		return 2
	case ctl.EventORConn:
		return 3
	}
	return -1
}

// get is typ's handlers.
func (t *handlerTable) get(typ string) []*handler {
	if i := hotIndex(typ); i >= 0 {
		return t.hot[i]
	}
	return t.m[typ]
}

// set makes hs typ's handlers.
func (t *handlerTable) set(typ string, hs []*handler) {
	t.m[typ] = hs
	if i := hotIndex(typ); i >= 0 {
		t.hot[i] = hs
	}
}

type mapping struct {
	ctl.AddrMap
	keep bool
}

// New prepares a runtime; it does no I/O.
func New(opts Options) *Runtime {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.MaxSteps == 0 {
		opts.MaxSteps = 10_000_000
	}
	if opts.HandlerTimeout <= 0 {
		opts.HandlerTimeout = 2 * time.Second
	}
	if opts.TopLevelTimeout <= 0 {
		opts.TopLevelTimeout = 30 * time.Second
	}
	if opts.Stdlib == nil {
		opts.Stdlib = stdlib.FS
	}
	r := &Runtime{
		opts:     opts,
		log:      opts.Logger,
		handlers: handlerTable{m: map[string][]*handler{}},
		timers:   map[*timer]struct{}{},
		sources:  map[string][]byte{},
	}
	r.callWatch.limit, r.callWatch.timeout = "handler timeout", opts.HandlerTimeout
	r.watches = []*watch{&r.callWatch}
	r.state = newLiveState((*host)(r))
	r.tasks.init()
	var err error
	if r.grants, err = newGrants(opts.Allow); err != nil {
		r.grants, _ = newGrants(nil) // the caller checked them with ParseGrants
	}
	r.metrics = opts.Metrics
	r.tor = builtins.NewTor((*host)(r))
	argv := make([]starlark.Value, 0, len(opts.Args)+1)
	argv = append(argv, starlark.String(""))
	for _, a := range opts.Args {
		argv = append(argv, starlark.String(a))
	}
	r.pre = starlark.StringDict{
		"tor":    r.tor.Module,
		"exit":   starlark.NewBuiltin("exit", exitBuiltin),
		"help":   builtins.NewHelp(r.tor.Docs),
		"argv":   starlark.NewList(argv),
		"json":   json.Module,
		"math":   math.Module,
		"time":   startime.Module,
		"struct": starlark.NewBuiltin("struct", starlarkstruct.Make),
		"module": starlark.NewBuiltin("module", starlarkstruct.MakeModule),
	}
	r.loader = &loader{stdlib: opts.Stdlib, cache: map[string]*loadEntry{}, exec: r.execModule, outside: r.grants.has("load")}
	r.thread = r.newThread("main")
	r.callCtx, r.callStop = context.WithCancel(scriptContext(context.Background()))
	return r
}

// connectTor connects with Options.Connect and holds the script's commands
// on the new connection to its grants.
func (r *Runtime) connectTor(ctx context.Context) (*ctl.Conn, error) {
	c, err := r.opts.Connect(ctx)
	if c != nil {
		c.SetCheck(r.checkCommand)
		c.Defer(deferredEvents...)
	}
	return c, err
}

// deferredEvents are the event types the connection leaves unparsed
// (ctl.Deferred) until something reads them: the many that handlers often
// only count, and CIRC and STREAM, whose ID and status are all the live
// state and the policy need at once of most. The policy's own STREAM
// events (new and detached streams) are parsed at once (dispatch).
var deferredEvents = []string{ctl.EventCirc, ctl.EventStream, ctl.EventBW, ctl.EventORConn}

// Predeclared are the names every script sees: tor, exit, help, argv,
// json, math, time, struct, module.
func (r *Runtime) Predeclared() starlark.StringDict { return r.pre }

// Tor is the tor module, for help and tests.
func (r *Runtime) Tor() *builtins.Tor { return r.tor }

func (r *Runtime) newThread(name string) *starlark.Thread {
	t := &starlark.Thread{
		Name: name,
		Load: r.loader.load,
		Print: func(_ *starlark.Thread, msg string) {
			fmt.Fprintln(r.opts.Stdout, msg)
		},
	}
	return t
}

func exitBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	code := 0
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0, &code); err != nil {
		return nil, err
	}
	if code < 0 || code > 125 {
		return nil, fmt.Errorf("exit: code %d: want 0-125", code)
	}
	return nil, &ExitError{Code: code}
}

func (r *Runtime) execModule(parent *starlark.Thread, name string, src []byte) (starlark.StringDict, error) {
	t := r.newThread("load " + name)
	builtins.SetContext(t, builtins.Context(parent))
	_, prog, err := starlark.SourceProgramOptions(FileOptions(), name, src, r.pre.Has)
	if err != nil {
		return nil, err
	}
	r.sources[name] = src
	// The module runs within its loader's limits: what is left of the
	// step budget, and the watchdog cancels it with the loader.
	if r.stepLimit != 0 {
		used := r.thread.ExecutionSteps()
		for _, l := range r.loading {
			used += l.ExecutionSteps()
		}
		if used >= r.stepLimit {
			t.SetMaxExecutionSteps(1)
		} else {
			t.SetMaxExecutionSteps(r.stepLimit - used)
		}
	}
	r.watchMu.Lock()
	r.loading = append(r.loading, t)
	if r.interrupted {
		t.Cancel("interrupted")
	}
	for _, w := range r.watches {
		if w.isStopped() {
			t.Cancel(w.reason())
		}
	}
	r.watchMu.Unlock()
	defer func() {
		r.watchMu.Lock()
		r.loading = r.loading[:len(r.loading)-1]
		r.watchMu.Unlock()
		parent.Steps += t.Steps
	}()
	return prog.Init(t, r.pre)
}

// Check parses and resolves a script and every module it loads, without
// running anything. Errors read file:line:col: message: a syntax or name
// error, a load cycle, a loaded name its module does not define.
func Check(filename string, src []byte, opts Options) error {
	_, err := CheckRequirements(filename, src, opts)
	return err
}

// Run runs a script until it ends: at once if it registers no handler,
// timer or policy; otherwise until exit(), ctx is cancelled (SIGINT,
// SIGTERM) or a fatal error. It returns nil, an *ExitError for exit(n)
// with n other than 0, or the *ScriptError, *ConnectError or
// *BootstrapError that ended it (a handler's error is logged as well).
func (r *Runtime) Run(ctx context.Context, filename string, src []byte) error {
	return r.run(ctx, filename, src, false)
}

// Eval runs src like Run; when src is a single expression its value is
// printed unless it is None.
func (r *Runtime) Eval(ctx context.Context, src string) error {
	return r.run(ctx, "<eval>", []byte(src), true)
}

func (r *Runtime) run(ctx context.Context, filename string, src []byte, eval bool) error {
	r.ctx = ctx
	r.pre["argv"].(*starlark.List).SetIndex(0, starlark.String(filename))
	if eval {
		r.loader.setRoot(".", true)
	} else {
		r.loader.setRoot(filename, false)
	}
	builtins.SetContext(r.thread, scriptContext(ctx))

	// Compile before connecting: a script that cannot run should not
	// touch tor.
	expr, prog, err := r.compile(filename, src, eval)
	if err != nil {
		return err
	}
	if ready, err := r.start(ctx); !ready {
		return err
	}
	defer func() {
		if r.conn != nil {
			r.conn.Close()
		}
	}()

	stopWatch := r.startWatchdog()
	defer stopWatch()

	// The top level runs under the step budget and the top-level timeout,
	// and stops on ctx.
	r.sources[filename] = src
	stopTop := context.AfterFunc(ctx, r.interrupt)
	_, err = r.superviseTop("top level of "+filename, "top-level timeout", r.opts.TopLevelTimeout, func() (starlark.Value, error) {
		if expr {
			v, err := starlark.EvalOptions(FileOptions(), r.thread, filename, src, r.pre)
			if err == nil && v != starlark.None {
				s := v.String()
				if r.opts.FormatValue != nil {
					s = r.opts.FormatValue(v)
				}
				fmt.Fprintln(r.opts.Stdout, s)
			}
			return starlark.None, err
		}
		r.topLevel = true
		defer func() { r.topLevel = false }()
		// The main module's globals stay mutable: handlers keep state
		// in them.
		_, err := prog.Init(r.thread, r.pre)
		return starlark.None, err
	})
	stopTop()
	r.uninterrupt() // at_exit functions run after an interrupted top level
	if err != nil {
		var exit *ExitError
		if errors.As(err, &exit) {
			r.exitCode, r.exiting = exit.Code, true
		} else if ctx.Err() != nil {
			r.exiting = true
		} else {
			r.fatal = err
		}
	}
	if p := r.deferred; p != nil && r.fatal == nil && !r.exiting {
		// tor.policy at the top level: it takes the streams now.
		r.deferred = nil
		if perr := r.startPolicy(p); perr != nil {
			r.fatal = fmt.Errorf("tor.policy: %w", perr)
		}
	}
	if r.fatal == nil && !r.exiting && r.longRunning() {
		r.loop()
	}
	r.shutdown()
	if r.fatal != nil {
		return &ScriptError{Err: r.fatal}
	}
	return exitErr(r.exitCode)
}

// compile compiles a script, or says that Eval's src is one expression
// (expr, no program).
func (r *Runtime) compile(filename string, src []byte, eval bool) (expr bool, prog *starlark.Program, err error) {
	if eval {
		if _, perr := FileOptions().ParseExpr(filename, src, 0); perr == nil {
			return true, nil, nil
		}
	}
	_, prog, err = starlark.SourceProgramOptions(FileOptions(), filename, src, r.pre.Has)
	if err != nil {
		return false, nil, &ScriptError{Err: errors.New(FormatError(err))}
	}
	return false, prog, nil
}

// start connects to tor and waits for it to bootstrap (Options.Bootstrap).
// When the script is not to run it returns false and the error that
// ends Run (nil when ctx ended the wait).
func (r *Runtime) start(ctx context.Context) (ready bool, err error) {
	if r.opts.Connect == nil {
		return true, nil
	}
	c, err := r.connectTor(ctx)
	if err != nil {
		return false, &ConnectError{Err: err}
	}
	r.conn = c
	r.metrics.useConn(c)
	r.connN++
	if r.opts.Bootstrap == nil {
		return true, nil
	}
	if err := r.waitBootstrap(ctx); err != nil {
		r.conn.Close()
		if ctx.Err() != nil {
			r.log.Info("interrupted while waiting for tor to bootstrap")
			return false, nil
		}
		return false, &BootstrapError{Err: err}
	}
	return true, nil
}

func (r *Runtime) longRunning() bool {
	if r.policy != nil || len(r.timers) > 0 || len(r.waiters) > 0 || r.probesPending() {
		return true
	}
	for _, hs := range r.handlers.m {
		if len(hs) > 0 {
			return true
		}
	}
	return false
}

func argsText(kvs []ctl.KeyValue) string {
	var b strings.Builder
	for _, kv := range kvs {
		b.WriteString(kv.Key)
		if kv.HasValue {
			b.WriteString("=" + ctl.QuoteIfNeeded(kv.Value))
		}
		b.WriteByte(' ')
	}
	return b.String()
}

// waitBootstrap waits until tor reports bootstrap progress 100, writing a
// line for each step.
func (r *Runtime) waitBootstrap(ctx context.Context) error {
	progress := func(s string) (int, string) {
		var pct int
		var tag, summary string
		a := ctl.NewArgs(s)
		for {
			kv, ok := a.Next()
			if !ok {
				break
			}
			switch kv.Key {
			case "PROGRESS":
				fmt.Sscan(kv.Value, &pct)
			case "TAG":
				tag = kv.Value
			case "SUMMARY":
				summary = kv.Value
			}
		}
		return pct, tag + ": " + summary
	}
	if err := r.conn.SetEvents(ctx, ctl.EventStatusClient); err != nil {
		return err
	}
	defer r.conn.SetEvents(ctx)
	phase, err := r.conn.GetInfoOne(ctx, "status/bootstrap-phase")
	if err != nil {
		return err
	}
	pct, what := progress(phase)
	if pct >= 100 {
		return nil
	}
	fmt.Fprintf(r.opts.Bootstrap, "waiting for tor to bootstrap: %d%% %s\n", pct, what)
	buf := make([]ctl.Event, 0, 16)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.conn.EventReady():
		}
		var ok bool
		buf, ok = r.conn.EventBatch(buf)
		if !ok {
			return r.conn.Err()
		}
		for _, ev := range buf {
			st, isStatus := ev.(*ctl.StatusEvent)
			if !isStatus || st.Action != "BOOTSTRAP" {
				continue
			}
			p, what := progress(argsText(st.Args))
			if p > pct {
				pct = p
				fmt.Fprintf(r.opts.Bootstrap, "waiting for tor to bootstrap: %d%% %s\n", pct, what)
			}
			if pct >= 100 {
				return nil
			}
		}
	}
}
