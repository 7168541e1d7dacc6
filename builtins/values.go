package builtins

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Hop is one relay of a circuit's path: hop.fingerprint, hop.nickname.
// str(hop) is "$FINGERPRINT~nickname", as EXTENDCIRCUIT accepts it.
type Hop struct{ H ctl.PathHop }

var (
	_ starlark.HasAttrs   = Hop{}
	_ starlark.Comparable = Hop{}
)

func (h Hop) String() string       { return h.H.String() }
func (h Hop) Type() string         { return "tor.hop" }
func (h Hop) Freeze()              {}
func (h Hop) Truth() starlark.Bool { return true }
func (h Hop) Hash() (uint32, error) {
	return starlark.String(h.H.Fingerprint + "~" + h.H.Nickname).Hash()
}
func (h Hop) AttrNames() []string { return []string{"fingerprint", "nickname"} }

func (h Hop) Attr(name string) (starlark.Value, error) {
	switch name {
	case "fingerprint":
		return starlark.String(h.H.Fingerprint), nil
	case "nickname":
		return starlark.String(h.H.Nickname), nil
	}
	return nil, nil
}

func (h Hop) CompareSameType(op syntax.Token, y starlark.Value, depth int) (bool, error) {
	o := y.(Hop)
	return eqOnly(op, h.H == o.H, h, y)
}

// eqOnly answers == and != and refuses orderings.
func eqOnly(op syntax.Token, eq bool, x, y starlark.Value) (bool, error) {
	switch op {
	case syntax.EQL:
		return eq, nil
	case syntax.NEQ:
		return !eq, nil
	}
	return false, fmt.Errorf("%s %s %s not implemented", x.Type(), op, y.Type())
}

func hopTuple(path []ctl.PathHop) starlark.Tuple {
	t := make(starlark.Tuple, len(path))
	for i, h := range path {
		t[i] = Hop{h}
	}
	return t
}

func stringTuple(ss []string) starlark.Tuple {
	t := make(starlark.Tuple, len(ss))
	for i, s := range ss {
		t[i] = starlark.String(s)
	}
	return t
}

func unknownTuple(kvs []ctl.KeyValue) starlark.Tuple {
	t := make(starlark.Tuple, len(kvs))
	for i, kv := range kvs {
		var v starlark.Value = starlark.None
		if kv.HasValue {
			v = starlark.String(kv.Value)
		}
		t[i] = starlark.Tuple{starlark.String(kv.Key), v}
	}
	return t
}

func rawText(r *ctl.Reply) starlark.Value {
	if r == nil {
		return starlark.None
	}
	return starlark.String(strings.TrimRight(r.String(), "\r\n"))
}

// Circuit is a circuit as a CIRC event or circuit-status describes it.
// Two circuit values are equal when they have the same id; a circuit can be
// a dict key, and a policy may return one to attach a stream to it.
type Circuit struct {
	// C is the circuit; nil for a deferred CIRC event (DeferredCircuit),
	// which Circ parses on its first read.
	C     *ctl.Circuit
	Raw   *ctl.Reply // the CIRC event, or nil
	Event string     // "CIRC" or "CIRC_MINOR" for an event, else ""
	// Old purpose and HS state of a CIRC_MINOR event.
	OldPurpose, OldHSState string

	deferred *ctl.Deferred
}

// DeferredCircuit is the value of a CIRC event the connection left
// unparsed (ctl.Conn.Defer), as handlers receive it: it is parsed when a
// handler first reads it, so a handler that only counts circuits does not
// pay for their paths and keywords. It is the *ctl.Deferred itself under
// another type (circEvent), so that handing it to a handler allocates
// nothing; it reads, compares and hashes as the Circuit it shows.
func DeferredCircuit(d *ctl.Deferred) starlark.Value { return (*circEvent)(d) }

// circEvent is a deferred CIRC event as handlers receive it
// (DeferredCircuit).
type circEvent ctl.Deferred

var (
	_ starlark.HasAttrs   = (*circEvent)(nil)
	_ starlark.Comparable = (*circEvent)(nil)
)

// view is the Circuit e shows.
func (e *circEvent) view() Circuit {
	d := (*ctl.Deferred)(e)
	return Circuit{Raw: d.Raw, Event: d.Type, deferred: d}
}

func (e *circEvent) String() string        { c := e.view(); return c.String() }
func (e *circEvent) Type() string          { return "tor.circuit" }
func (e *circEvent) Freeze()               {}
func (e *circEvent) Truth() starlark.Bool  { return true }
func (e *circEvent) Hash() (uint32, error) { c := e.view(); return c.Hash() }
func (e *circEvent) AttrNames() []string   { return circuitAttrs }
func (e *circEvent) Attr(name string) (starlark.Value, error) {
	c := e.view()
	return c.Attr(name)
}
func (e *circEvent) CompareSameType(op syntax.Token, y starlark.Value, depth int) (bool, error) {
	c := e.view()
	return c.CompareSameType(op, y, depth)
}

// CircuitOfValue is the circuit a Starlark value shows: a circuit, or a
// CIRC event as handlers receive it. ok is false for any other value.
func CircuitOfValue(v starlark.Value) (c *ctl.Circuit, ok bool) {
	switch v := v.(type) {
	case *Circuit:
		return v.Circ(), true
	case *circEvent:
		return CircuitOf((*ctl.Deferred)(v)), true
	}
	return nil, false
}

// Circ is the circuit c shows.
func (c *Circuit) Circ() *ctl.Circuit {
	if c.C == nil && c.deferred != nil {
		return CircuitOf(c.deferred)
	}
	return c.C
}

// CircuitOf is the circuit of d, a deferred CIRC event, parsed. Should its
// text turn out malformed past the circuit ID and status (which a CIRC
// event from tor never is), it is a circuit of that ID and status alone.
func CircuitOf(d *ctl.Deferred) *ctl.Circuit {
	if e, ok := d.Event().(*ctl.CircEvent); ok {
		return &e.Circuit
	}
	id, status, _ := d.CircHead()
	return &ctl.Circuit{ID: id, Status: status}
}

var (
	_ starlark.HasAttrs   = (*Circuit)(nil)
	_ starlark.Comparable = (*Circuit)(nil)
)

func (c *Circuit) String() string {
	var b strings.Builder
	x := c.Circ()
	fmt.Fprintf(&b, "<circuit %s %s", x.ID, x.Status)
	if x.Purpose != "" {
		b.WriteString(" " + x.Purpose)
	}
	for i, h := range x.Path {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteByte(',')
		}
		if h.Nickname != "" {
			b.WriteString(h.Nickname)
		} else {
			b.WriteString("$" + h.Fingerprint)
		}
	}
	b.WriteByte('>')
	return b.String()
}
func (c *Circuit) Type() string          { return "tor.circuit" }
func (c *Circuit) Freeze()               {}
func (c *Circuit) Truth() starlark.Bool  { return true }
func (c *Circuit) Hash() (uint32, error) { return starlark.String("circuit " + c.Circ().ID).Hash() }

func (c *Circuit) CompareSameType(op syntax.Token, y starlark.Value, depth int) (bool, error) {
	yc, ok := CircuitOfValue(y)
	return eqOnly(op, ok && c.Circ().ID == yc.ID, c, y)
}

var circuitAttrs = sortedNames(
	"id", "status", "path", "exit", "purpose", "build_flags", "hs_state", "rend_query",
	"time_created", "reason", "remote_reason", "socks_username", "socks_password",
	"hs_pow_type", "hs_pow_effort", "conflux_id", "conflux_rtt", "unknown",
	"built", "raw", "event", "old_purpose", "old_hs_state",
)

func (c *Circuit) AttrNames() []string { return circuitAttrs }

func (c *Circuit) Attr(name string) (starlark.Value, error) {
	x := c.Circ()
	switch name {
	case "id":
		return starlark.String(x.ID), nil
	case "status":
		return starlark.String(x.Status), nil
	case "path":
		return hopTuple(x.Path), nil
	case "exit":
		if h, ok := x.Exit(); ok {
			return Hop{h}, nil
		}
		return starlark.None, nil
	case "purpose":
		return starlark.String(x.Purpose), nil
	case "build_flags":
		return stringTuple(x.BuildFlags), nil
	case "hs_state":
		return starlark.String(x.HSState), nil
	case "rend_query":
		return starlark.String(x.RendQuery), nil
	case "time_created":
		return timeValue(x.TimeCreated), nil
	case "reason":
		return starlark.String(x.Reason), nil
	case "remote_reason":
		return starlark.String(x.RemoteReason), nil
	case "socks_username":
		return starlark.String(x.SocksUsername), nil
	case "socks_password":
		return starlark.String(x.SocksPassword), nil
	case "hs_pow_type":
		return starlark.String(x.HSPoWType), nil
	case "hs_pow_effort":
		return starlark.MakeInt64(x.HSPoWEffort), nil
	case "conflux_id":
		return starlark.String(x.ConfluxID), nil
	case "conflux_rtt":
		return starlark.MakeInt64(x.ConfluxRTT), nil
	case "unknown":
		return unknownTuple(x.Unknown), nil
	case "built":
		return starlark.Bool(x.Status == ctl.CircBuilt), nil
	case "raw":
		return rawText(c.Raw), nil
	case "event":
		return starlark.String(c.Event), nil
	case "old_purpose":
		return starlark.String(c.OldPurpose), nil
	case "old_hs_state":
		return starlark.String(c.OldHSState), nil
	}
	return nil, nil
}

// Stream is a stream as a STREAM event or stream-status describes it.
// stream.circuit is the circuit it is attached to (from the live state), or
// None. Two stream values are equal when they have the same id.
type Stream struct {
	// S is the stream; nil for a deferred STREAM event (DeferredStream),
	// which Strm parses on its first read.
	S     *ctl.Stream
	Raw   *ctl.Reply // the STREAM event, or nil
	Event string     // "STREAM" for an event, else ""
	// Failed lists, for a stream the policy is asked about again, the
	// circuits it was detached from or that failed before it could be
	// attached, oldest first.
	Failed []string
	Host   Host // for stream.circuit; may be nil

	src Source[ctl.Stream]
}

// DeferredStream is the value of a STREAM event the connection left
// unparsed (ctl.Conn.Defer), as handlers receive it: src, the stream as
// the event shows it, is parsed when a handler first reads the value. A
// nil src is the event's own stream (StreamOf).
func DeferredStream(d *ctl.Deferred, src Source[ctl.Stream], h Host) *Stream {
	s := new(Stream)
	s.SetDeferred(d, src, h)
	return s
}

// SetDeferred makes s what DeferredStream(d, src, h) returns: for a
// program that allocates the value with something else (the runtime, with
// the live state's record of the event: one allocation for both).
func (s *Stream) SetDeferred(d *ctl.Deferred, src Source[ctl.Stream], h Host) {
	if src == nil {
		src = (*deferredStream)(d)
	}
	*s = Stream{Raw: d.Raw, Event: d.Type, Host: h, src: src}
}

// deferredStream is a deferred STREAM event as a Source.
type deferredStream ctl.Deferred

func (d *deferredStream) Parse() *ctl.Stream { return StreamOf((*ctl.Deferred)(d)) }

// Strm is the stream s shows.
func (s *Stream) Strm() *ctl.Stream {
	if s.S == nil && s.src != nil {
		return s.src.Parse()
	}
	return s.S
}

// StreamOf is the stream of d, a deferred STREAM event, parsed. Should its
// text turn out malformed past the stream's target (which a STREAM event
// from tor never is), it is a stream of that ID and status alone.
func StreamOf(d *ctl.Deferred) *ctl.Stream {
	if e, ok := d.Event().(*ctl.StreamEvent); ok {
		return &e.Stream
	}
	id, status, _ := d.StreamHead()
	return &ctl.Stream{ID: id, Status: status}
}

var (
	_ starlark.HasAttrs   = (*Stream)(nil)
	_ starlark.Comparable = (*Stream)(nil)
)

func (s *Stream) String() string {
	x := s.Strm()
	return fmt.Sprintf("<stream %s %s %s>", x.ID, x.Status, x.Target)
}
func (s *Stream) Type() string          { return "tor.stream" }
func (s *Stream) Freeze()               {}
func (s *Stream) Truth() starlark.Bool  { return true }
func (s *Stream) Hash() (uint32, error) { return starlark.String("stream " + s.Strm().ID).Hash() }

func (s *Stream) CompareSameType(op syntax.Token, y starlark.Value, depth int) (bool, error) {
	return eqOnly(op, s.Strm().ID == y.(*Stream).Strm().ID, s, y)
}

var streamAttrs = sortedNames(
	"id", "status", "circuit_id", "circuit", "target", "target_host", "target_port",
	"reason", "remote_reason", "source", "source_addr", "source_host", "source_port",
	"purpose", "socks_username", "socks_password", "client_protocol", "nym_epoch",
	"session_group", "iso_fields", "unknown", "failed_circuits", "raw", "event",
)

func (s *Stream) AttrNames() []string { return streamAttrs }

func (s *Stream) Attr(name string) (starlark.Value, error) {
	x := s.Strm()
	switch name {
	case "id":
		return starlark.String(x.ID), nil
	case "status":
		return starlark.String(x.Status), nil
	case "circuit_id":
		return starlark.String(x.CircuitID), nil
	case "circuit":
		if x.CircuitID == "" || x.CircuitID == "0" || s.Host == nil {
			return starlark.None, nil
		}
		if c := s.Host.Circuit(x.CircuitID); c != nil {
			return &Circuit{C: c}, nil
		}
		return starlark.None, nil
	case "target":
		return starlark.String(x.Target), nil
	case "target_host":
		return starlark.String(x.TargetHost), nil
	case "target_port":
		return starlark.MakeInt(x.TargetPort), nil
	case "reason":
		return starlark.String(x.Reason), nil
	case "remote_reason":
		return starlark.String(x.RemoteReason), nil
	case "source":
		return starlark.String(x.Source), nil
	case "source_addr":
		return starlark.String(x.SourceAddr), nil
	case "source_host", "source_port":
		host, port := splitHostPort(x.SourceAddr)
		if name == "source_host" {
			return starlark.String(host), nil
		}
		return starlark.MakeInt(port), nil
	case "purpose":
		return starlark.String(x.Purpose), nil
	case "socks_username":
		return starlark.String(x.SocksUsername), nil
	case "socks_password":
		return starlark.String(x.SocksPassword), nil
	case "client_protocol":
		return starlark.String(x.ClientProtocol), nil
	case "nym_epoch":
		return starlark.MakeInt64(x.NymEpoch), nil
	case "session_group":
		return starlark.MakeInt64(x.SessionGroup), nil
	case "iso_fields":
		return stringTuple(x.IsoFields), nil
	case "unknown":
		return unknownTuple(x.Unknown), nil
	case "failed_circuits":
		return stringTuple(s.Failed), nil
	case "raw":
		return rawText(s.Raw), nil
	case "event":
		return starlark.String(s.Event), nil
	}
	return nil, nil
}

// splitHostPort splits "host:port" at its last colon; port is 0 when there
// is none.
func splitHostPort(s string) (string, int) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return s, 0
	}
	port, err := strconv.Atoi(s[i+1:])
	if err != nil {
		return s, 0
	}
	return strings.Trim(s[:i], "[]"), port
}

func sortedNames(names ...string) []string {
	sort.Strings(names)
	return names
}
