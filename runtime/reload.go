package runtime

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

// Reload replaces the running script with src, a new version of it
// (SIGHUP): the new top level runs on the loop, bounded as a top level is;
// (--handler-timeout when a policy is active: streams wait for it); only
// if it ends cleanly do its handlers, timers, at_exit functions and
// policy replace the old ones, and the streams the old policy holds or
// waits with are asked of the new one. Otherwise what the new top level
// registered is dropped, the old script runs on, and the error says why.
// Safe to call from any goroutine while Run runs.
func (r *Runtime) Reload(ctx context.Context, filename string, src []byte) error {
	done := make(chan error, 1)
	r.tasks.post(func() { done <- r.reload(filename, src) })
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Instance is Options.Instance: the tor this runtime drives.
func (r *Runtime) Instance() string { return r.opts.Instance }

// errNotRunning: the script ended, or Run has not started.
var errNotRunning = errors.New("the script is not running")

func (r *Runtime) reload(filename string, src []byte) error {
	if r.exiting || r.fatal != nil {
		return errNotRunning
	}
	_, prog, err := starlark.SourceProgramOptions(FileOptions(), filename, src, r.pre.Has)
	if err != nil {
		return errors.New(FormatError(err))
	}
	old := r.registered()
	nAtExit := len(r.atExit)
	newPolicy, _, err := r.runReloaded(filename, src, prog, r.pre)
	if err != nil {
		r.drop(r.registeredSince(old))
		r.atExit = r.atExit[:nAtExit]
		return err
	}
	if err := r.swapPolicy(newPolicy, true); err != nil {
		// The old policy runs on (a map tor refused): the new version
		// is not taken.
		r.drop(r.registeredSince(old))
		r.atExit = r.atExit[:nAtExit]
		return err
	}
	r.drop(old)
	r.atExit = slices.Clone(r.atExit[nAtExit:])
	return nil
}

// registrations are handlers and timers of the script.
type registrations struct {
	handlers map[*handler]bool
	timers   map[*timer]struct{}
}

// registered is every handler and timer now.
func (r *Runtime) registered() registrations {
	reg := registrations{handlers: map[*handler]bool{}, timers: maps.Clone(r.timers)}
	for _, hs := range r.handlers.m {
		for _, h := range hs {
			reg.handlers[h] = true
		}
	}
	return reg
}

// registeredSince is what was registered after before.
func (r *Runtime) registeredSince(before registrations) registrations {
	now := r.registered()
	for h := range before.handlers {
		delete(now.handlers, h)
	}
	for t := range before.timers {
		delete(now.timers, t)
	}
	return now
}

// drop removes handlers and stops timers.
func (r *Runtime) drop(reg registrations) {
	for typ := range r.handlers.m {
		r.removeHandlers(typ, func(h *handler) bool { return reg.handlers[h] })
	}
	for t := range reg.timers {
		r.stopTimer(t)
	}
}

// runReloaded runs a new version's top level with pre as its globals,
// bounded (--handler-timeout while a policy holds streams: they wait for
// it on the loop); the policy it sets is returned, not started.
func (r *Runtime) runReloaded(filename string, src []byte, prog *starlark.Program, pre starlark.StringDict) (*builtins.Policy, starlark.StringDict, error) {
	r.reloading, r.deferred = true, nil
	r.sources[filename] = src
	limit, timeout := "top-level timeout", r.opts.TopLevelTimeout
	if r.policy != nil {
		limit, timeout = "handler timeout (a reloaded top level, while a policy holds the streams)", r.opts.HandlerTimeout
	}
	var g starlark.StringDict
	_, err := r.superviseTop("top level of "+filename+" (reloaded)", limit, timeout, func() (starlark.Value, error) {
		r.topLevel = true
		defer func() { r.topLevel = false }()
		var err error
		g, err = prog.Init(r.thread, pre)
		return starlark.None, err
	})
	r.reloading = false
	p := r.deferred
	r.deferred = nil
	if err == nil && r.exiting {
		err = errors.New("the new top level called exit()")
	}
	if err != nil {
		r.exiting = false
	}
	return p, g, err
}

// swapPolicy puts in place the policy a reloaded version set: it replaces
// the running one, or starts; with none, the running one is removed when
// removeOld is set.
func (r *Runtime) swapPolicy(p *builtins.Policy, removeOld bool) error {
	switch {
	case p != nil && r.policy != nil && !r.policy.own:
		return r.replacePolicy(p)
	case p != nil:
		return r.startPolicy(p)
	case removeOld && r.policy != nil && !r.policy.own:
		r.removePolicy("the reloaded script sets no policy: policy removed")
	}
	return nil
}

// stopTimer stops a timer of the script.
func (r *Runtime) stopTimer(t *timer) {
	if t.t != nil {
		t.t.Stop()
	}
	delete(r.timers, t)
}

// replacePolicy gives the running policy engine a new policy: its
// mappings change to the new one's, and the streams it holds or waits with
// are asked of the new policy.
func (r *Runtime) replacePolicy(p *builtins.Policy) error {
	ps := r.policy
	old := ps.p
	if !ps.dryRun && !slices.Equal(old.Map, p.Map) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 30*time.Second)
		defer cancel()
		var gone []ctl.AddrMap
		for _, m := range old.Map {
			if !slices.ContainsFunc(p.Map, func(n ctl.AddrMap) bool { return n.From == m.From }) {
				gone = append(gone, m)
			}
		}
		if len(gone) > 0 {
			r.unmap(ctx, gone)
		}
		ps.p = p
		if len(p.Map) > 0 {
			if err := r.policyMap(ctx, ps); err != nil {
				ps.p = old
				return fmt.Errorf("the new policy's map: %w", err)
			}
		}
	}
	ps.p = p
	var again []*pstream
	for st := range ps.waiting {
		again = append(again, st)
	}
	slices.SortFunc(again, func(a, b *pstream) int { return cmpID(a.s.ID, b.s.ID) })
	for _, st := range again {
		ps.unwait(st)
		st.ph, st.circ, st.asks = phDeciding, "", 0
		ps.decide(st)
	}
	r.log.Info("policy reloaded", "on_error", p.OnError.String(), "timeout", p.Timeout, "streams_asked_again", len(again))
	return nil
}

// cmpID orders tor's numeric ids: shorter first, then by text.
func cmpID(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}
