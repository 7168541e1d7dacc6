package builtins

import (
	"fmt"
	"strings"
	"time"

	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

// The members of the tor module that are not tor commands: handlers,
// timers, the policy and its decisions, the live state.

const docOn = `on(event, fn)
Calls fn(e) for every event of that type: "circ", "stream", "orconn",
"bw", "notice", "status_client", ... (tor.events lists them). fn gets a
tor.stream for "stream", a tor.circuit for "circ" and "circ_minor", and a
tor.event for the others, with the event's fields as attributes and .raw
its text. Only the events that handlers need are subscribed to. Returns a
handler: handler.cancel() removes it (tor.off(event, fn) removes every
registration of fn).`

const docOff = `off(event, fn)
Removes every handler fn registered for event with tor.on, and returns how
many there were; the runtime unsubscribes from an event no handler needs.`

// eventAndFn unpacks the (event, fn) of tor.on and tor.off, the event as
// tor's keyword.
func eventAndFn(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (string, starlark.Callable, error) {
	var name string
	var fn starlark.Callable
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "event", &name, "fn", &fn); err != nil {
		return "", nil, err
	}
	typ, err := EventName(name)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return typ, fn, nil
}

func (t *torMod) off(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	typ, fn, err := eventAndFn(b, args, kwargs)
	if err != nil {
		return nil, err
	}
	return starlark.MakeInt(t.h.Off(typ, fn)), nil
}

func (t *torMod) on(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	typ, fn, err := eventAndFn(b, args, kwargs)
	if err != nil {
		return nil, err
	}
	cancel, err := t.h.On(typ, fn)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return &Handler{cancel: cancel, typ: typ, fn: fn}, nil
}

const docRequire = `require(commands=[], config=[], keep=False)
Declares, at the top of a script, what it needs beyond reading tor's state,
subscribing to events, running a stream policy and mapping addresses:
commands is a list of grants ("SAVECONF", "SIGNAL:HALT", "ADD_ONION:KEY",
...; torscript run --help lists them) that the user must give with
--allow, and config the keys the script sets with set_conf or reset_conf.
A grant the user has not given stops the script here, before it does
anything; torscript check FILE shows what a script declares. The config
keys get their values back when the script ends (the log says so at
start); with keep=True they stay as the script set them.
  tor.require(commands=["SAVECONF"], config=["ExitNodes", "StrictNodes"])`

func (t *torMod) require(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var commands, config *starlark.List
	var keep bool
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "commands?", &commands, "config?", &config, "keep?", &keep); err != nil {
		return nil, err
	}
	strs := func(what string, l *starlark.List) ([]string, error) {
		var out []string
		if l == nil {
			return nil, nil
		}
		for i := 0; i < l.Len(); i++ {
			s, ok := starlark.AsString(l.Index(i))
			if !ok {
				return nil, fmt.Errorf("%s: %s[%d] is %s, want str", b.Name(), what, i, l.Index(i).Type())
			}
			out = append(out, s)
		}
		return out, nil
	}
	cmds, err := strs("commands", commands)
	if err != nil {
		return nil, err
	}
	conf, err := strs("config", config)
	if err != nil {
		return nil, err
	}
	if err := t.h.Require(cmds, conf, keep); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return starlark.None, nil
}

const docAtExit = `at_exit(fn)
Calls fn() when the script ends (exit(), Ctrl-C, SIGTERM, the end of a
REPL session), before torscript hands back the policy's streams and undoes
what the script changed: a last report, a last command.`

func (t *torMod) atExit(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var fn starlark.Callable
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "fn", &fn); err != nil {
		return nil, err
	}
	t.h.AtExit(fn)
	return starlark.None, nil
}

// eventNames is tor.events: the event names tor.on accepts.
func eventNames() starlark.Value {
	names := ctl.EventTypes()
	ev := make(starlark.Tuple, len(names))
	for i, n := range names {
		ev[i] = starlark.String(strings.ToLower(n))
	}
	return ev
}

const docEvents = `events
The event names tor.on accepts.`

const docEvery = `every(duration, fn) -> timer
Calls fn() every duration ("30s", "5m", or seconds) until timer.cancel().`

func (t *torMod) every(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return t.timer(b, args, kwargs, true)
}

const docAfter = `after(duration, fn) -> timer
Calls fn() once after duration ("30s", "5m", or seconds) unless
timer.cancel() is called first.`

func (t *torMod) after(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return t.timer(b, args, kwargs, false)
}

// timer is tor.every (repeat) and tor.after.
func (t *torMod) timer(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple, repeat bool) (starlark.Value, error) {
	var d Duration
	var fn starlark.Callable
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "duration", &d, "fn", &fn); err != nil {
		return nil, err
	}
	if d <= 0 || (repeat && time.Duration(d) < time.Millisecond) {
		return nil, fmt.Errorf("%s: duration %s is too short", b.Name(), time.Duration(d))
	}
	cancel, err := t.h.Schedule(time.Duration(d), repeat, fn)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return &Timer{cancel: cancel, d: time.Duration(d), repeat: repeat}, nil
}

const docPolicy = `policy(fn, on_error="tor", timeout="30s", map={}, all_streams=False)
Makes fn the stream policy. Tor leaves new streams to torscript
(__LeaveStreamsUnattached=1) until the script ends, and fn(stream) is called
for every NEW and NEWRESOLVE stream, and again for a stream that was
DETACHED or whose circuit failed (stream.failed_circuits lists them). fn
returns:
  a circuit or circuit id     attach the stream to it (waiting until it is built)
  tor.attach(circ, hop=N)     attach, with hop N as the exit
  None                        let tor choose
  tor.close(reason)           close it with a RELAY_END reason ("EXITPOLICY", ...)
  tor.redirect(host, port)    change its destination, then let tor choose
  tor.hold()                  leave it; attach it later with tor.attach_stream
on_error ("tor", "close", or tor.close(reason)) applies when fn fails or
overruns, and to streams still waiting when the script ends. timeout bounds
how long a held stream, or one waiting for its circuit, may wait before
on_error applies. map is address mappings ({"name": "address"}) made when
the policy starts and removed when it ends. Tor's own streams (directory
fetches) are attached by tor itself and never reach fn; one that tor leaves
waiting for a controller goes back to tor, or to fn if all_streams is set.`

func (t *torMod) policy(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var fn starlark.Callable
	var onError starlark.Value = starlark.String("tor")
	timeout := Duration(30 * time.Second)
	var mapping *starlark.Dict
	var all bool
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "fn", &fn, "on_error?", &onError, "timeout?", &timeout, "map??", &mapping, "all_streams?", &all); err != nil {
		return nil, err
	}
	p := &Policy{Fn: fn, Timeout: time.Duration(timeout), AllStreams: all}
	switch v := onError.(type) {
	case starlark.String:
		switch v {
		case "tor":
			p.OnError = Attach{Circuit: "0"}
		case "close":
			p.OnError = Close{Reason: ctl.RelayEndMisc}
		default:
			return nil, fmt.Errorf("%s: on_error %q: want \"tor\", \"close\" or tor.close(reason)", b.Name(), string(v))
		}
	case Close:
		p.OnError = v
	default:
		return nil, fmt.Errorf("%s: on_error: got %s, want \"tor\", \"close\" or tor.close(reason)", b.Name(), onError.Type())
	}
	if p.Timeout <= 0 || p.Timeout > 110*time.Second {
		return nil, fmt.Errorf("%s: timeout %s: want more than 0 and at most 110s (tor gives up on a stream after 120s)", b.Name(), p.Timeout)
	}
	if mapping != nil {
		pairs, err := addrMaps(mapping)
		if err != nil {
			return nil, fmt.Errorf("%s: map: %w", b.Name(), err)
		}
		p.Map = pairs
	}
	if err := t.h.SetPolicy(p); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return starlark.None, nil
}

const docAttach = `attach(circuit, hop=0) -> decision
A policy decision: attach the stream to circuit (a circuit or its id), with
hop (1 is the first hop) as the exit when hop is given. attach(None) lets
tor choose.`

func (t *torMod) attach(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var c starlark.Value
	var hop int
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "circuit", &c, "hop?", &hop); err != nil {
		return nil, err
	}
	if hop < 0 {
		return nil, fmt.Errorf("%s: hop %d is negative", b.Name(), hop)
	}
	if c == starlark.None {
		if hop != 0 {
			return nil, fmt.Errorf("%s: hop given without a circuit", b.Name())
		}
		return Attach{Circuit: "0"}, nil
	}
	var id CircuitID
	if err := id.Unpack(c); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return Attach{Circuit: string(id), Hop: hop}, nil
}

const docClose = `close(reason="MISC") -> decision
A policy decision: close the stream, telling the client why with a RELAY_END
reason: "MISC", "RESOLVEFAILED", "CONNECTREFUSED", "EXITPOLICY", "DESTROY",
"DONE", "TIMEOUT", "NOROUTE", "HIBERNATING", "INTERNAL", "RESOURCELIMIT",
"CONNRESET", "TORPROTOCOL", "NOTDIRECTORY", or a number.`

func (t *torMod) close(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	reason := RelayEndReason(ctl.RelayEndMisc)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "reason?", &reason); err != nil {
		return nil, err
	}
	return Close{Reason: ctl.RelayEndReason(reason)}, nil
}

const docRedirect = `redirect(host, port=None, then=None) -> decision
A policy decision: send the stream to host (and port) instead
(REDIRECTSTREAM), then apply then: a circuit, a circuit id, tor.attach(...),
or None to let tor choose.`

func (t *torMod) redirect(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var host string
	var port starlark.Value = starlark.None
	var then starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "host", &host, "port?", &port, "then?", &then); err != nil {
		return nil, err
	}
	if err := ctl.CheckToken("host", host); err != nil || host == "" {
		return nil, fmt.Errorf("%s: bad host %q", b.Name(), host)
	}
	d := Redirect{Host: host}
	if port != starlark.None {
		if err := starlark.AsInt(port, &d.Port); err != nil || d.Port < 1 || d.Port > 65535 {
			return nil, fmt.Errorf("%s: port %s: want 1-65535", b.Name(), port)
		}
	}
	next, err := ToDecision(then)
	if err != nil {
		return nil, fmt.Errorf("%s: then: %w", b.Name(), err)
	}
	switch next.(type) {
	case Attach:
	default:
		return nil, fmt.Errorf("%s: then: want a circuit, a circuit id, tor.attach(...) or None, not %s", b.Name(), next)
	}
	d.Then = next
	return d, nil
}

const docHold = `hold() -> decision
A policy decision: leave the stream waiting. Attach it later with
tor.attach_stream(stream, circuit) (or close it) before the policy's timeout,
after which on_error applies.`

func (t *torMod) hold(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	return Hold{}, nil
}

const docCircuits = `circuits(status=None, purpose=None, exit=None) -> sequence of tor.circuit
Tor's live circuits, oldest first (in the order tor made them, or reported
them when tracking began), kept current from CIRC events. status ("BUILT",
...), purpose ("GENERAL", ...) and exit (a fingerprint or nickname, a
tor.hop or a tor.router) keep only the circuits that match, compared
without regard to case. Taking the sequence costs nothing; iterating it
reads each circuit in its latest state, skipping one that closed since;
len() and [i] read it whole once.`

func (t *torMod) circuits(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var keep func(*ctl.Circuit) bool
	if len(args) > 0 || len(kwargs) > 0 {
		// Unpacked only when given: what UnpackArgs fills escapes, and
		// a policy calls tor.circuits() for every stream.
		var f circuitArgs
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "status?", &f.status, "purpose?", &f.purpose, "exit?", &f.exit); err != nil {
			return nil, err
		}
		var err error
		if keep, err = circuitFilter(f.status, f.purpose, f.exit); err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
	}
	live, err := t.h.Circuits(Context(thread))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return live.View("tor.circuits", keep), nil
}

// circuitArgs are tor.circuits' arguments.
type circuitArgs struct {
	status, purpose string
	exit            starlark.Value
}

// circuitFilter is what tor.circuits keeps: nil for all.
func circuitFilter(status, purpose string, exit starlark.Value) (func(*ctl.Circuit) bool, error) {
	var want ctl.PathHop
	if exit != nil && exit != starlark.None {
		spec, err := relaySpec(exit)
		if err != nil {
			return nil, fmt.Errorf("exit: %w", err)
		}
		if want, err = ctl.ParseServerSpec(spec); err != nil {
			return nil, fmt.Errorf("exit %q: %w", spec, err)
		}
	}
	if status == "" && purpose == "" && want == (ctl.PathHop{}) {
		return nil, nil
	}
	return func(c *ctl.Circuit) bool {
		if status != "" && !strings.EqualFold(string(c.Status), status) ||
			purpose != "" && !strings.EqualFold(c.Purpose, purpose) {
			return false
		}
		if want == (ctl.PathHop{}) {
			return true
		}
		h, ok := c.Exit()
		return ok && sameRelay(h, want)
	}, nil
}

// sameRelay reports whether hop h is the relay want names: by fingerprint
// when want has one, else by nickname.
func sameRelay(h, want ctl.PathHop) bool {
	if want.Fingerprint != "" {
		return strings.EqualFold(h.Fingerprint, want.Fingerprint)
	}
	return strings.EqualFold(h.Nickname, want.Nickname)
}

const docCircuit = `circuit(id) -> tor.circuit or None
The live circuit with this id (a string or an int), or None when tor has
no such circuit (it closed or failed).`

func (t *torMod) circuit(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var id CircuitID
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "id", &id); err != nil {
		return nil, err
	}
	live, err := t.h.Circuits(Context(thread)) // starts tracking
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	if v := live.Value(string(id)); v != nil {
		return v, nil
	}
	return starlark.None, nil
}

const docStreams = `streams(status=None, circuit=None) -> sequence of tor.stream
Tor's live streams, oldest first, kept current from STREAM events. status
("NEW", "SUCCEEDED", ..., compared without regard to case) and circuit (a
circuit or its id) keep only the streams that match. Read like
tor.circuits().`

func (t *torMod) streams(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var status string
	var circ CircuitID
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "status?", &status, "circuit?", &circ); err != nil {
		return nil, err
	}
	live, err := t.h.Streams(Context(thread))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	var keep func(*ctl.Stream) bool
	if status != "" || circ != "" {
		keep = func(s *ctl.Stream) bool {
			return (status == "" || strings.EqualFold(string(s.Status), status)) && (circ == "" || s.CircuitID == string(circ))
		}
	}
	return live.View("tor.streams", keep), nil
}

// addrMaps reads a dict of address mappings.
func addrMaps(d *starlark.Dict) ([]ctl.AddrMap, error) {
	var pairs []ctl.AddrMap
	for _, kv := range d.Items() {
		from, ok1 := starlark.AsString(kv[0])
		to, ok2 := starlark.AsString(kv[1])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("want a dict of strings, got %s: %s", kv[0].Type(), kv[1].Type())
		}
		pairs = append(pairs, ctl.AddrMap{From: from, To: to})
	}
	return pairs, nil
}

// Handler is what tor.on returns: handler.cancel() removes it, and says
// whether it was still registered.
type Handler struct {
	cancel func() bool
	typ    string
	fn     starlark.Callable
}

var _ starlark.HasAttrs = (*Handler)(nil)

func (h *Handler) String() string {
	return fmt.Sprintf("<handler %s %s>", strings.ToLower(h.typ), h.fn.Name())
}
func (h *Handler) Type() string          { return "tor.handler" }
func (h *Handler) Freeze()               {}
func (h *Handler) Truth() starlark.Bool  { return true }
func (h *Handler) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: tor.handler") }
func (h *Handler) AttrNames() []string   { return []string{"cancel", "event", "fn"} }
func (h *Handler) Attr(name string) (starlark.Value, error) {
	switch name {
	case "event":
		return starlark.String(strings.ToLower(h.typ)), nil
	case "fn":
		return h.fn, nil
	case "cancel":
		return starlark.NewBuiltin("cancel", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
				return nil, err
			}
			return starlark.Bool(h.cancel()), nil
		}).BindReceiver(h), nil
	}
	return nil, nil
}

// Timer is what tor.every and tor.after return: timer.cancel() stops it.
type Timer struct {
	cancel func()
	d      time.Duration
	repeat bool
}

var _ starlark.HasAttrs = (*Timer)(nil)

func (t *Timer) String() string {
	if t.repeat {
		return fmt.Sprintf("<timer every %s>", t.d)
	}
	return fmt.Sprintf("<timer after %s>", t.d)
}
func (t *Timer) Type() string          { return "tor.timer" }
func (t *Timer) Freeze()               {}
func (t *Timer) Truth() starlark.Bool  { return true }
func (t *Timer) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: tor.timer") }
func (t *Timer) AttrNames() []string   { return []string{"cancel"} }
func (t *Timer) Attr(name string) (starlark.Value, error) {
	if name != "cancel" {
		return nil, nil
	}
	return starlark.NewBuiltin("cancel", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
			return nil, err
		}
		t.cancel()
		return starlark.None, nil
	}).BindReceiver(t), nil
}
