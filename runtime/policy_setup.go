package runtime

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime/owner"
	"go.starlark.net/starlark"
)

const leaveStreams = "__LeaveStreamsUnattached"

// startPolicy installs a policy: tor leaves new streams to us from now on.
func (r *Runtime) startPolicy(p *builtins.Policy) error {
	if r.reloading {
		// The new version's policy replaces the old one if its top level
		// ends cleanly (reload).
		if r.deferred != nil {
			return errString("a policy is already set; a script has one policy")
		}
		r.deferred = p
		return nil
	}
	if r.policy != nil && !r.policy.own {
		return errString("a policy is already set; a script has one policy")
	}
	if r.conn == nil {
		_, err := (*host)(r).Conn()
		return err
	}
	if r.topLevel {
		// The top level may still run for long (or forever): the policy
		// takes the streams only once it has returned.
		if r.deferred != nil {
			return errString("a policy is already set; a script has one policy")
		}
		r.deferred = p
		return nil
	}
	if r.policy != nil {
		return r.adoptPolicy(p)
	}
	ps := newPolicyEngine((*policyRuntime)(r), r.log, p, r.opts.DryRun)
	if r.opts.QuietDecisions {
		ps.decisions = slog.LevelDebug
	}
	ps.metrics = r.metrics
	// Setup runs to its end even when SIGTERM comes in the middle, so that
	// shutdown knows exactly what to undo.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 30*time.Second)
	defer cancel()
	if !ps.dryRun {
		if err := r.leaveStreamsToUs(ctx, ps); err != nil {
			return err
		}
	}
	r.policy = ps
	r.state.tracking = true
	if err := r.subscribe(); err != nil {
		r.undoPolicyStart(ps)
		return err
	}
	if err := r.state.resync(ctx, r.conn); err != nil {
		r.undoPolicyStart(ps)
		return err
	}
	if len(p.Map) > 0 && !ps.dryRun {
		if err := r.policyMap(ctx, ps); err != nil {
			r.undoPolicyStart(ps)
			return err
		}
	}
	if ps.oldLeave == "1" && !ps.dryRun {
		n := ps.takeOver(r.state.streams.All())
		if n > 0 {
			r.log.Warn(leaveStreams+" was already 1 and streams were waiting (did a controller die?); the policy takes them over", "streams", n)
		} else {
			r.log.Warn(leaveStreams + " was already 1: another controller may be attaching streams; it will be set back to 1 when the script ends")
		}
	}
	r.log.Info("policy started", "on_error", p.OnError.String(), "timeout", p.Timeout, "dry_run", ps.dryRun)
	return nil
}

// adoptPolicy makes p the policy of the engine the runtime started for
// the script's probes: __LeaveStreamsUnattached is set already, and what
// it was before is known.
func (r *Runtime) adoptPolicy(p *builtins.Policy) error {
	ps := r.policy
	own := ps.p
	ps.p, ps.own = p, false
	if len(p.Map) > 0 && !ps.dryRun {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 30*time.Second)
		defer cancel()
		if err := r.policyMap(ctx, ps); err != nil {
			ps.p, ps.own = own, true
			return err
		}
	}
	r.log.Info("policy started (taking over from the runtime's own, which probes started)", "on_error", p.OnError.String(), "timeout", p.Timeout)
	return nil
}

// leaveStreamsToUs takes the tor's policy lock and sets
// __LeaveStreamsUnattached, recording first what it was.
func (r *Runtime) leaveStreamsToUs(ctx context.Context, ps *policyEngine) error {
	// One policy per tor; and what a dead run left is undone before we
	// read what tor has.
	if err := r.acquirePolicy(ctx); err != nil {
		return err
	}
	conf, err := r.conn.GetConf(ctx, leaveStreams)
	if err != nil {
		return err
	}
	if e, ok := conf.Lookup(leaveStreams); ok && !e.NoValue {
		ps.oldLeave = e.Value
	}
	if err := r.recordPolicyStart(ctx, ps.p, ps.oldLeave); err != nil {
		return err
	}
	ps.setLeave = true // even if the reply is lost, tor may have done it
	if err := r.conn.SetConf(ctx, ctl.ConfEntry{Key: leaveStreams, Value: "1"}); err != nil {
		ps.setLeave = ctl.ErrorCode(err) == 0 // refused: nothing to undo
		r.undoPolicyStart(ps)
		return err
	}
	return nil
}

// policyMap makes the policy's address mappings, recording them first.
func (r *Runtime) policyMap(ctx context.Context, ps *policyEngine) error {
	addrs := make([]string, len(ps.p.Map))
	for i, m := range ps.p.Map {
		addrs[i] = m.From
	}
	if err := r.record(ctx, owner.Entry{Op: "map", Addrs: addrs}); err != nil {
		return err
	}
	got, err := r.conn.MapAddress(ctx, ps.p.Map...)
	if err != nil {
		if ctl.ErrorCode(err) == 0 {
			ps.maps = ps.p.Map // the reply was lost: undo them all
		}
		return err
	}
	ps.maps = got
	return nil
}

func (r *Runtime) undoPolicyStart(ps *policyEngine) {
	r.policy = nil
	if r.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if ps.setLeave {
		r.restoreLeave(ctx, ps)
	}
	if len(ps.maps) > 0 {
		r.unmap(ctx, ps.maps)
	}
}

func (r *Runtime) restoreLeave(ctx context.Context, ps *policyEngine) error {
	var err error
	if ps.oldLeave == "" {
		err = r.conn.ResetConf(ctx, ctl.ConfEntry{Key: leaveStreams, NoValue: true})
	} else {
		err = r.conn.SetConf(ctx, ctl.ConfEntry{Key: leaveStreams, Value: ps.oldLeave})
	}
	if err != nil {
		r.log.Error("could not restore "+leaveStreams, "value", ps.oldLeave, "err", err)
	} else {
		r.record(ctx, owner.Entry{Op: "leave_restored"})
	}
	return err
}

// policyShutdown hands back every stream the policy holds (or closes it,
// per on_error), and restores __LeaveStreamsUnattached. It returns the
// events it took from the connection (those queued when it began, and
// those that came while it waited for tor's answers), in order, for a
// session that goes on to handle.
func (r *Runtime) policyShutdown(ctx context.Context) []ctl.Event {
	ps := r.policy
	if ps == nil || ps.dryRun || r.conn == nil {
		return nil
	}
	// From here on tor attaches new streams itself (unless another
	// controller had set it).
	if ps.setLeave {
		if r.restoreLeave(ctx, ps) == nil {
			ps.setLeave = false
		}
	}
	// Events still queued may announce streams that wait for us. They are
	// the session's too: they go back with those taken below, first.
	first, _ := r.takeEvents(nil)
	if len(first) > 0 {
		for _, ev := range first {
			if e, ok := ctl.Parsed(ev).(*ctl.StreamEvent); ok {
				r.state.stream(&e.Stream)
			}
		}
		ps.pending(first)
	}
	var wg sync.WaitGroup
	do := func(cmd ctl.Command) {
		wg.Add(1)
		err := r.conn.Start(ctx, cmd, func(_ *ctl.Reply, err error) {
			if err != nil {
				if code := ctl.ErrorCode(err); code != ctl.CodeUnrecognized && code != ctl.CodeUnmanaged {
					r.log.Warn("handing back a stream failed", "command", cmd.String(), "err", err)
				}
			}
			wg.Done()
		})
		if err != nil {
			wg.Done()
		}
	}
	cmds, handled := ps.handBack()
	for _, cmd := range cmds {
		do(cmd)
	}
	n := len(cmds)
	// Streams that arrived after the last event we read still wait for a
	// controller: hand them to tor, unless another controller had the
	// setting before us.
	if ps.oldLeave != "1" {
		if streams, err := r.conn.Streams(ctx); err == nil {
			for i := range streams {
				s := &streams[i]
				if waitingForController(s) && !handled[s.ID] {
					if cmd, err := ctl.AttachStreamCommand(s.ID, "0", 0); err == nil {
						n++
						do(cmd)
					}
				}
			}
		}
	}
	taken := append(first, r.waitTakingEvents(ctx, &wg)...)
	if n > 0 {
		r.log.Info("streams handed back at exit", "streams", n, "on_error", ps.p.OnError.String())
	}
	if len(ps.maps) > 0 {
		r.unmap(ctx, ps.maps)
	}
	return taken
}

// waitTakingEvents waits for wg (the replies to commands sent with Start)
// while it takes the events that keep coming: the connection's reader
// stops once events pile up, and the replies are behind them. It returns
// the events, in order, and gives up when ctx ends.
func (r *Runtime) waitTakingEvents(ctx context.Context, wg *sync.WaitGroup) []ctl.Event {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	var taken, evs []ctl.Event
	for {
		select {
		case <-done:
			return taken
		case <-ctx.Done():
			r.log.Warn("gave up waiting for tor's answers to the streams handed back", "err", ctx.Err())
			return taken
		case <-r.conn.EventReady():
			evs, _ = r.takeEvents(evs)
			taken = append(taken, evs...)
		}
	}
}

// unmap removes address mappings (MAPADDRESS addr=addr).
func (r *Runtime) unmap(ctx context.Context, pairs []ctl.AddrMap) {
	undo := make([]ctl.AddrMap, len(pairs))
	for i, p := range pairs {
		undo[i] = ctl.AddrMap{From: p.From, To: p.From}
	}
	if _, err := r.conn.MapAddress(ctx, undo...); err != nil {
		r.log.Warn("could not remove address mappings", "err", err)
		return
	}
	addrs := make([]string, len(pairs))
	for i, p := range pairs {
		addrs[i] = p.From
	}
	r.record(ctx, owner.Entry{Op: "unmap", Addrs: addrs})
}

type errString string

func (e errString) Error() string { return string(e) }

// policyRuntime is the runtime as the policy engine sees it (policyEnv).
type policyRuntime Runtime

func (p *policyRuntime) rt() *Runtime { return (*Runtime)(p) }

func (p *policyRuntime) call(fn starlark.Callable, args starlark.Tuple) (starlark.Value, error) {
	return p.rt().call(fn, args)
}

func (p *policyRuntime) send(cmd ctl.Command, onError func(error)) {
	r := p.rt()
	if r.conn == nil {
		return
	}
	start := r.conn.Start
	// On the loop's goroutine, which alone starts and ends evaluations.
	if !r.supervising() {
		// Not inside a script's call (a policy's decision, made after
		// the call returned): held while the loop's batch runs, it goes
		// out at the batch's end, or after the Guard of the next call
		// (Runtime.call). A decision made inside a call (tor.policy in a
		// handler) keeps the timer of Start.
		start = r.conn.StartGuarded
	}
	err := start(r.ctx, cmd, func(_ *ctl.Reply, err error) {
		if err == nil {
			return
		}
		if ctl.ErrorCode(err) == 0 {
			return // the connection ended; reconnecting resyncs
		}
		r.tasks.post(func() { onError(err) })
	})
	if err != nil {
		r.log.Debug("command not sent", "command", cmd.String(), "err", err)
	}
}

func (p *policyRuntime) post(f func())                  { p.tasks.post(f) }
func (p *policyRuntime) circuit(id string) *ctl.Circuit { return p.state.circs.Get(id) }
func (p *policyRuntime) stream(id string) *ctl.Stream   { return p.state.streams.Get(id) }

func (p *policyRuntime) circuitClosed(id string) bool {
	_, closed := p.state.closed.Get(id)
	return closed
}

func (p *policyRuntime) probe(s *ctl.Stream, failed []string) (builtins.Decision, bool) {
	if len(p.probes.byStream) == 0 {
		return nil, false
	}
	return p.rt().probeDecision(s, failed)
}

func (p *policyRuntime) streamValue(s *ctl.Stream, failed []string) starlark.Value {
	return &builtins.Stream{S: s, Failed: failed, Host: (*host)(p)}
}

func (p *policyRuntime) exitRequested(err error) bool { return p.rt().exitRequested(err) }

func (p *policyRuntime) reportFailure(msg string, inARow int, err error, attrs ...any) {
	p.rt().reportFailure(msg, inARow, err, attrs...)
}

func (p *policyRuntime) ending() bool { return p.exiting }
func (p *policyRuntime) broken() bool { return p.fatal != nil }
