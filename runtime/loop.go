package runtime

import (
	"context"
	"errors"
	"sync"
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
}

func (t *tasks) init() { t.notify = make(chan struct{}, 1) }

func (t *tasks) post(f func()) {
	t.mu.Lock()
	t.q = append(t.q, f)
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
	t.mu.Unlock()
	return buf
}

// loop runs events, tasks and timers on the calling goroutine until the
// script exits or ctx ends.
func (r *Runtime) loop() {
	var evs []ctl.Event
	var fs []func()
	sweep := time.NewTicker(200 * time.Millisecond)
	defer sweep.Stop()
	for !r.exiting && r.fatal == nil {
		var ready, done <-chan struct{}
		if r.conn != nil {
			ready, done = r.conn.EventReady(), r.conn.Done()
		}
		select {
		case <-r.ctx.Done():
			r.exiting = true
		case <-ready:
			for !r.exiting && r.fatal == nil {
				var ok bool
				evs, ok = r.conn.EventBatch(evs)
				if len(evs) == 0 {
					if !ok {
						r.disconnected()
					}
					break
				}
				for i, ev := range evs {
					if r.exiting || r.fatal != nil {
						// Keep the rest for shutdown: it must still see
						// new streams.
						r.policyPending(evs[i:])
						break
					}
					r.dispatch(ev)
					evs[i] = nil
				}
			}
		case <-done:
			// Take the events that came before the end first.
			if evs, _ = r.conn.EventBatch(evs); len(evs) > 0 {
				for _, ev := range evs {
					r.dispatch(ev)
				}
				continue
			}
			r.disconnected()
		case <-r.tasks.notify:
			fs = r.tasks.take(fs)
			for i, f := range fs {
				f()
				fs[i] = nil
			}
		case now := <-sweep.C:
			r.policySweep(now)
		}
	}
}

// dispatch handles one event: the live state first, then the policy, then
// the script's handlers.
func (r *Runtime) dispatch(ev ctl.Event) {
	if r.opts.OnEvent != nil {
		r.opts.OnEvent(ev)
	}
	switch e := ev.(type) {
	case *ctl.StreamEvent:
		r.state.stream(&e.Stream)
		r.policyStream(e)
	case *ctl.CircEvent:
		r.state.circuit(&e.Circuit)
		r.policyCircuit(&e.Circuit)
	}
	hs := r.handlers[ev.EventType()]
	if len(hs) == 0 {
		return
	}
	v := builtins.EventValue(ev, (*host)(r))
	for _, h := range hs {
		_, err := r.call(h.fn, starlark.Tuple{v})
		r.handlerResult(h, ev.EventType(), err)
		if r.exiting {
			return
		}
	}
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
	if r.failed != nil {
		r.failed(msg, err)
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

// call runs fn under supervision: a step budget and a wall deadline
// enforced by the watchdog.
func (r *Runtime) call(fn starlark.Callable, args starlark.Tuple) (starlark.Value, error) {
	t := r.thread
	t.SetMaxExecutionSteps(t.ExecutionSteps() + r.opts.MaxSteps)
	if r.threadCtx != r.callCtx {
		builtins.SetContext(t, r.callCtx)
		r.threadCtx = r.callCtx
	}
	r.watchMu.Lock()
	r.callGen++
	r.watchMu.Unlock()
	v, err := starlark.Call(t, fn, args, nil)
	r.watchMu.Lock()
	r.callGen++
	stopped := r.stopped
	r.stopped = false
	r.watchMu.Unlock()
	if stopped {
		// The watchdog stopped this call: start afresh for the next. A
		// builtin waiting for tor reports its context's end, not why:
		// say why.
		t.Uncancel()
		r.callCtx, r.callStop = context.WithCancel(scriptContext(context.Background()))
		if err != nil {
			err = &OverrunError{Timeout: r.opts.HandlerTimeout, Err: err}
		}
	} else if err != nil {
		t.Uncancel() // the step budget cancels the thread too
	}
	return v, err
}

// startWatchdog cancels a call that runs longer than HandlerTimeout. It
// watches a counter that call bumps on entry and exit, so calls pay no
// clock reads.
func (r *Runtime) startWatchdog() (stop func()) {
	tick := r.opts.HandlerTimeout / 8
	if tick < 5*time.Millisecond {
		tick = 5 * time.Millisecond
	}
	quit := make(chan struct{})
	go func() {
		t := time.NewTicker(tick)
		defer t.Stop()
		var last uint64
		var elapsed time.Duration
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			r.watchMu.Lock()
			g := r.callGen
			if g%2 == 0 || g != last {
				last, elapsed = g, 0
				r.watchMu.Unlock()
				continue
			}
			elapsed += tick
			if elapsed >= r.opts.HandlerTimeout && !r.stopped {
				r.overruns.Add(1)
				r.stopped = true
				r.thread.Cancel("call ran longer than the handler timeout (" + r.opts.HandlerTimeout.String() + ")")
				r.callStop()
			}
			r.watchMu.Unlock()
		}
	}()
	return func() { close(quit) }
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
	if r.virtual != nil {
		tm.due = r.virtual.now + d
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
