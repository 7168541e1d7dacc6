package builtins

import (
	"fmt"
	"strconv"

	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

// Decision is what a stream policy decided for a stream. A policy returns
// one of these, a circuit, a circuit id, or None (ToDecision).
type Decision interface {
	starlark.Value
	decision()
}

// Attach attaches the stream to a circuit (ATTACHSTREAM). Circuit "0" lets
// tor choose. Hop, if above 0, makes that hop of the circuit the exit.
type Attach struct {
	Circuit string
	Hop     int
}

// Close closes the stream with a RELAY_END reason (CLOSESTREAM).
type Close struct{ Reason ctl.RelayEndReason }

// Redirect sends the stream to another address, and port unless Port is 0
// (REDIRECTSTREAM), then applies Then.
type Redirect struct {
	Host string
	Port int
	Then Decision
}

// Hold leaves the stream waiting; the script attaches it later.
type Hold struct{}

var (
	_ Decision = Attach{}
	_ Decision = Close{}
	_ Decision = Redirect{}
	_ Decision = Hold{}
)

func (Attach) decision()   {}
func (Close) decision()    {}
func (Redirect) decision() {}
func (Hold) decision()     {}

func (d Attach) String() string {
	switch {
	case d.Circuit == "0":
		return "tor.attach(None)"
	case d.Hop > 0:
		return fmt.Sprintf("tor.attach(%q, hop=%d)", d.Circuit, d.Hop)
	}
	return fmt.Sprintf("tor.attach(%q)", d.Circuit)
}
func (d Close) String() string { return fmt.Sprintf("tor.close(%q)", d.Reason.String()) }
func (d Redirect) String() string {
	s := "tor.redirect(" + strconv.Quote(d.Host)
	if d.Port != 0 {
		s += ", port=" + strconv.Itoa(d.Port)
	}
	if a, ok := d.Then.(Attach); !ok || a.Circuit != "0" {
		s += ", then=" + d.Then.String()
	}
	return s + ")"
}
func (Hold) String() string { return "tor.hold()" }

func (Attach) Type() string   { return "tor.decision" }
func (Close) Type() string    { return "tor.decision" }
func (Redirect) Type() string { return "tor.decision" }
func (Hold) Type() string     { return "tor.decision" }

func (Attach) Freeze()   {}
func (Close) Freeze()    {}
func (Redirect) Freeze() {}
func (Hold) Freeze()     {}

func (Attach) Truth() starlark.Bool   { return true }
func (Close) Truth() starlark.Bool    { return true }
func (Redirect) Truth() starlark.Bool { return true }
func (Hold) Truth() starlark.Bool     { return true }

func (d Attach) Hash() (uint32, error)   { return starlark.String(d.String()).Hash() }
func (d Close) Hash() (uint32, error)    { return starlark.String(d.String()).Hash() }
func (d Redirect) Hash() (uint32, error) { return starlark.String(d.String()).Hash() }
func (d Hold) Hash() (uint32, error)     { return starlark.String(d.String()).Hash() }

// ToDecision reads what a policy returned: None (tor chooses), a circuit,
// a circuit id (a string or an int), or a decision made by tor.attach,
// tor.close, tor.redirect or tor.hold.
func ToDecision(v starlark.Value) (Decision, error) {
	switch v := v.(type) {
	case starlark.NoneType:
		return Attach{Circuit: "0"}, nil
	case Decision:
		return v, nil
	}
	var id CircuitID
	if err := id.Unpack(v); err != nil {
		return nil, fmt.Errorf("policy returned %s; want a circuit, a circuit id, None, or tor.attach/close/redirect/hold(...)", v.Type())
	}
	return Attach{Circuit: string(id)}, nil
}

// CircuitID unpacks a circuit, or a circuit id as a string or an int.
type CircuitID string

func (id *CircuitID) Unpack(v starlark.Value) error {
	return unpackID(v, "circuit", (*string)(id))
}

// StreamID unpacks a stream, or a stream id as a string or an int.
type StreamID string

func (id *StreamID) Unpack(v starlark.Value) error {
	return unpackID(v, "stream", (*string)(id))
}

func unpackID(v starlark.Value, what string, out *string) error {
	if c, ok := CircuitOfValue(v); ok && what == "circuit" {
		*out = c.ID
		return nil
	}
	switch v := v.(type) {
	case *Stream:
		if what == "stream" {
			*out = v.Strm().ID
			return nil
		}
	case starlark.String:
		*out = string(v)
		return nil
	case starlark.Int:
		n, ok := v.Int64()
		if !ok || n < 0 {
			return fmt.Errorf("bad %s id %s", what, v)
		}
		*out = strconv.FormatInt(n, 10)
		return nil
	}
	return fmt.Errorf("got %s, want %s or %s id", v.Type(), what, what)
}

// RelayEndReason unpacks a RELAY_END reason: a name ("EXITPOLICY",
// "exitpolicy") or a number.
type RelayEndReason ctl.RelayEndReason

func (r *RelayEndReason) Unpack(v starlark.Value) error {
	var s string
	switch v := v.(type) {
	case starlark.String:
		s = string(v)
	case starlark.Int:
		s = v.String()
	default:
		return fmt.Errorf("got %s, want a RELAY_END reason name such as \"EXITPOLICY\"", v.Type())
	}
	reason, err := ctl.ParseRelayEndReason(s)
	if err != nil {
		return err
	}
	*r = RelayEndReason(reason)
	return nil
}
