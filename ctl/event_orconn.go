package ctl

import (
	"errors"
	"strings"
)

// ORConnStatus is the status of an OR connection in an ORCONN event or in
// orconn-status. Tor may send values not listed here.
type ORConnStatus string

const (
	ORConnNew       ORConnStatus = "NEW"
	ORConnLaunched  ORConnStatus = "LAUNCHED"
	ORConnConnected ORConnStatus = "CONNECTED"
	ORConnFailed    ORConnStatus = "FAILED"
	ORConnClosed    ORConnStatus = "CLOSED"
)

// ORConn is a connection to a relay as an ORCONN event or a line of
// GETINFO orconn-status describes it (control-spec 4.1.3).
type ORConn struct {
	// Target is the relay or address as tor sent it: a LongName, an older
	// ServerID, or "address:port" for a connection whose relay is not
	// known yet. Relay is the parsed relay name, zero for an address;
	// Address is the address, "" for a relay name.
	Target  string
	Relay   PathHop
	Address string
	Status  ORConnStatus
	// Reason, for FAILED and CLOSED: MISC, DONE, CONNECTREFUSED, IDENTITY,
	// CONNECTRESET, TIMEOUT, NOROUTE, IOERROR, RESOURCELIMIT, PT_MISSING,
	// or others.
	Reason      string
	NumCircuits int64 // NCIRCS
	ID          string
	Unknown     []KeyValue
}

var errBadORConnTarget = errors.New("missing or bad relay or address")

func (c *ORConn) parsePositional(a *Args) error {
	target, ok := a.Word()
	if !ok || target == "" {
		return errBadORConnTarget
	}
	if target[0] != '$' && strings.IndexByte(target, ':') >= 0 {
		c.Address = target
	} else {
		h, err := ParseServerSpec(target)
		if err != nil {
			return err
		}
		c.Relay = h
	}
	st, ok := a.Word()
	if !ok || !isKeyword(st) {
		return errBadStatus
	}
	c.Target, c.Status = target, ORConnStatus(st)
	return nil
}

func (c *ORConn) set(kv KeyValue) bool {
	if !kv.HasValue {
		return false
	}
	switch kv.Key {
	case "REASON":
		c.Reason = kv.Value
	case "NCIRCS":
		n, ok := parseUint(kv.Value)
		if !ok {
			return false
		}
		c.NumCircuits = n
	case "ID":
		if !isID(kv.Value) {
			return false
		}
		c.ID = kv.Value
	default:
		return false
	}
	return true
}

func parseORConn(c *ORConn, a *Args, extra []Line) error {
	if err := c.parsePositional(a); err != nil {
		return err
	}
	return keywords(a, extra, c.set, &c.Unknown)
}

// ORConnEvent is an ORCONN event: an OR connection changed status
// (control-spec 4.1.3).
type ORConnEvent struct {
	Base
	ORConn
}

func parseORConnEvent(b Base, a *Args) (Event, error) {
	ev := &ORConnEvent{Base: b}
	if err := parseORConn(&ev.ORConn, a, extraLines(b.Raw)); err != nil {
		return nil, err
	}
	return ev, nil
}

// GuardStatus is the status of a guard in a GUARD event. Tor may send
// values not listed here.
type GuardStatus string

const (
	GuardNew     GuardStatus = "NEW"
	GuardUp      GuardStatus = "UP"
	GuardDown    GuardStatus = "DOWN"
	GuardBad     GuardStatus = "BAD"
	GuardBadL2   GuardStatus = "BAD_L2"
	GuardGood    GuardStatus = "GOOD"
	GuardDropped GuardStatus = "DROPPED"
	// Layer-2 (vanguard) guards, sent by tor 0.4.9.
	GuardGoodL2 GuardStatus = "GOOD_L2"
)

// GuardEvent is a GUARD event: our set of guards changed (control-spec
// 4.1.11).
type GuardEvent struct {
	Base
	GuardType string // "ENTRY", or others
	Name      string // the relay as tor sent it
	Relay     PathHop
	Status    GuardStatus
	Unknown   []KeyValue
}

func parseGuardEvent(b Base, a *Args) (Event, error) {
	ev := &GuardEvent{Base: b}
	typ, ok := a.Word()
	if !ok || !isKeyword(typ) {
		return nil, errors.New("missing or bad guard type")
	}
	name, ok := a.Word()
	if !ok {
		return nil, errBadNickname
	}
	h, err := ParseServerSpec(name)
	if err != nil {
		return nil, err
	}
	st, ok := a.Word()
	if !ok || !isKeyword(st) {
		return nil, errBadStatus
	}
	ev.GuardType, ev.Name, ev.Relay, ev.Status = typ, name, h, GuardStatus(st)
	if err := keywords(a, extraLines(b.Raw), noKeywords, &ev.Unknown); err != nil {
		return nil, err
	}
	return ev, nil
}

// NewDescEvent is a NEWDESC event: new relay descriptors arrived
// (control-spec 4.1.6).
type NewDescEvent struct {
	Base
	Relays  []PathHop
	Unknown []KeyValue
}

func parseNewDescEvent(b Base, a *Args) (Event, error) {
	ev := &NewDescEvent{Base: b}
	for a.More() && !a.AtKeyword() {
		w, _ := a.Word()
		h, err := ParseServerSpec(w)
		if err != nil {
			return nil, err
		}
		ev.Relays = append(ev.Relays, h)
	}
	if len(ev.Relays) == 0 {
		return nil, errors.New("no relay named")
	}
	if err := keywords(a, extraLines(b.Raw), noKeywords, &ev.Unknown); err != nil {
		return nil, err
	}
	return ev, nil
}
