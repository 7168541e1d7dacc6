package runtime

import (
	"context"
	"errors"
	"time"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

// The seam through which a simulator (runtime/sim, `torscript test`) drives
// a Runtime on its own goroutine instead of Run's loop: a clock that moves
// only when told (Options.Clock, Advance), "run until idle"
// (RunUntilIdle), and a failure hook (Options.OnFailure); plus Begin and
// Supervise to run a test's code as Run runs a script's top level.

// VirtualClock is the time of a runtime's timers when Options.Clock is set:
// it moves only with Advance.
type VirtualClock struct {
	now time.Duration
}

// Begin connects (Options.Connect) and starts supervision, for code that
// then runs on the calling goroutine with Thread: filename and src are the
// file it runs (argv[0], and where an overrun is placed). The returned end
// undoes what the script changed, as the end of Run does, and closes the
// connection.
func (r *Runtime) Begin(ctx context.Context, filename string, src []byte) (end func()) {
	r.ctx = ctx
	builtins.SetContext(r.thread, scriptContext(ctx))
	r.pre["argv"].(*starlark.List).SetIndex(0, starlark.String(filename))
	r.sources[filename] = src
	if c, err := r.connectTor(ctx); err == nil {
		r.conn = c
		r.metrics.useConn(c)
		r.connN++
	}
	stopWatch := r.startWatchdog()
	return func() {
		stopWatch()
		r.shutdown()
		if r.conn != nil {
			r.conn.Close()
		}
	}
}

// Thread is the thread the script's top level runs on; Begin's caller
// runs its code on it.
func (r *Runtime) Thread() *starlark.Thread { return r.thread }

// Supervise runs f as a top level (what names it in errors) under the step
// budget and Options.TopLevelTimeout, stopped early when ctx ends.
func (r *Runtime) Supervise(ctx context.Context, what string, f func() error) error {
	stop := context.AfterFunc(ctx, r.interrupt)
	defer stop()
	_, err := r.superviseTop(what, "test timeout", r.opts.TopLevelTimeout, func() (starlark.Value, error) {
		return starlark.None, f()
	})
	return err
}

// ExecFile runs another script's top level on thread, supervised, with
// argv as its argv, and returns its globals. An overrun's reason is in the
// returned *starlark.EvalError's message.
func (r *Runtime) ExecFile(t *starlark.Thread, path string, src []byte, argv []starlark.Value) (starlark.StringDict, error) {
	saved := r.pre["argv"]
	r.pre["argv"] = starlark.NewList(argv)
	defer func() { r.pre["argv"] = saved }()
	_, prog, err := starlark.SourceProgramOptions(FileOptions(), path, src, r.pre.Has)
	if err != nil {
		return nil, err
	}
	r.sources[path] = src
	var g starlark.StringDict
	_, err = r.superviseTop("top level of "+path, "test timeout", r.opts.TopLevelTimeout, func() (starlark.Value, error) {
		g, err = prog.Init(t, r.pre)
		return starlark.None, err
	})
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		// The script's backtrace (the same thread's) says where it failed.
		var ov *OverrunError
		if errors.As(err, &ov) {
			ee.Msg += " (" + ov.reason() + ")"
		}
		return nil, ee
	}
	return g, err
}

// Fatal is the error that ends the script (a lost connection that cannot
// come back, an event queue overflow), or nil.
func (r *Runtime) Fatal() error { return r.fatal }

// RunUntilIdle lets the runtime catch up with the other end: it handles
// the events and replies that have come, and what they cause, until
// nothing more happens. barrier is a command whose reply tells that
// everything the other end sent before it has arrived. It runs on the
// caller's goroutine (a simulator's, inside a supervised call: policy and
// handler calls nest in it), with the loop's own dispatch.
func (r *Runtime) RunUntilIdle(barrier string) {
	var evs []ctl.Event
	var fs []func()
	for range 100000 {
		if r.conn == nil || r.exiting || r.stopping() {
			return
		}
		ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
		_, err := r.conn.Do(ctx, barrier)
		cancel()
		if err != nil {
			return
		}
		evs, _ = r.conn.EventBatch(evs)
		n := r.dispatchEvents(evs, nil)
		var m int
		fs, m = r.runTasks(fs)
		if n+m == 0 {
			return
		}
	}
}

// Advance moves the virtual clock on by d, firing the timers that come
// due on the way, in order, and running until idle after each.
func (r *Runtime) Advance(d time.Duration, barrier string) {
	vc := r.opts.Clock
	end := vc.now + d
	for {
		var next *timer
		for tm := range r.timers {
			if tm.due <= end && (next == nil || tm.due < next.due) {
				next = tm
			}
		}
		if next == nil {
			break
		}
		vc.now = next.due
		r.fireTimer(next)
		if _, live := r.timers[next]; live && next.repeat {
			next.due = vc.now + next.d
		}
		r.RunUntilIdle(barrier)
	}
	vc.now = end
}

// ProbesPending says whether a probe the script started (tor.fetch,
// tor.connect) has yet to call its on_done.
func (r *Runtime) ProbesPending() bool { return r.probesPending() }
