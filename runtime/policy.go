package runtime

// The stream policy: tor.policy(fn) makes the script decide, for every new
// client stream, which circuit it rides. One NEW stream travels, package by
// package, in this order:
//
//  1. ctl/conn.go readLoop: the one reader goroutine reads the "650 STREAM
//     42 NEW 0 example.com:443 ..." reply (ctl/reply.go ReplyReader), and
//     ctl/event.go ParseEvent makes it a *ctl.StreamEvent, queued on the
//     connection (its event queue, in ctl/conn.go; past 4 MiB of queued
//     events the reader leaves the rest in tor until the loop catches up).
//  2. runtime/loop.go loop: the event-loop goroutine takes the batch
//     (Conn.EventBatch), corks the connection while it handles it
//     (dispatchEvents), and dispatch updates the live state
//     (runtime/state.go, a builtins.Live per kind), then hands the event
//     to the policy engine (this file, policyEngine.onStream) before the
//     script's handlers.
//  3. policyEngine.decide calls the script's policy function through
//     policyEnv.call (runtime/loop.go call: a step budget and a deadline,
//     watched by the watchdog) with a builtins.Stream
//     (builtins/values.go), and reads its answer as a sealed
//     builtins.Decision (builtins/decision.go): Attach, Close, Redirect,
//     Hold.
//  4. policyEngine.apply turns the decision into a typed ctl.Command
//     (ctl/command.go AttachStreamCommand: built and its arguments checked
//     once) and hands it to policyEnv.send.
//  5. ctl/conn.go Start/write: the grant check set with Conn.SetCheck
//     (runtime/grants.go checkCommand, which reads the line with
//     ctl/cmdline.go ParseCommandLine as tor will) sees the final line,
//     then "ATTACHSTREAM 42 7" is written to the socket with the batch's
//     other decisions when the loop flushes (the batch's end, or 1 ms
//     after the first held command: the cork's timer, or the loop's own
//     check every 32 events in a long batch). Tor's reply
//     comes back through the reader (step 1) to the command's callback;
//     a refusal is posted to the loop (policyEngine.attachFailed).
//
// The engine owns the streams it decides about; it reaches the rest of the
// runtime only through policyEnv. Starting and ending a policy (setting
// __LeaveStreamsUnattached, address maps, handing streams back) is in
// policy_setup.go.

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

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

// policyEnv is all the policy engine reaches of the rest of the runtime:
// a supervised call, a command sent without waiting, and the live state.
type policyEnv interface {
	// call runs the policy function under supervision.
	call(fn starlark.Callable, args starlark.Tuple) (starlark.Value, error)
	// send writes cmd without waiting; onError runs on the loop when tor
	// refuses it (not when the connection ends: reconnecting resyncs).
	send(cmd ctl.Command, onError func(error))
	// post runs f on the loop, after what is running now.
	post(f func())
	// circuit and stream are the live state's, or nil; circuitClosed
	// says whether a circuit closed lately.
	circuit(id string) *ctl.Circuit
	stream(id string) *ctl.Stream
	circuitClosed(id string) bool
	// probe is the decision about a probe's stream (tor.fetch,
	// tor.connect), which the policy function is not asked about.
	probe(s *ctl.Stream, failed []string) (builtins.Decision, bool)
	// streamValue is what the policy function receives for a stream.
	streamValue(s *ctl.Stream, failed []string) starlark.Value
	// exitRequested says whether a call's error is the script's exit()
	// (then nothing is applied: the end does it); reportFailure reports
	// any other failure.
	exitRequested(err error) bool
	reportFailure(msg string, inARow int, err error, attrs ...any)
	// ending says the script is ending: nothing more is decided; broken
	// says the script failed beyond repair (it ends next).
	ending() bool
	broken() bool
}

// policyEngine carries out one tor.policy: it owns the streams the policy
// decides about, those held or waiting for a circuit, and the waiters of
// each circuit.
type policyEngine struct {
	env    policyEnv
	arg1   callArgs // the arguments of a call of the policy
	log    *slog.Logger
	p      *builtins.Policy
	dryRun bool
	// decisions is the level each decision is logged at: INFO, or
	// DEBUG with Options.QuietDecisions (--quiet).
	decisions slog.Level
	metrics   *Metrics // nil: none
	now       func() time.Time
	// own: the runtime started it for the script's probes (probes.go),
	// and p.Fn is nil; a tor.policy later takes it over (adoptPolicy).
	own bool

	streams  builtins.IDMap[*pstream] // by stream ID (stream)
	waiting  map[*pstream]struct{}    // held or waiting for a circuit
	byCirc   map[string][]*pstream    // phWaitCirc, by circuit
	failures int                      // in a row

	// What starting the policy changed in tor, for its end to undo
	// (policy_setup.go).
	oldLeave string        // __LeaveStreamsUnattached before; "" when unset
	setLeave bool          // we set it
	maps     []ctl.AddrMap // the policy's map, as tor answered
}

func newPolicyEngine(env policyEnv, log *slog.Logger, p *builtins.Policy, dryRun bool) *policyEngine {
	e := &policyEngine{env: env, log: log, p: p, dryRun: dryRun, decisions: slog.LevelInfo, now: time.Now}
	e.reset()
	return e
}

// reset forgets every stream: after the connection was lost, what was in
// flight is unknown; the resync after reconnecting takes over whatever
// still waits (takeOver).
func (e *policyEngine) reset() {
	e.streams = builtins.IDMap[*pstream]{}
	e.waiting = map[*pstream]struct{}{}
	e.byCirc = map[string][]*pstream{}
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

// takeOver queues a decision for every stream of the live state that
// waits for a controller and is not known yet.
func (e *policyEngine) takeOver(streams []*ctl.Stream) int {
	n := 0
	for _, s := range streams {
		if !waitingForController(s) {
			continue
		}
		if _, known := e.streams.Get(s.ID); known {
			continue
		}
		st := &pstream{s: s}
		e.streams.Set(s.ID, st)
		n++
		e.env.post(func() { e.decide(st) })
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

// onStream follows a STREAM event.
func (e *policyEngine) onStream(ev *ctl.StreamEvent) {
	if e.env.ending() {
		return
	}
	id := ev.Stream.ID
	s := e.env.stream(id)
	if s == nil {
		s = &ev.Stream
	}
	st := e.stream(id)
	switch ev.Stream.Status {
	case ctl.StreamNew, ctl.StreamNewResolve, ctl.StreamControllerWait:
		e.newStream(ev.Stream.Status, s, st)
	case ctl.StreamDetached:
		e.detached(ev, s, st)
	default:
		e.streamMoved(id, ev.Stream.Status, s, st)
	}
}

// needsStream says whether onStream needs a STREAM event of status parsed:
// it asks the policy about new and detached streams; of the others
// (onStreamStatus) it takes only the ID and status.
func needsStream(status ctl.StreamStatus) bool {
	switch status {
	case ctl.StreamNew, ctl.StreamNewResolve, ctl.StreamControllerWait, ctl.StreamDetached:
		return true
	}
	return false
}

// onStreamStatus is onStream for an event left unparsed, of a status
// needsStream says needs no parse.
func (e *policyEngine) onStreamStatus(id string, status ctl.StreamStatus) {
	if e.env.ending() {
		return
	}
	e.streamMoved(id, status, nil, e.stream(id))
}

// streamMoved follows a stream the policy decided about (st, or nil) past
// its decision: attached (SENTCONNECT, ...) or ended. s is its new state,
// or nil to keep the one it had.
func (e *policyEngine) streamMoved(id string, status ctl.StreamStatus, s *ctl.Stream, st *pstream) {
	if st == nil {
		return
	}
	switch status {
	case ctl.StreamSentConnect, ctl.StreamSentResolve, ctl.StreamSucceeded:
		e.unwait(st)
		if s != nil {
			st.s = s
		}
		st.ph = phDone
	case ctl.StreamClosed, ctl.StreamFailed:
		e.unwait(st)
		e.streams.Delete(id)
		st.release()
	}
}

// release drops what a stream that ended still held: its event (and the
// text it was read from). A command in flight about it may keep st until
// tor answers, which under a flood is thousands of streams, so st keeps
// nothing of its own; the callbacks that log name the stream by the ID
// they captured, and every other path first checks that st is still the
// stream of its ID (e.streams), which an ended stream is not.
func (st *pstream) release() {
	st.s = &endedStream
	st.failed = nil
}

// endedStream is what a released pstream points at: no ID is "".
var endedStream ctl.Stream

// newStream asks the policy about a stream tor leaves to us.
func (e *policyEngine) newStream(status ctl.StreamStatus, s *ctl.Stream, st *pstream) {
	if status != ctl.StreamControllerWait && internalPurpose(s.Purpose) {
		// Tor attaches its own directory streams (BEGIN_DIR) itself,
		// whatever __LeaveStreamsUnattached says: an ATTACHSTREAM now
		// would race it and can break the fetch. Only one that tor
		// leaves waiting (CONTROLLER_WAIT) is ours.
		return
	}
	if e.dryRun {
		if status != ctl.StreamControllerWait {
			e.dryRunDecide(s)
		}
		return
	}
	if st != nil && (st.ph != phDone || st.gaveUp) {
		st.s = s
		return // already being decided, or given up
	}
	if st == nil {
		st = &pstream{s: s}
		e.streams.Set(s.ID, st)
	} else {
		st.s, st.ph = s, phDeciding
	}
	e.decide(st)
}

// detached asks the policy again about a stream whose circuit failed it.
func (e *policyEngine) detached(ev *ctl.StreamEvent, s *ctl.Stream, st *pstream) {
	if e.dryRun || st != nil && st.gaveUp {
		return
	}
	if st == nil {
		st = &pstream{s: s}
		e.streams.Set(s.ID, st)
	}
	failed := st.circ
	if failed == "" || failed == "0" {
		failed = ev.Stream.CircuitID
	}
	if failed != "" && failed != "0" {
		st.failed = append(st.failed, failed)
	}
	e.unwait(st)
	st.s, st.ph, st.circ = s, phDeciding, ""
	e.log.Debug("stream detached; asking the policy again", "stream", s.ID, "circuit", failed, "reason", ev.Stream.Reason, "remote_reason", ev.Stream.RemoteReason)
	e.decide(st)
}

func (e *policyEngine) dryRunDecide(s *ctl.Stream) {
	if internalPurpose(s.Purpose) && !e.p.AllStreams {
		return
	}
	v, err := e.env.call(e.p.Fn, e.arg1.of(e.p.Fn, e.env.streamValue(s, nil)))
	var d builtins.Decision
	if err == nil {
		d, err = builtins.ToDecision(v)
	}
	if err != nil {
		if !e.env.exitRequested(err) {
			e.failures++
			e.env.reportFailure("policy failed (dry run)", e.failures, err, "stream", s.ID, "target", s.Target)
		}
		return
	}
	e.failures = 0
	e.log.Log(context.Background(), e.decisions, "dry run: decision not applied; tor attaches the stream", "stream", s.ID, "target", s.Target, "decision", d.String())
}

// onError is the on_error decision for st: the policy's, but a probe's
// stream (tor.fetch, tor.connect) is closed rather than sent over another
// circuit than the one it asked for.
func (e *policyEngine) onError(st *pstream) builtins.Decision {
	if _, probe := e.env.probe(st.s, nil); probe {
		return builtins.Close{Reason: ctl.RelayEndMisc}
	}
	return e.p.OnError
}

// applyOnError applies the policy's on_error to a stream.
func (e *policyEngine) applyOnError(st *pstream) {
	d := e.onError(st)
	e.metrics.decision(d, true)
	e.apply(st, d)
}

// decide asks the policy about a stream and applies its answer.
func (e *policyEngine) decide(st *pstream) {
	if e.env.ending() || e.stream(st.s.ID) != st || st.ph != phDeciding {
		return
	}
	if d, ok := e.env.probe(st.s, st.failed); ok {
		e.apply(st, d)
		return
	}
	if internalPurpose(st.s.Purpose) && !e.p.AllStreams || e.own {
		// The runtime's own policy, which only probes need, gives
		// every other stream to tor.
		e.apply(st, builtins.Attach{Circuit: "0"})
		return
	}
	st.asks++
	if st.asks > maxAsks {
		e.log.Warn("the policy was asked about a stream too often (another controller may be attaching it); on_error applies and the stream is left alone from now on", "stream", st.s.ID, "target", st.s.Target, "failed_circuits", strings.Join(st.failed, ","))
		st.gaveUp = true
		e.applyOnError(st)
		return
	}
	var start time.Time
	if e.metrics != nil {
		start = time.Now()
	}
	v, err := e.env.call(e.p.Fn, e.arg1.of(e.p.Fn, e.env.streamValue(st.s, st.failed)))
	if e.metrics != nil {
		e.metrics.policyCalled(time.Since(start))
	}
	var d builtins.Decision
	if err == nil {
		d, err = builtins.ToDecision(v)
	}
	if err != nil {
		if e.env.exitRequested(err) {
			return // the end applies on_error to it
		}
		e.failures++
		e.env.reportFailure("policy failed; on_error applies", e.failures, err, "stream", st.s.ID, "target", st.s.Target, "on_error", e.p.OnError.String())
		if !e.env.broken() && e.stream(st.s.ID) == st {
			e.applyOnError(st)
		}
		return
	}
	e.failures = 0
	if e.stream(st.s.ID) != st || st.ph != phDeciding {
		return // the policy handled it itself (tor.attach_stream) or it ended
	}
	if e.log.Enabled(context.Background(), e.decisions) {
		e.log.Log(context.Background(), e.decisions, "decision", "stream", st.s.ID, "target", st.s.Target, "decision", d.String())
	}
	e.metrics.decision(d, false)
	e.apply(st, d)
}

// apply carries out a decision.
func (e *policyEngine) apply(st *pstream, d builtins.Decision) {
	switch d := d.(type) {
	case builtins.Attach:
		e.attach(st, d)
	case builtins.Close:
		e.unwait(st)
		st.ph = phSent
		e.metrics.sent(st.s.ID)
		cmd, err := ctl.CloseStreamCommand(st.s.ID, d.Reason)
		if err != nil {
			e.log.Error("close stream", "stream", st.s.ID, "err", err)
			return
		}
		id := st.s.ID
		e.env.send(cmd, func(err error) {
			if ctl.ErrorCode(err) == ctl.CodeUnrecognized {
				e.forget(id) // gone already
				return
			}
			e.log.Warn("CLOSESTREAM failed", "stream", id, "err", err)
		})
	case builtins.Redirect:
		// A redirect fails closed: a stream that cannot go where the
		// policy sends it is closed, never let out to where it asked.
		cmd, err := ctl.RedirectStreamCommand(st.s.ID, d.Host, d.Port)
		if err != nil {
			e.log.Warn("stream closed: the policy's redirect cannot be sent", "stream", st.s.ID, "target", st.s.Target, "err", err)
			e.apply(st, builtins.Close{Reason: ctl.RelayEndMisc})
			return
		}
		id := st.s.ID
		e.env.send(cmd, func(err error) {
			if ctl.ErrorCode(err) == ctl.CodeUnrecognized {
				e.forget(id) // gone already
				return
			}
			// Tor answers the ATTACHSTREAM sent after it the same way
			// (the stream is not left to us any more); close it all
			// the same if it is still ours.
			e.log.Warn("REDIRECTSTREAM failed; closing the stream", "stream", id, "err", err)
			if st := e.stream(id); st != nil && st.ph != phDone {
				e.apply(st, builtins.Close{Reason: ctl.RelayEndMisc})
			}
		})
		st.redirect = d.Host
		e.apply(st, d.Then)
	case builtins.Hold:
		e.unwait(st)
		st.ph = phHeld
		st.deadline = e.now().Add(e.p.Timeout)
		e.waiting[st] = struct{}{}
	}
}

// attach carries out an Attach: to tor when only tor can carry the
// stream, closed when the circuit leaves through another exit than the
// one the stream names, after the circuit is built when it is not yet.
func (e *policyEngine) attach(st *pstream, d builtins.Attach) {
	if d.Circuit != "0" {
		host := streamHost(st)
		if why := onlyTor(host); why != "" {
			e.log.Debug("only tor can carry this stream; it goes to tor", "stream", st.s.ID, "target", st.s.Target, "why", why, "circuit", d.Circuit)
			d = builtins.Attach{Circuit: "0"}
		} else if why := e.wrongExit(host, d.Circuit); why != "" {
			e.log.Warn("stream closed: the policy's circuit cannot carry it", "stream", st.s.ID, "target", st.s.Target, "why", why)
			e.apply(st, builtins.Close{Reason: ctl.RelayEndMisc})
			return
		}
	}
	if d.Circuit != "0" {
		if c := e.env.circuit(d.Circuit); c != nil && c.Status != ctl.CircBuilt {
			e.waitCircuit(st, d.Circuit, d.Hop)
			return
		}
	}
	e.sendAttach(st, d.Circuit, d.Hop)
}

// onlyTor says why a stream to host (as streamHost gives it) cannot ride a
// circuit of ours and must go to tor, or "": an onion service's stream
// rides a rendezvous circuit that tor builds itself (ATTACHSTREAM to any
// other circuit fails with 551).
func onlyTor(host string) string {
	if strings.HasSuffix(host, ".onion") {
		return "an onion service: tor builds its rendezvous circuit"
	}
	return ""
}

// streamHost is where a stream goes now: its target, or where a
// REDIRECTSTREAM sent it; lower case, without a trailing dot.
func streamHost(st *pstream) string {
	host := st.s.TargetHost
	if st.redirect != "" {
		host = st.redirect
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// wrongExit says why circ cannot carry a stream to host (as streamHost
// gives it) when host is HOST.RELAY.exit, or "":
// the user named the exit, and circ, built, leaves through another. Tor
// 0.4.9 does not carry such a name itself (a stream it is handed fails
// with TORPROTOCOL), so the stream is closed rather than sent out of an
// exit the user did not choose.
func (e *policyEngine) wrongExit(host, circ string) string {
	name, ok := strings.CutSuffix(host, ".exit")
	if !ok {
		return ""
	}
	relay := strings.TrimPrefix(name[strings.LastIndexByte(name, '.')+1:], "$")
	c := e.env.circuit(circ)
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

// waitCircuit makes a stream wait for its circuit to be built.
func (e *policyEngine) waitCircuit(st *pstream, circ string, hop int) {
	e.unwait(st)
	if c := e.env.circuit(circ); c != nil && c.Status == ctl.CircBuilt {
		e.sendAttach(st, circ, hop) // built meanwhile
		return
	}
	st.ph, st.circ, st.hop = phWaitCirc, circ, hop
	st.deadline = e.now().Add(e.p.Timeout)
	e.waiting[st] = struct{}{}
	e.byCirc[circ] = append(e.byCirc[circ], st)
}

// pendingCircuit says whether a circuit may still be on its way to being
// built: known and not built, or not seen at all and not closed lately.
func (e *policyEngine) pendingCircuit(id string) bool {
	if c := e.env.circuit(id); c != nil {
		return c.Status != ctl.CircBuilt
	}
	return !e.env.circuitClosed(id)
}

func (e *policyEngine) sendAttach(st *pstream, circ string, hop int) {
	e.unwait(st)
	st.ph, st.circ, st.hop = phSent, circ, hop
	c := e.env.circuit(circ)
	st.sentBuilt = c != nil && c.Status == ctl.CircBuilt
	cmd, err := ctl.AttachStreamCommand(st.s.ID, circ, hop)
	if err != nil {
		e.log.Error("attach stream", "stream", st.s.ID, "circuit", circ, "err", err)
		if circ != "0" {
			e.applyOnError(st)
		}
		return
	}
	e.metrics.sent(st.s.ID)
	e.env.send(cmd, func(err error) { e.attachFailed(st, circ, err) })
}

// attachFailed handles a refused ATTACHSTREAM: the races of a stream that
// ended, a circuit that died, or a stream tor took back.
func (e *policyEngine) attachFailed(st *pstream, circ string, err error) {
	if e.stream(st.s.ID) != st || st.circ != circ || st.ph != phSent {
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
		e.log.Debug("stream gone before it was attached", "stream", st.s.ID, "err", msg)
		st.ph = phDone
	case circ == "0":
		e.log.Warn("tor refused to take back a stream", "stream", st.s.ID, "err", msg)
		e.streams.Delete(st.s.ID)
	case code == ctl.CodeInternal && !st.sentBuilt && (e.pendingCircuit(circ) || e.env.circuit(circ) != nil):
		// Not built yet, and its first CIRC event not seen yet (a circuit
		// the policy has just asked for): wait for it.
		e.waitCircuit(st, circ, st.hop)
	case code == ctl.CodeUnrecognized, code == ctl.CodeInternal:
		e.log.Info("circuit unusable for the stream; asking the policy again", "stream", st.s.ID, "circuit", circ, "err", msg)
		st.failed = append(st.failed, circ)
		st.ph, st.circ = phDeciding, ""
		e.decide(st)
	default:
		e.log.Warn("ATTACHSTREAM failed; on_error applies", "stream", st.s.ID, "circuit", circ, "err", msg)
		e.applyOnError(st)
	}
}

// onCircuit follows a CIRC event: streams waiting for a circuit are
// attached when it is built and decided again when it fails.
func (e *policyEngine) onCircuit(id string, status ctl.CircStatus) {
	if e.env.ending() {
		return
	}
	waiters := e.byCirc[id]
	if len(waiters) == 0 {
		return
	}
	switch status {
	case ctl.CircBuilt:
		delete(e.byCirc, id)
		for _, st := range waiters {
			if st.ph == phWaitCirc && st.circ == id {
				e.sendAttach(st, id, st.hop)
			}
		}
	case ctl.CircFailed, ctl.CircClosed:
		delete(e.byCirc, id)
		for _, st := range waiters {
			if st.ph == phWaitCirc && st.circ == id {
				delete(e.waiting, st)
				st.failed = append(st.failed, id)
				st.ph, st.circ = phDeciding, ""
				e.decide(st)
			}
		}
	}
}

// unwait takes a stream off the waiting lists.
func (e *policyEngine) unwait(st *pstream) {
	delete(e.waiting, st)
	if st.ph != phWaitCirc {
		return
	}
	l := e.byCirc[st.circ]
	for i, x := range l {
		if x == st {
			l = append(l[:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(e.byCirc, st.circ)
	} else {
		e.byCirc[st.circ] = l
	}
}

// sweep applies on_error to streams that waited past the timeout.
func (e *policyEngine) sweep(now time.Time) {
	if e.env.ending() {
		return
	}
	for st := range e.waiting {
		if now.Before(st.deadline) {
			continue
		}
		if _, probe := e.env.probe(st.s, nil); probe {
			// A probe's stream waits for its circuit as long as the
			// probe's own timeout, which closes it.
			continue
		}
		what := "held"
		if st.ph == phWaitCirc {
			what = "waiting for circuit " + st.circ
		}
		e.log.Warn("stream waited longer than the policy timeout; on_error applies", "stream", st.s.ID, "target", st.s.Target, "was", what, "timeout", e.p.Timeout, "on_error", e.p.OnError.String())
		e.applyOnError(st)
	}
}

// stream is the stream of that ID the policy knows of, or nil.
func (e *policyEngine) stream(id string) *pstream {
	st, _ := e.streams.Get(id)
	return st
}

// forget is called when the script attached or closed a stream itself.
func (e *policyEngine) forget(id string) {
	if st := e.stream(id); st != nil {
		e.unwait(st)
		st.ph = phDone
	}
}

// pending records the new streams among events left unhandled when the
// script ends, so that the end decides them.
func (e *policyEngine) pending(evs []ctl.Event) {
	if e.dryRun {
		return
	}
	for _, ev := range evs {
		se, ok := ctl.Parsed(ev).(*ctl.StreamEvent)
		if !ok {
			continue
		}
		switch se.Stream.Status {
		case ctl.StreamNew, ctl.StreamNewResolve, ctl.StreamControllerWait, ctl.StreamDetached:
			if st := e.stream(se.Stream.ID); st == nil || st.ph == phDone {
				e.streams.Set(se.Stream.ID, &pstream{s: &se.Stream})
			}
		case ctl.StreamClosed, ctl.StreamFailed:
			e.streams.Delete(se.Stream.ID)
		}
	}
}

// handBack is what the end of the policy sends for the streams it still
// holds: each goes back to tor, or is closed when on_error says close.
func (e *policyEngine) handBack() (cmds []ctl.Command, ids map[string]bool) {
	ids = map[string]bool{}
	for id, st := range e.streams.All() {
		if st.ph == phDone || st.ph == phSent {
			continue
		}
		var cmd ctl.Command
		var err error
		if c, ok := e.p.OnError.(builtins.Close); ok {
			cmd, err = ctl.CloseStreamCommand(id, c.Reason)
		} else {
			cmd, err = ctl.AttachStreamCommand(id, "0", 0)
		}
		if err == nil {
			ids[id] = true
			cmds = append(cmds, cmd)
		}
	}
	return cmds, ids
}
