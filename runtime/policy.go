package runtime

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime/owner"
	"go.starlark.net/starlark"
)

const leaveStreams = "__LeaveStreamsUnattached"

// maxAsks bounds how often the policy is asked about one stream before
// on_error applies: a policy that keeps choosing a dead circuit must not
// keep a stream waiting.
const maxAsks = 8

type phase uint8

const (
	phDeciding phase = iota // waiting for the policy (or shutdown)
	phWaitCirc              // waiting for its circuit to be built
	phHeld                  // tor.hold(): the script attaches it
	phSent                  // ATTACHSTREAM or CLOSESTREAM sent
	phDone                  // attached (SENTCONNECT, ...) or handled by the script
)

// pstream is a stream the policy manages.
type pstream struct {
	s        *ctl.Stream
	ph       phase
	circ     string // circuit waited for or attached to
	hop      int
	failed   []string
	asks     int
	deadline time.Time
	// sentBuilt: the circuit was known to be built when ATTACHSTREAM was
	// sent, so a 551 means it is unusable, not that it is still building.
	sentBuilt bool
	// gaveUp: on_error was applied after maxAsks; later events about the
	// stream (another controller fighting over it) are ignored.
	gaveUp bool
	// redirect is the host a REDIRECTSTREAM sent it to.
	redirect string
}

// onlyTor says why a stream cannot ride circ and must go to tor, or "":
// an onion service's stream rides a rendezvous circuit that tor builds
// itself (ATTACHSTREAM to any other circuit fails with 551).
func (r *Runtime) onlyTor(st *pstream) string {
	if strings.HasSuffix(r.streamHost(st), ".onion") {
		return "an onion service: tor builds its rendezvous circuit"
	}
	return ""
}

// streamHost is where a stream goes now: its target, or where a
// REDIRECTSTREAM sent it; lower case, without a trailing dot.
func (r *Runtime) streamHost(st *pstream) string {
	host := st.s.TargetHost
	if st.redirect != "" {
		host = st.redirect
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// wrongExit says why circ cannot carry a HOST.RELAY.exit stream, or "":
// the user named the exit, and circ, built, leaves through another. Tor
// 0.4.9 does not carry such a name itself (a stream it is handed fails
// with TORPROTOCOL), so the stream is closed rather than sent out of an
// exit the user did not choose.
func (r *Runtime) wrongExit(st *pstream, circ string) string {
	name, ok := strings.CutSuffix(r.streamHost(st), ".exit")
	if !ok {
		return ""
	}
	relay := strings.TrimPrefix(name[strings.LastIndexByte(name, '.')+1:], "$")
	c := r.state.circs[circ]
	if c == nil || c.Status != ctl.CircBuilt || len(c.Path) == 0 || relay == "" {
		return "" // not built yet: its exit may still be the one named
	}
	last := c.Path[len(c.Path)-1]
	if strings.EqualFold(last.Nickname, relay) || strings.EqualFold(strings.TrimPrefix(last.Fingerprint, "$"), relay) {
		return ""
	}
	exit := last.Nickname
	if exit == "" {
		exit = last.Fingerprint
	}
	return "the stream names exit " + relay + " (a .exit name) and circuit " + circ + " leaves through " + exit
}

type policyState struct {
	p        *builtins.Policy
	oldLeave string // __LeaveStreamsUnattached before; "" when unset
	setLeave bool
	streams  map[string]*pstream
	waiting  map[*pstream]struct{} // held or waiting for a circuit
	byCirc   map[string][]*pstream // phWaitCirc, by circuit
	maps     []ctl.AddrMap         // the policy's map, as tor answered
	failures int                   // in a row
	dryRun   bool
}

// startPolicy installs a policy: tor leaves new streams to us from now on.
func (r *Runtime) startPolicy(p *builtins.Policy) error {
	if r.policy != nil {
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
	ps := &policyState{p: p, streams: map[string]*pstream{}, waiting: map[*pstream]struct{}{}, byCirc: map[string][]*pstream{}, dryRun: r.opts.DryRun}
	// Setup runs to its end even when SIGTERM comes in the middle, so that
	// shutdown knows exactly what to undo.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 30*time.Second)
	defer cancel()
	if !ps.dryRun {
		// One policy per tor; and what a dead run left is undone before
		// we read what tor has.
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
		if err := r.recordPolicyStart(ctx, p, ps.oldLeave); err != nil {
			return err
		}
		ps.setLeave = true // even if the reply is lost, tor may have done it
		if err := r.conn.SetConf(ctx, ctl.ConfEntry{Key: leaveStreams, Value: "1"}); err != nil {
			ps.setLeave = ctl.ErrorCode(err) == 0 // refused: nothing to undo
			r.undoPolicyStart(ps)
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
		addrs := make([]string, len(p.Map))
		for i, m := range p.Map {
			addrs[i] = m.From
		}
		if err := r.record(ctx, owner.Entry{Op: "map", Addrs: addrs}); err != nil {
			r.undoPolicyStart(ps)
			return err
		}
		got, err := r.conn.MapAddress(ctx, p.Map...)
		if err != nil {
			if ctl.ErrorCode(err) == 0 {
				ps.maps = p.Map // the reply was lost: undo them all
			}
			r.undoPolicyStart(ps)
			return err
		}
		ps.maps = got
	}
	if ps.oldLeave == "1" && !ps.dryRun {
		n := r.takeOver()
		if n > 0 {
			r.log.Warn(leaveStreams+" was already 1 and streams were waiting (did a controller die?); the policy takes them over", "streams", n)
		} else {
			r.log.Warn(leaveStreams + " was already 1: another controller may be attaching streams; it will be set back to 1 when the script ends")
		}
	}
	r.log.Info("policy started", "on_error", p.OnError.String(), "timeout", p.Timeout, "dry_run", ps.dryRun)
	return nil
}

func (r *Runtime) undoPolicyStart(ps *policyState) {
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

func (r *Runtime) restoreLeave(ctx context.Context, ps *policyState) error {
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

// waitingForController reports whether a stream from stream-status is
// waiting for a controller to attach it.
func waitingForController(s *ctl.Stream) bool {
	if s.CircuitID != "0" && s.CircuitID != "" {
		return false
	}
	switch s.Status {
	case ctl.StreamNew, ctl.StreamNewResolve, ctl.StreamControllerWait, ctl.StreamDetached:
		return true
	}
	return false
}

// takeOver queues a decision for every stream in the live state that
// waits for a controller.
func (r *Runtime) takeOver() int {
	n := 0
	for _, s := range r.state.streamList() {
		if !waitingForController(s) {
			continue
		}
		if _, known := r.policy.streams[s.ID]; known {
			continue
		}
		ps := &pstream{s: s}
		r.policy.streams[s.ID] = ps
		n++
		r.tasks.post(func() { r.decide(ps) })
	}
	return n
}

func internalPurpose(p string) bool {
	switch p {
	case "DIR_FETCH", "DIR_UPLOAD", "DIRPORT_TEST":
		return true
	}
	return false
}

// policyStream follows a STREAM event.
func (r *Runtime) policyStream(e *ctl.StreamEvent) {
	ps := r.policy
	if ps == nil || r.exiting {
		return
	}
	id := e.Stream.ID
	s := r.state.streams[id]
	if s == nil {
		s = &e.Stream
	}
	st := ps.streams[id]
	switch e.Stream.Status {
	case ctl.StreamNew, ctl.StreamNewResolve, ctl.StreamControllerWait:
		if e.Stream.Status != ctl.StreamControllerWait && internalPurpose(s.Purpose) {
			// Tor attaches its own directory streams (BEGIN_DIR) itself,
			// whatever __LeaveStreamsUnattached says: an ATTACHSTREAM now
			// would race it and can break the fetch. Only one that tor
			// leaves waiting (CONTROLLER_WAIT) is ours.
			return
		}
		if ps.dryRun {
			if e.Stream.Status != ctl.StreamControllerWait {
				r.dryRunDecide(s)
			}
			return
		}
		if st != nil && (st.ph != phDone || st.gaveUp) {
			st.s = s
			return // already being decided, or given up
		}
		if st == nil {
			st = &pstream{s: s}
			ps.streams[id] = st
		} else {
			st.s, st.ph = s, phDeciding
		}
		r.decide(st)
	case ctl.StreamDetached:
		if ps.dryRun || st != nil && st.gaveUp {
			return
		}
		if st == nil {
			st = &pstream{s: s}
			ps.streams[id] = st
		}
		failed := st.circ
		if failed == "" || failed == "0" {
			failed = e.Stream.CircuitID
		}
		if failed != "" && failed != "0" {
			st.failed = append(st.failed, failed)
		}
		r.unwait(st)
		st.s, st.ph, st.circ = s, phDeciding, ""
		r.log.Debug("stream detached; asking the policy again", "stream", id, "circuit", failed, "reason", e.Stream.Reason, "remote_reason", e.Stream.RemoteReason)
		r.decide(st)
	case ctl.StreamSentConnect, ctl.StreamSentResolve, ctl.StreamSucceeded:
		if st != nil {
			r.unwait(st)
			st.s, st.ph = s, phDone
		}
	case ctl.StreamClosed, ctl.StreamFailed:
		if st != nil {
			r.unwait(st)
			delete(ps.streams, id)
		}
	}
}

func (r *Runtime) dryRunDecide(s *ctl.Stream) {
	if internalPurpose(s.Purpose) && !r.policy.p.AllStreams {
		return
	}
	v, err := r.call(r.policy.p.Fn, starlark.Tuple{&builtins.Stream{S: s, Host: (*host)(r)}})
	if err != nil {
		if !r.exitRequested(err) {
			r.policy.failures++
			r.reportFailure("policy failed (dry run)", r.policy.failures, err, "stream", s.ID, "target", s.Target)
		}
		return
	}
	d, err := builtins.ToDecision(v)
	if err != nil {
		r.policy.failures++
		r.reportFailure("policy failed (dry run)", r.policy.failures, err, "stream", s.ID, "target", s.Target)
		return
	}
	r.policy.failures = 0
	r.log.Info("dry run: decision not applied; tor attaches the stream", "stream", s.ID, "target", s.Target, "decision", d.String())
}

// decide asks the policy about a stream and applies its answer.
func (r *Runtime) decide(st *pstream) {
	ps := r.policy
	if ps == nil || r.exiting || ps.streams[st.s.ID] != st || st.ph != phDeciding {
		return
	}
	if internalPurpose(st.s.Purpose) && !ps.p.AllStreams {
		r.apply(st, builtins.Attach{Circuit: "0"})
		return
	}
	st.asks++
	if st.asks > maxAsks {
		r.log.Warn("the policy was asked about a stream too often (another controller may be attaching it); on_error applies and the stream is left alone from now on", "stream", st.s.ID, "target", st.s.Target, "failed_circuits", strings.Join(st.failed, ","))
		st.gaveUp = true
		r.apply(st, ps.p.OnError)
		return
	}
	v, err := r.call(ps.p.Fn, starlark.Tuple{&builtins.Stream{S: st.s, Failed: st.failed, Host: (*host)(r)}})
	var d builtins.Decision
	if err == nil {
		d, err = builtins.ToDecision(v)
	}
	if err != nil {
		if r.exitRequested(err) {
			return // shutdown applies on_error to it
		}
		ps.failures++
		r.reportFailure("policy failed; on_error applies", ps.failures, err, "stream", st.s.ID, "target", st.s.Target, "on_error", ps.p.OnError.String())
		if r.fatal == nil && ps.streams[st.s.ID] == st {
			r.apply(st, ps.p.OnError)
		}
		return
	}
	ps.failures = 0
	if ps.streams[st.s.ID] != st || st.ph != phDeciding {
		return // the policy handled it itself (tor.attach_stream) or it ended
	}
	if r.log.Enabled(r.ctx, -4) {
		r.log.Debug("decision", "stream", st.s.ID, "target", st.s.Target, "decision", d.String())
	}
	r.apply(st, d)
}

// apply carries out a decision.
func (r *Runtime) apply(st *pstream, d builtins.Decision) {
	switch d := d.(type) {
	case builtins.Attach:
		if d.Circuit != "0" {
			if why := r.onlyTor(st); why != "" {
				r.log.Debug("only tor can carry this stream; it goes to tor", "stream", st.s.ID, "target", st.s.Target, "why", why, "circuit", d.Circuit)
				d = builtins.Attach{Circuit: "0"}
			} else if why := r.wrongExit(st, d.Circuit); why != "" {
				r.log.Warn("stream closed: the policy's circuit cannot carry it", "stream", st.s.ID, "target", st.s.Target, "why", why)
				r.apply(st, builtins.Close{Reason: ctl.RelayEndMisc})
				return
			}
		}
		if d.Circuit != "0" {
			if c := r.state.circs[d.Circuit]; c != nil && c.Status != ctl.CircBuilt {
				r.waitCircuit(st, d.Circuit, d.Hop)
				return
			}
		}
		r.sendAttach(st, d.Circuit, d.Hop)
	case builtins.Close:
		r.unwait(st)
		st.ph = phSent
		line, err := ctl.CloseStreamLine(st.s.ID, d.Reason)
		if err != nil {
			r.log.Error("close stream", "stream", st.s.ID, "err", err)
			return
		}
		r.send(line, func(err error) {
			if ctl.ErrorCode(err) == ctl.CodeUnrecognized {
				r.policyForget(st.s.ID) // gone already
				return
			}
			r.log.Warn("CLOSESTREAM failed", "stream", st.s.ID, "err", err)
		})
	case builtins.Redirect:
		line, err := ctl.RedirectStreamLine(st.s.ID, d.Host, d.Port)
		if err != nil {
			r.log.Error("redirect stream", "stream", st.s.ID, "err", err)
			r.apply(st, r.policy.p.OnError)
			return
		}
		r.send(line, func(err error) {
			r.log.Warn("REDIRECTSTREAM failed", "stream", st.s.ID, "err", err)
		})
		st.redirect = d.Host
		r.apply(st, d.Then)
	case builtins.Hold:
		r.unwait(st)
		st.ph = phHeld
		st.deadline = time.Now().Add(r.policy.p.Timeout)
		r.policy.waiting[st] = struct{}{}
	}
}

// waitCircuit makes a stream wait for its circuit to be built.
func (r *Runtime) waitCircuit(st *pstream, circ string, hop int) {
	r.unwait(st)
	if c := r.state.circs[circ]; c != nil && c.Status == ctl.CircBuilt {
		r.sendAttach(st, circ, hop) // built meanwhile
		return
	}
	st.ph, st.circ, st.hop = phWaitCirc, circ, hop
	st.deadline = time.Now().Add(r.policy.p.Timeout)
	r.policy.waiting[st] = struct{}{}
	r.policy.byCirc[circ] = append(r.policy.byCirc[circ], st)
}

// pendingCircuit says whether a circuit may still be on its way to being
// built: known and not built, or not seen at all and not closed lately.
func (r *Runtime) pendingCircuit(id string) bool {
	if c := r.state.circs[id]; c != nil {
		return c.Status != ctl.CircBuilt
	}
	_, closed := r.state.closed[id]
	return !closed
}

func (r *Runtime) sendAttach(st *pstream, circ string, hop int) {
	r.unwait(st)
	st.ph, st.circ, st.hop = phSent, circ, hop
	c := r.state.circs[circ]
	st.sentBuilt = c != nil && c.Status == ctl.CircBuilt
	line, err := ctl.AttachStreamLine(st.s.ID, circ, hop)
	if err != nil {
		r.log.Error("attach stream", "stream", st.s.ID, "circuit", circ, "err", err)
		if circ != "0" {
			r.apply(st, r.policy.p.OnError)
		}
		return
	}
	r.send(line, func(err error) { r.attachFailed(st, circ, err) })
}

// send writes a command whose reply the loop need not wait for; onError
// runs on the loop when tor refuses it.
func (r *Runtime) send(line string, onError func(error)) {
	if r.conn == nil {
		return
	}
	err := r.conn.Send(r.ctx, line, func(_ *ctl.Reply, err error) {
		if err == nil {
			return
		}
		if ctl.ErrorCode(err) == 0 {
			return // the connection ended; reconnecting resyncs
		}
		r.tasks.post(func() { onError(err) })
	})
	if err != nil {
		r.log.Debug("command not sent", "line", line, "err", err)
	}
}

// attachFailed handles a refused ATTACHSTREAM: the races of a stream that
// ended, a circuit that died, or a stream tor took back.
func (r *Runtime) attachFailed(st *pstream, circ string, err error) {
	ps := r.policy
	if ps == nil || ps.streams[st.s.ID] != st || st.circ != circ || st.ph != phSent {
		return
	}
	code := ctl.ErrorCode(err)
	msg := err.Error()
	switch {
	case code == ctl.CodeUnrecognized && strings.Contains(msg, "stream"),
		code == ctl.CodeUnmanaged:
		// The stream ended, or tor no longer waits for us about it
		// (another controller attached it). Keep what we know of it until
		// it closes, so that a stream fought over is asked about at most
		// maxAsks times.
		r.log.Debug("stream gone before it was attached", "stream", st.s.ID, "err", msg)
		st.ph = phDone
	case circ == "0":
		r.log.Warn("tor refused to take back a stream", "stream", st.s.ID, "err", msg)
		delete(ps.streams, st.s.ID)
	case code == ctl.CodeInternal && !st.sentBuilt && (r.pendingCircuit(circ) || r.state.circs[circ] != nil):
		// Not built yet, and its first CIRC event not seen yet (a circuit
		// the policy has just asked for): wait for it.
		r.waitCircuit(st, circ, st.hop)
	case code == ctl.CodeUnrecognized, code == ctl.CodeInternal:
		r.log.Info("circuit unusable for the stream; asking the policy again", "stream", st.s.ID, "circuit", circ, "err", msg)
		st.failed = append(st.failed, circ)
		st.ph, st.circ = phDeciding, ""
		r.decide(st)
	default:
		r.log.Warn("ATTACHSTREAM failed; on_error applies", "stream", st.s.ID, "circuit", circ, "err", msg)
		r.apply(st, ps.p.OnError)
	}
}

// policyCircuit follows a CIRC event: streams waiting for a circuit are
// attached when it is built and decided again when it fails.
func (r *Runtime) policyCircuit(c *ctl.Circuit) {
	ps := r.policy
	if ps == nil || r.exiting {
		return
	}
	waiters := ps.byCirc[c.ID]
	if len(waiters) == 0 {
		return
	}
	switch c.Status {
	case ctl.CircBuilt:
		delete(ps.byCirc, c.ID)
		for _, st := range waiters {
			if st.ph == phWaitCirc && st.circ == c.ID {
				r.sendAttach(st, c.ID, st.hop)
			}
		}
	case ctl.CircFailed, ctl.CircClosed:
		delete(ps.byCirc, c.ID)
		for _, st := range waiters {
			if st.ph == phWaitCirc && st.circ == c.ID {
				delete(ps.waiting, st)
				st.failed = append(st.failed, c.ID)
				st.ph, st.circ = phDeciding, ""
				r.decide(st)
			}
		}
	}
}

// unwait takes a stream off the waiting lists.
func (r *Runtime) unwait(st *pstream) {
	ps := r.policy
	delete(ps.waiting, st)
	if st.ph == phWaitCirc {
		l := ps.byCirc[st.circ]
		for i, x := range l {
			if x == st {
				l = append(l[:i], l[i+1:]...)
				break
			}
		}
		if len(l) == 0 {
			delete(ps.byCirc, st.circ)
		} else {
			ps.byCirc[st.circ] = l
		}
	}
}

// policySweep applies on_error to streams that waited past the timeout.
func (r *Runtime) policySweep(now time.Time) {
	ps := r.policy
	if ps == nil || r.exiting {
		return
	}
	for st := range ps.waiting {
		if now.Before(st.deadline) {
			continue
		}
		what := "held"
		if st.ph == phWaitCirc {
			what = "waiting for circuit " + st.circ
		}
		r.log.Warn("stream waited longer than the policy timeout; on_error applies", "stream", st.s.ID, "target", st.s.Target, "was", what, "timeout", ps.p.Timeout, "on_error", ps.p.OnError.String())
		r.apply(st, ps.p.OnError)
	}
}

// policyForget is called when the script attached or closed a stream
// itself.
func (r *Runtime) policyForget(id string) {
	ps := r.policy
	if ps == nil {
		return
	}
	if st := ps.streams[id]; st != nil {
		r.unwait(st)
		st.ph = phDone
	}
}

// policyPending records the new streams among events left unhandled when
// the script ends, so that shutdown decides them.
func (r *Runtime) policyPending(evs []ctl.Event) {
	ps := r.policy
	if ps == nil || ps.dryRun {
		return
	}
	for _, ev := range evs {
		e, ok := ev.(*ctl.StreamEvent)
		if !ok {
			continue
		}
		switch e.Stream.Status {
		case ctl.StreamNew, ctl.StreamNewResolve, ctl.StreamControllerWait, ctl.StreamDetached:
			if st := ps.streams[e.Stream.ID]; st == nil || st.ph == phDone {
				ps.streams[e.Stream.ID] = &pstream{s: &e.Stream}
			}
		case ctl.StreamClosed, ctl.StreamFailed:
			delete(ps.streams, e.Stream.ID)
		}
	}
}

// policyShutdown hands back every stream the policy holds (or closes it,
// per on_error), and restores __LeaveStreamsUnattached.
func (r *Runtime) policyShutdown(ctx context.Context) {
	ps := r.policy
	if ps == nil || ps.dryRun || r.conn == nil {
		return
	}
	// From here on tor attaches new streams itself (unless another
	// controller had set it).
	if ps.setLeave {
		if r.restoreLeave(ctx, ps) == nil {
			ps.setLeave = false
		}
	}
	// Events still queued may announce streams that wait for us.
	if evs, _ := r.conn.EventBatch(nil); len(evs) > 0 {
		for _, ev := range evs {
			if e, ok := ev.(*ctl.StreamEvent); ok {
				r.state.stream(&e.Stream)
			}
		}
		r.policyPending(evs)
	}
	var wg sync.WaitGroup
	do := func(line string) {
		wg.Add(1)
		err := r.conn.Send(ctx, line, func(_ *ctl.Reply, err error) {
			if err != nil {
				if code := ctl.ErrorCode(err); code != ctl.CodeUnrecognized && code != ctl.CodeUnmanaged {
					r.log.Warn("handing back a stream failed", "command", line, "err", err)
				}
			}
			wg.Done()
		})
		if err != nil {
			wg.Done()
		}
	}
	handled := map[string]bool{}
	n := 0
	for id, st := range ps.streams {
		if st.ph == phDone || st.ph == phSent {
			continue
		}
		handled[id] = true
		n++
		var line string
		var err error
		if c, ok := ps.p.OnError.(builtins.Close); ok {
			line, err = ctl.CloseStreamLine(id, c.Reason)
		} else {
			line, err = ctl.AttachStreamLine(id, "0", 0)
		}
		if err == nil {
			do(line)
		}
	}
	// Streams that arrived after the last event we read still wait for a
	// controller: hand them to tor, unless another controller had the
	// setting before us.
	if ps.oldLeave != "1" {
		if streams, err := r.conn.Streams(ctx); err == nil {
			for i := range streams {
				s := &streams[i]
				if waitingForController(s) && !handled[s.ID] {
					if line, err := ctl.AttachStreamLine(s.ID, "0", 0); err == nil {
						n++
						do(line)
					}
				}
			}
		}
	}
	wg.Wait()
	if n > 0 {
		r.log.Info("streams handed back at exit", "streams", n, "on_error", ps.p.OnError.String())
	}
	if len(ps.maps) > 0 {
		r.unmap(ctx, ps.maps)
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
