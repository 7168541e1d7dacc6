package runtime

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/torscript/torscript/ctl"
)

// wantedEvents is what the script needs: its handlers' events, those a
// session asked for, and CIRC and STREAM while the live state is kept.
func (r *Runtime) wantedEvents() []string {
	var names []string
	for typ, hs := range r.handlers.m {
		if len(hs) > 0 {
			names = append(names, typ)
		}
	}
	for _, types := range r.extraEvents {
		for _, t := range types {
			if !slices.Contains(names, t) {
				names = append(names, t)
			}
		}
	}
	for _, t := range r.waiterEvents() {
		if !slices.Contains(names, t) {
			names = append(names, t)
		}
	}
	if r.routers.tracking {
		for _, t := range routerEvents {
			if !slices.Contains(names, t) {
				names = append(names, t)
			}
		}
	}
	if r.state.tracking || r.policy != nil {
		for _, t := range []string{ctl.EventCirc, ctl.EventStream} {
			if !slices.Contains(names, t) {
				names = append(names, t)
			}
		}
	}
	slices.Sort(names)
	return names
}

// subscribe sends SETEVENTS when what the script needs has changed.
func (r *Runtime) subscribe() error {
	names := r.wantedEvents()
	key := strings.Join(names, " ")
	if key == r.subs || r.conn == nil {
		return nil
	}
	if err := r.conn.SetEvents(r.ctx, names...); err != nil {
		return err
	}
	r.subs = key
	return nil
}

// reconnector retries the connection with backoff.
type reconnector struct {
	cancel context.CancelFunc
}

// disconnected starts reconnecting after the connection was lost.
func (r *Runtime) disconnected() {
	if r.conn == nil {
		return
	}
	err := r.conn.Err()
	r.conn.Close()
	r.conn, r.subs = nil, ""
	if r.exiting {
		return
	}
	if r.opts.Connect == nil || errors.Is(err, ctl.ErrEventOverflow) {
		// An overflow would come back on a new connection: the script
		// cannot keep up, so it ends, and what it held goes back to tor.
		r.fatal = err
		return
	}
	r.log.Warn("lost the control connection; reconnecting", "err", err)
	if ps := r.policy; ps != nil {
		// What was in flight is unknown now; the resync after
		// reconnecting takes over whatever still waits.
		ps.reset()
	}
	ctx, cancel := context.WithCancel(r.ctx)
	r.reconnect = &reconnector{cancel: cancel}
	go func() {
		delay := 100 * time.Millisecond
		for attempt := 1; ; attempt++ {
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			actx, acancel := context.WithTimeout(ctx, 10*time.Second)
			c, err := r.connectTor(actx)
			acancel()
			if err == nil {
				r.tasks.post(func() { r.connected(c) })
				return
			}
			if attempt == 1 || attempt%10 == 0 {
				r.log.Warn("still reconnecting", "attempt", attempt, "err", err)
			}
			delay = min(delay*2, 5*time.Second)
		}
	}()
}

// connected sets up a new connection as the last one was: subscriptions,
// live state, the policy's setting and mappings, the script's mappings.
func (r *Runtime) connected(c *ctl.Conn) {
	r.reconnect = nil
	if r.exiting {
		c.Close()
		return
	}
	r.conn = c
	r.metrics.useConn(c)
	r.connN++
	r.routers.stale()
	r.log.Info("reconnected to tor", "connection", r.connN)
	r.metrics.reconnected()
	ctx := r.ctx
	fail := func(what string, err error) {
		r.log.Error("after reconnecting: "+what, "err", err)
	}
	if ps := r.policy; ps != nil && !ps.dryRun {
		if err := c.SetConf(ctx, ctl.ConfEntry{Key: leaveStreams, Value: "1"}); err != nil {
			fail("set "+leaveStreams, err)
		}
	}
	if err := r.subscribe(); err != nil {
		fail("subscribe to events", err)
	}
	if r.state.tracking {
		if err := r.state.resync(ctx, c); err != nil {
			fail("resync circuits and streams", err)
		}
	}
	var again []ctl.AddrMap
	if ps := r.policy; ps != nil {
		again = append(again, ps.maps...)
	}
	for _, m := range r.maps {
		again = append(again, m.AddrMap)
	}
	if len(again) > 0 {
		if _, err := c.MapAddress(ctx, again...); err != nil {
			fail("map addresses again", err)
		}
	}
	if ps := r.policy; ps != nil && !ps.dryRun {
		if n := ps.takeOver(r.state.streams.All()); n > 0 {
			r.log.Info("taking over streams that waited while we were away", "streams", n)
		}
	}
}

// runAtExit calls the script's tor.at_exit functions, last registered
// first, each supervised like a handler.
func (r *Runtime) runAtExit() {
	fns := r.atExit
	r.atExit = nil
	for i := len(fns) - 1; i >= 0; i-- {
		if _, err := r.call(fns[i], nil); err != nil {
			var exit *ExitError
			if !errors.As(err, &exit) {
				r.reportFailure("at_exit function failed", 1, err, "fn", fns[i].Name())
			}
		}
	}
}

// shutdown undoes what the script changed in tor: streams held by the
// policy go back to tor (or are closed), __LeaveStreamsUnattached gets its
// earlier value, the script's address mappings are removed.
func (r *Runtime) shutdown() {
	r.runAtExit()
	r.exiting = true
	r.stopProbes()
	for t := range r.timers {
		if t.t != nil {
			t.t.Stop()
		}
	}
	if r.reconnect != nil {
		r.reconnect.cancel()
	}
	var unmaps []ctl.AddrMap
	for _, m := range r.maps {
		if !m.keep {
			unmaps = append(unmaps, m.AddrMap)
		}
	}
	needTor := (r.policy != nil && !r.policy.dryRun) || len(unmaps) > 0 || r.own.run != nil
	if !needTor {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if r.conn == nil && r.opts.Connect != nil {
		// Tor may be back: what we changed must still be undone.
		cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
		c, err := r.connectTor(cctx)
		ccancel()
		if err != nil {
			r.log.Warn("cannot reach tor to undo the script's changes", "err", err)
			return
		}
		r.conn = c
		r.metrics.useConn(c)
	}
	if r.conn == nil {
		return
	}
	r.policyShutdown(ctx)
	if len(unmaps) > 0 {
		r.unmap(ctx, unmaps)
	}
	r.finishOwnership(ctx)
}
