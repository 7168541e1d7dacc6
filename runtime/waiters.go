package runtime

import (
	"slices"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

// waiter is a builtins.Waiter the loop is serving.
type waiter struct {
	w      *builtins.Waiter
	h      *handler // its callbacks' failures in a row
	cancel func()   // its timeout's timer, or nil
}

// Await is builtins.Host's: the waiter is served from the next event on.
func (h *host) Await(w *builtins.Waiter) error {
	r := h.rt()
	wt := &waiter{w: w, h: &handler{}}
	r.waiters = append(r.waiters, wt)
	if err := r.subscribe(); err != nil {
		r.waiters = r.waiters[:len(r.waiters)-1]
		return err
	}
	if w.Timeout > 0 {
		timeout := starlark.NewBuiltin(w.What+" timeout", func(thread *starlark.Thread, _ *starlark.Builtin, _ starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			if !r.dropWaiter(wt) || w.OnTimeout == nil {
				return starlark.None, nil
			}
			fn, args := w.OnTimeout()
			if fn == nil {
				return starlark.None, nil
			}
			return starlark.Call(thread, fn, args, nil)
		})
		wt.cancel = r.schedule(w.Timeout, false, timeout)
	}
	return nil
}

// dropWaiter ends wt; false if it had ended.
func (r *Runtime) dropWaiter(wt *waiter) bool {
	i := slices.Index(r.waiters, wt)
	if i < 0 {
		return false
	}
	r.waiters = slices.Delete(r.waiters, i, i+1)
	if wt.cancel != nil {
		wt.cancel()
	}
	if err := r.subscribe(); err != nil {
		r.log.Debug("unsubscribing after a wait ended", "err", err)
	}
	return true
}

// wake gives ev to the waiters that wait for its type, and calls the
// callbacks they return.
func (r *Runtime) wake(ev ctl.Event) {
	typ := ev.EventType()
	for _, wt := range slices.Clone(r.waiters) {
		if !slices.Contains(wt.w.Events, typ) {
			continue
		}
		fn, args, done := wt.w.Match(ev)
		if done {
			r.dropWaiter(wt)
		}
		if fn == nil {
			continue
		}
		wt.h.fn = fn
		_, err := r.call(fn, args)
		r.handlerResult(wt.h, wt.w.What, err)
		if r.exiting {
			return
		}
	}
}

// waiterEvents are the event types the waiters need.
func (r *Runtime) waiterEvents() []string {
	var out []string
	for _, wt := range r.waiters {
		for _, t := range wt.w.Events {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out
}
