package runtime

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

// tasks is the loop's queue of work posted from other goroutines (command
// completions, timers, reconnects). Posting never blocks.
type tasks struct {
	mu     sync.Mutex
	q      []func()
	notify chan struct{}
	// pending says that q may hold tasks: the loop looks at it between
	// events, with an atomic load, so that a flood does not hold tasks
	// back (timers, the end of the context, the policy's sweep).
	pending atomic.Bool
}

func (t *tasks) init() { t.notify = make(chan struct{}, 1) }

func (t *tasks) post(f func()) {
	t.mu.Lock()
	t.q = append(t.q, f)
	t.pending.Store(true)
	t.mu.Unlock()
	select {
	case t.notify <- struct{}{}:
	default:
	}
}

func (t *tasks) take(buf []func()) []func() {
	t.mu.Lock()
	buf = append(buf[:0], t.q...)
	clear(t.q)
	t.q = t.q[:0]
	t.pending.Store(false)
	t.mu.Unlock()
	return buf
}

// loop runs events, tasks and timers on the calling goroutine until the
// script exits or ctx ends.
func (r *Runtime) loop() {
	var evs []ctl.Event
	var fs []func()
	// The loop waits on two channels only: the end of ctx and the sweep's
	// period come as tasks. A select on more costs each round trip of a
	// policy more (each channel locked twice a wait), and one on a
	// ticker's channel puts the ticker in the timer heap at every wait,
	// and takes it out after.
	stopCtx := context.AfterFunc(r.ctx, func() { r.tasks.post(func() { r.exiting = true }) })
	defer stopCtx()
	sweepDone := make(chan struct{})
	defer close(sweepDone)
	go func() {
		t := time.NewTicker(sweepEvery)
		defer t.Stop()
		for {
			select {
			case <-sweepDone:
				return
			case <-t.C:
				r.tasks.post(r.sweep)
			}
		}
	}()
	for !r.exiting && r.fatal == nil && r.ctx.Err() == nil {
		var ready <-chan struct{}
		if r.conn != nil {
			ready = r.conn.EventReady()
		}
		select {
		case <-ready:
			// The connection's end comes this way too: the queue wakes
			// the loop when it closes, and EventBatch says !ok once
			// every event before the end is taken.
			for !r.exiting && r.fatal == nil {
				var ok bool
				evs, ok = r.conn.EventBatch(evs)
				if len(evs) == 0 {
					if !ok {
						r.disconnected()
					}
					break
				}
				// The tasks posted meanwhile run between the batch's
				// events (dispatchEvents): events that keep coming
				// faster than the handlers take them would otherwise
				// keep this loop from the select below for as long as
				// they come, and with it the timers, the end of the
				// context (SIGTERM) and the policy's timeouts.
				r.dispatchEvents(evs, &fs)
			}
		case <-r.tasks.notify:
			fs, _ = r.runTasks(fs)
		}
	}
	if r.ctx.Err() != nil {
		r.exiting = true
	}
}

// sweepEvery is how often the loop sweeps the policy's waiting streams.
const sweepEvery = 200 * time.Millisecond

// sweep ends the policy's waits that are past their deadline.
func (r *Runtime) sweep() {
	if r.policy != nil {
		r.policy.sweep(time.Now())
	}
}

// dispatchEvents dispatches evs in order, and returns how many. Once the
// script ends, the rest go to the policy for shutdown: it must still see
// new streams. With fs (the loop's buffer of tasks), it runs the tasks
// posted meanwhile between two events.
//
// The decisions a batch causes go out together: the connection is corked
// while it runs, and flushed at its end and, in a long batch, once the
// oldest decision held has waited flushAfter (looked at every flushCheck
// events).
func (r *Runtime) dispatchEvents(evs []ctl.Event, fs *[]func()) int {
	if c := r.conn; c != nil {
		c.Cork()
		defer c.Flush()
	}
	n := 0
	for len(evs) > 0 {
		if r.exiting || r.fatal != nil {
			if r.policy != nil {
				r.policy.pending(evs)
			}
			return n
		}
		ev := evs[0]
		evs[0], evs = nil, evs[1:]
		r.dispatch(ev)
		n++
		if fs != nil && r.tasks.pending.Load() {
			// The decisions held so far go out first: a task may take
			// long (input at the prompt) without a call that guards them.
			// What is left of the batch is the backlog while the tasks
			// run: one that takes events takes it first.
			c := r.conn
			if c != nil {
				c.Flush()
			}
			r.backlog = evs
			*fs, _ = r.runTasks(*fs)
			evs, r.backlog = r.backlog, nil
			if c != nil {
				c.Cork()
			}
		}
		if c := r.conn; c != nil && n%flushCheck == 0 && c.HeldFor() >= flushAfter {
			c.Flush()
			c.Cork()
		}
	}
	return n
}

// takeEvents is conn.EventBatch for code that runs as a task: the backlog
// of the loop's batch (dispatchEvents) first, then the events queued
// since. ok is false once the connection has ended and nothing is left.
func (r *Runtime) takeEvents(buf []ctl.Event) (evs []ctl.Event, ok bool) {
	buf = append(buf[:0], r.backlog...)
	clear(r.backlog)
	r.backlog = nil
	more, ok := r.conn.EventBatch(nil)
	return append(buf, more...), ok || len(buf) > 0
}

// A long batch (a flood of events) writes the decisions it holds once the
// oldest has waited flushAfter, looked at every flushCheck events: about
// 1 ms, or flushCheck slow handlers' calls more. Fewer, larger writes cost
// tor and torscript fewer system calls than a write every few hundred
// events (script (b) of tests/bench: about 5 % more events a second).
// The check costs an atomic load, and a clock read when decisions wait.
const (
	flushCheck = 32
	flushAfter = time.Millisecond
)

// runTasks runs the tasks posted to the loop (fs is a buffer), and returns
// how many.
func (r *Runtime) runTasks(fs []func()) ([]func(), int) {
	fs = r.tasks.take(fs)
	for i, f := range fs {
		f()
		fs[i] = nil
	}
	return fs, len(fs)
}

// dispatch handles one event: the live state first, then the policy, then
// the script's handlers.
func (r *Runtime) dispatch(ev ctl.Event) {
	if d, ok := ev.(*ctl.Deferred); ok && (r.opts.OnEvent != nil || len(r.waiters) > 0 || r.streamParsed(d)) {
		ev = d.Event() // they take events parsed
	}
	if r.opts.OnEvent != nil {
		r.opts.OnEvent(ev)
	}
	if r.metrics != nil {
		r.metrics.event(ev)
	}
	var stream builtins.Source[ctl.Stream] // a deferred STREAM event's stream, as the live state keeps it
	var streamVal *builtins.Stream         // and its value for handlers, allocated with it
	switch e := ev.(type) {
	case *ctl.StreamEvent:
		r.state.stream(&e.Stream)
		if len(r.probes.byUser) > 0 {
			r.probes.onStream(r, e)
		}
		if r.policy != nil {
			r.policy.onStream(e)
		}
	case *ctl.CircEvent:
		r.state.circuit(&e.Circuit)
		if r.policy != nil {
			r.policy.onCircuit(e.ID, e.Status)
		}
	case *ctl.Deferred:
		// CIRC, STREAM, BW and ORCONN are left unparsed
		// (deferredEvents): a CIRC or STREAM event's ID and status are
		// read now, the rest when a script reads the circuit or stream.
		if id, status, ok := e.CircHead(); ok {
			r.state.deferredCircuit(id, status, e)
			if r.policy != nil {
				r.policy.onCircuit(id, status)
			}
		} else if id, status, ok := e.StreamHead(); ok {
			stream, streamVal = r.state.deferredStream(id, status, e, len(r.handlers.get(ctl.EventStream)) > 0)
			if r.policy != nil {
				r.policy.onStreamStatus(id, status)
			}
		}
	case *ctl.NewConsensusEvent, *ctl.NSEvent, *ctl.NewDescEvent:
		r.routers.stale()
	}
	if len(r.waiters) > 0 {
		r.wake(ev)
		if r.exiting {
			return
		}
	}
	hs := r.handlers.get(ev.EventType())
	if len(hs) == 0 {
		return
	}
	if r.policy != nil && r.conn != nil && r.conn.Behind() && ctl.Droppable(ev.EventType()) {
		r.skip(ev.EventType())
		return
	}
	var v starlark.Value
	if streamVal != nil {
		streamVal.SetDeferred(ev.(*ctl.Deferred), stream, (*host)(r))
		v = streamVal
	} else if stream != nil {
		v = builtins.DeferredStream(ev.(*ctl.Deferred), stream, (*host)(r))
	} else {
		v = builtins.EventValue(ev, (*host)(r))
	}
	for _, h := range hs {
		_, err := r.call(h.fn, r.arg1.of(h.fn, v))
		r.handlerResult(h, ev.EventType(), err)
		if r.exiting {
			return
		}
	}
}

// skip leaves out the handlers of ev, high-volume telemetry, while the
// loop is over a second behind tor and a policy waits: client streams
// wait in tor behind the events queued, and a slow handler (one on DEBUG
// events, say) would hold them for as long as it takes to get through
// the 4 MiB queued. The loop gets through that telemetry at once instead;
// STREAM, CIRC and every other event still go to their handlers, in order.
func (r *Runtime) skip(typ string) {
	n := r.skipped.Add(1)
	r.metrics.skip()
	if n&(n-1) == 0 { // 1, 2, 4, 8, ...: loud but bounded
		r.log.Warn("the loop is over a second behind tor while the policy waits for streams: the handlers of high-volume events are skipped until it catches up",
			"skipped", n, "type", typ)
	}
}

// streamParsed says whether a deferred event is a STREAM event that
// dispatch takes parsed: one malformed in its head (an unknown event, as
// parsed at once), one the policy asks about (needsStream), or any while
// probes (tor.fetch, tor.connect) look for their streams.
func (r *Runtime) streamParsed(d *ctl.Deferred) bool {
	if d.Type != ctl.EventStream {
		return false
	}
	_, status, ok := d.StreamHead()
	return !ok || r.policy != nil && needsStream(status) || len(r.probes.byUser) > 0
}

// callArgs is the argument tuple of calls with one argument (a handler's
// event, the policy's stream): a Starlark function copies its arguments
// before it runs a step, so its calls share one tuple; a builtin may keep
// the tuple it was given, so it gets its own.
type callArgs struct{ t starlark.Tuple }

// of is the arguments (v) of a call to fn.
func (a *callArgs) of(fn starlark.Callable, v starlark.Value) starlark.Tuple {
	if _, ok := fn.(*starlark.Function); !ok {
		return starlark.Tuple{v}
	}
	if a.t == nil {
		a.t = make(starlark.Tuple, 1)
	}
	a.t[0] = v
	return a.t
}

func (r *Runtime) handlerResult(h *handler, what string, err error) {
	if err == nil {
		h.failures = 0
		return
	}
	if r.exitRequested(err) {
		return
	}
	h.failures++
	r.reportFailure("handler failed", h.failures, err, "handler", h.fn.Name(), "event", what)
}

// exitRequested says whether err is exit() and if so ends the loop.
func (r *Runtime) exitRequested(err error) bool {
	var exit *ExitError
	if errors.As(err, &exit) {
		r.exitCode, r.exiting = exit.Code, true
		return true
	}
	return false
}

// reportFailure logs a failed call with its backtrace; a function that
// keeps failing is reported louder at 10, 100, 1000, ... failures in a row.
func (r *Runtime) reportFailure(msg string, inARow int, err error, attrs ...any) {
	r.metrics.failed(msg)
	if r.opts.OnFailure != nil {
		r.opts.OnFailure(msg, err)
	}
	attrs = append(attrs, "err", FormatError(err))
	if inARow >= 10 && isPowerOf10(inARow) {
		r.log.Error(msg+": it keeps failing", append(attrs, "failures_in_a_row", inARow)...)
		return
	}
	r.log.Error(msg, attrs...)
}

func isPowerOf10(n int) bool {
	for n >= 10 && n%10 == 0 {
		n /= 10
	}
	return n == 1
}

// WedgeGrace is how long a call the watchdog cancelled may take to return
// before the watchdog reports it wedged (Options.OnWedged): cancellation
// acts between Starlark instructions and on builtins waiting for tor, so a
// call still running this long after it is blocked inside one builtin or
// one long Go operation (a sort or comparison of a huge value) that
// nothing can interrupt.
const WedgeGrace = 250 * time.Millisecond

// watch is one supervised evaluation: a handler, timer or policy call, a
// top level, a test. They nest (a test's sim calls run the script's
// policy), the innermost last in Runtime.watches.
//
// The outermost call (Runtime.callWatch, reused by every handler, timer
// and policy call) is shown to the watchdog and taken back without
// watchMu, which a million calls a second would otherwise take twice
// each: its state word holds its sequence number and whether it runs and
// has been stopped. The loop sets it running (enter) and, unless the
// watchdog stopped it or it failed, ends it with a compare-and-swap
// (exit); the watchdog stops it with a compare-and-swap under watchMu,
// which only succeeds while that same evaluation still runs. An exit that
// loses the race takes watchMu, so it waits for the watchdog to have
// cancelled what it stopped. fn and stop, which the loop sets before
// enter, are read by the watchdog only after its swap succeeded: the
// loop cannot change them before its own exit.
type watch struct {
	what    string            // for logs and OnWedged: "top level of x.star"; see name
	fn      starlark.Callable // a call's function: its what is "call to NAME"
	limit   string            // the name of the deadline: "handler timeout", ...
	timeout time.Duration     // its wall deadline
	stop    func()            // cancels the context of the builtins it calls

	// state is seq<<2 | watchStopped | watchRunning: seq tells this
	// evaluation from the one before it in the same watch.
	state atomic.Uint64

	// The watchdog's.
	seen      uint64    // the seq the watchdog first saw, at start
	start     time.Time // about when it started: the watchdog's tick that first saw it
	stoppedAt time.Time
	wedged    bool
}

const (
	watchRunning = 1 << iota
	watchStopped
)

// isStopped says whether w runs and has been stopped.
func (w *watch) isStopped() bool {
	s := w.state.Load()
	return s&watchRunning != 0 && s&watchStopped != 0
}

func (w *watch) name() string {
	if w.fn != nil {
		return "call to " + w.fn.Name()
	}
	return w.what
}

func (w *watch) reason() string {
	return w.name() + " ran longer than the " + w.limit + " (" + w.timeout.String() + ")"
}

// call runs fn under supervision as a handler, timer or policy call: the
// step budget (MaxSteps) and the handler timeout.
func (r *Runtime) call(fn starlark.Callable, args starlark.Tuple) (starlark.Value, error) {
	t := r.thread
	nested := r.supervising()
	if nested {
		// Nested in a supervised evaluation (a test's sim calls run
		// the script's handlers): give it back its context after.
		saved, savedSet := builtins.Context(t), r.threadCtx
		defer func() {
			builtins.SetContext(t, saved)
			r.threadCtx = savedSet
		}()
	}
	if r.threadCtx != r.callCtx {
		builtins.SetContext(t, r.callCtx)
		r.threadCtx = r.callCtx
	}
	if c := r.conn; c != nil {
		c.Guard() // decisions held before the call go out if it takes long
	}
	// The outermost call reuses one watch: calls allocate nothing for
	// their supervision.
	w := &r.callWatch
	if nested {
		w = &watch{limit: "handler timeout", timeout: r.opts.HandlerTimeout}
	}
	w.fn, w.stop = fn, r.callStop
	outer, own := r.enter(w)
	v, err := starlark.Call(t, fn, args, nil)
	err = r.exit(w, outer, own, err)
	if w.state.Load()&watchStopped != 0 {
		// Start afresh for the next call: the context builtins wait on
		// is cancelled.
		r.callCtx, r.callStop = context.WithCancel(scriptContext(context.Background()))
	}
	return v, err
}

// superviseTop runs f, a top level (of the script, a module it loads, a
// file loaded at the prompt, a test), under the step budget and the
// top-level timeout; the builtins it calls wait on a context the watchdog
// cancels at the deadline.
func (r *Runtime) superviseTop(what, limit string, timeout time.Duration, f func() (starlark.Value, error)) (starlark.Value, error) {
	t := r.thread
	saved := builtins.Context(t)
	savedSet := r.threadCtx
	ctx, cancel := context.WithCancel(saved)
	defer cancel()
	builtins.SetContext(t, ctx)
	r.threadCtx = ctx
	defer func() {
		builtins.SetContext(t, saved)
		r.threadCtx = savedSet
	}()
	return r.supervise(&watch{what: what, limit: limit, timeout: timeout, stop: cancel}, f)
}

// supervise runs f on the interpreter's thread under w's wall deadline
// and a step budget of MaxSteps (no more than what an enclosing
// evaluation has left). An overrun of either is an *OverrunError naming
// the line where the script was.
func (r *Runtime) supervise(w *watch, f func() (starlark.Value, error)) (starlark.Value, error) {
	outer, own := r.enter(w)
	v, err := f()
	return v, r.exit(w, outer, own, err)
}

// enter starts supervising w: it sets the step budget and shows w to the
// watchdog. It returns the enclosing budget and w's own.
func (r *Runtime) enter(w *watch) (outer, own uint64) {
	t := r.thread
	outer = r.stepLimit
	own = t.ExecutionSteps() + r.opts.MaxSteps
	if own < r.opts.MaxSteps { // overflow
		own = math.MaxUint64
	}
	limit := own
	if outer != 0 && outer < limit {
		limit = outer
	}
	r.stepLimit = limit
	t.SetMaxExecutionSteps(limit)
	// No clock read here (it costs more than a short handler on some
	// machines): the watchdog times the evaluation from the tick that
	// first sees it, so a deadline is met within two ticks.
	r.watchSeq++
	running := r.watchSeq<<2 | watchRunning
	if w == &r.callWatch {
		w.state.Store(running) // watches[0]
	} else {
		r.watchMu.Lock()
		w.state.Store(running)
		r.watches = append(r.watches, w)
		r.watchMu.Unlock()
	}
	// After the state moved: the watchdog, which sets watchIdle before it
	// looks at callWatch's state a last time, either sees it moved or is
	// woken here (for other watches watchMu orders the two).
	if r.watchIdle.Load() && r.watchIdle.CompareAndSwap(true, false) {
		if wake := r.watchWake.Load(); wake != nil {
			select {
			case *wake <- struct{}{}:
			default:
			}
		}
	}
	return outer, own
}

// supervising says whether a supervised evaluation runs (on the loop's
// goroutine, which alone starts and ends them).
func (r *Runtime) supervising() bool {
	return len(r.watches) > 1 || r.callWatch.state.Load()&watchRunning != 0
}

// exit ends supervising w, the innermost evaluation, which returned err,
// and returns err or the *OverrunError it was.
func (r *Runtime) exit(w *watch, outer, own uint64, err error) error {
	t := r.thread
	stopped := false
	if s := w.state.Load(); w != &r.callWatch || err != nil || !w.state.CompareAndSwap(s&^watchStopped, s&^(watchStopped|watchRunning)) {
		// Not the outermost call, or it failed, or the watchdog stopped
		// it: under watchMu, after the watchdog's cancelling.
		r.watchMu.Lock()
		s := w.state.Load()
		w.state.Store(s &^ watchRunning)
		if w != &r.callWatch {
			r.watches = r.watches[:len(r.watches)-1]
		}
		// The thread stays cancelled while an enclosing evaluation is
		// being stopped or the run interrupted; otherwise the next call
		// starts afresh (the step budget cancels the thread too).
		keep := r.interrupted
		for _, o := range r.watches {
			keep = keep || o.isStopped()
		}
		stopped = s&watchStopped != 0
		r.watchMu.Unlock()
		if !keep && (stopped || err != nil) {
			t.Uncancel()
		}
	}
	r.stepLimit = outer
	if outer == 0 {
		t.SetMaxExecutionSteps(math.MaxUint64)
	} else {
		t.SetMaxExecutionSteps(outer)
	}
	if err == nil {
		return nil
	}
	steps := own != math.MaxUint64 && t.ExecutionSteps() >= own
	if !stopped && !steps {
		return err
	}
	r.placeOverrun(err)
	ov := &OverrunError{What: w.name(), Err: err}
	if stopped {
		// A builtin waiting for tor reports its context's end, not why:
		// the reason says why.
		ov.Limit, ov.Timeout = w.limit, w.timeout
	} else {
		ov.Steps = r.opts.MaxSteps
	}
	return ov
}

// stopping reports whether the running evaluation is being stopped (by
// its deadline or an interrupt): Go code that loops on behalf of the script
// (settle) should return.
func (r *Runtime) stopping() bool {
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	if r.interrupted {
		return true
	}
	for _, w := range r.watches {
		if w.isStopped() {
			return true
		}
	}
	return false
}

// interrupt cancels whatever runs on the interpreter's thread, and keeps
// it cancelled until uninterrupt (SIGINT or SIGTERM during a top level or
// a test).
func (r *Runtime) interrupt() {
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	r.interrupted = true
	r.cancelThreads("interrupted")
}

func (r *Runtime) uninterrupt() {
	r.watchMu.Lock()
	r.interrupted = false
	r.watchMu.Unlock()
	r.thread.Uncancel()
}

// cancelThreads cancels the interpreter's thread and the threads of the
// modules it is loading. Call it with watchMu held.
func (r *Runtime) cancelThreads(reason string) {
	r.thread.Cancel(reason)
	for _, t := range r.loading {
		t.Cancel(reason)
	}
}

// watchTick is the watchdog's period: an overrun is noticed within two
// ticks of its deadline (the first tick that sees an evaluation starts its
// clock), a wedge within one tick of WedgeGrace after it.
func watchTick(handlerTimeout time.Duration) time.Duration {
	return min(max(handlerTimeout/8, 5*time.Millisecond), 25*time.Millisecond)
}

// startWatchdog starts the goroutine that stops a supervised evaluation
// at its deadline and reports one that does not return WedgeGrace after.
// It sleeps once a tick has passed with no evaluation running or started,
// until enter wakes it: an idle torscript is not woken a hundred times a
// second for nothing (each wake costs a virtual machine tens of
// microseconds).
func (r *Runtime) startWatchdog() (stop func()) {
	tick := watchTick(r.opts.HandlerTimeout)
	quit := make(chan struct{})
	done := make(chan struct{})
	wake := make(chan struct{}, 1)
	r.watchWake.Store(&wake)
	r.watchIdle.Store(false)
	go func() {
		defer close(done)
		t := time.NewTicker(tick)
		defer t.Stop()
		type wedge struct {
			what  string
			since time.Duration
		}
		var wedged []wedge
		var lastSeq uint64
		// check looks at the evaluations running, and says whether the
		// watchdog may sleep.
		check := func() (idle bool) {
			now := time.Now()
			wedged = wedged[:0]
			r.watchMu.Lock()
			outerStopped, busy := false, false
			seq := r.callWatch.state.Load() >> 2
			for _, w := range r.watches {
				s := w.state.Load()
				if s&watchRunning == 0 {
					continue // callWatch between calls
				}
				busy = true
				if w.seen != s>>2 {
					w.seen, w.start, w.wedged = s>>2, now, false
				}
				stopped := s&watchStopped != 0
				switch {
				case !stopped && !outerStopped && now.Sub(w.start) >= w.timeout:
					if beforeStop != nil {
						beforeStop()
					}
					if !w.state.CompareAndSwap(s, s|watchStopped) {
						continue // it has just returned
					}
					stopped, w.stoppedAt = true, now
					r.overruns.Add(1)
					r.cancelThreads(w.reason())
					if w.stop != nil {
						w.stop()
					}
				case stopped && !w.wedged && now.Sub(w.stoppedAt) >= WedgeGrace:
					w.wedged = true
					wedged = append(wedged, wedge{w.name(), now.Sub(w.stoppedAt)})
				}
				// Stopping an evaluation stops those it runs.
				outerStopped = outerStopped || stopped
			}
			idle = !busy && seq == lastSeq
			lastSeq = seq
			if idle {
				// Then look at callWatch's state again: enter moves it
				// before it looks at watchIdle.
				r.watchIdle.Store(true)
				if r.callWatch.state.Load()>>2 != seq {
					r.watchIdle.Store(false)
					idle = false
				}
			}
			r.watchMu.Unlock()
			for _, w := range wedged {
				r.reportWedged(w.what, w.since)
			}
			return idle
		}
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			if !check() {
				continue
			}
			t.Stop()
			select {
			case <-quit:
				return
			case <-wake:
			}
			t.Reset(tick)
			check() // the evaluation that woke it: its clock starts now
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// beforeStop, when a test sets it, runs between the watchdog's decision to
// stop an evaluation and its stopping it, to widen the window in which
// the evaluation returns on its own.
var beforeStop func()

// reportWedged tells OnWedged, or the log, that a cancelled evaluation has
// not returned. It runs on the watchdog's goroutine.
func (r *Runtime) reportWedged(what string, since time.Duration) {
	if r.opts.OnWedged != nil {
		r.opts.OnWedged(what, since)
		return
	}
	r.log.Error("a cancelled evaluation has not returned: it is blocked where cancellation cannot reach (one long builtin or Go operation); the script is stuck",
		"what", what, "since_cancel", since.Round(time.Millisecond))
}

// timer is a tor.every or tor.after timer.
type timer struct {
	fn       starlark.Callable
	d        time.Duration
	repeat   bool
	t        *time.Timer   // nil under a virtual clock
	due      time.Duration // under a virtual clock
	failures int
}

func (r *Runtime) schedule(d time.Duration, repeat bool, fn starlark.Callable) func() {
	tm := &timer{fn: fn, d: d, repeat: repeat}
	r.timers[tm] = struct{}{}
	if r.opts.Clock != nil {
		tm.due = r.opts.Clock.now + d
		return func() { delete(r.timers, tm) }
	}
	tm.t = time.AfterFunc(d, func() {
		r.tasks.post(func() {
			r.fireTimer(tm)
			if _, live := r.timers[tm]; live && tm.repeat {
				tm.t.Reset(tm.d)
			}
		})
	})
	return func() {
		tm.t.Stop()
		delete(r.timers, tm)
	}
}

// fireTimer calls a timer's function, on the loop.
func (r *Runtime) fireTimer(tm *timer) {
	if _, live := r.timers[tm]; !live || r.exiting {
		return
	}
	if !tm.repeat {
		delete(r.timers, tm)
	}
	_, err := r.call(tm.fn, nil)
	if err != nil && !r.exitRequested(err) {
		tm.failures++
		r.reportFailure("timer failed", tm.failures, err, "fn", tm.fn.Name())
	} else if err == nil {
		tm.failures = 0
	}
}
