package ctl

import (
	"context"
	"errors"
	"strings"
	"time"
)

// The GETINFO answers a controller's policy needs, parsed (control-spec
// 3.9). Each Parse function reads the value of its key, one item a line
// (CRLF or LF), and returns an empty slice for an empty value. A malformed
// line is skipped: the function returns the items of every other line and
// an error naming the first malformed one.

// parseLines reads the items of a line-per-item answer.
func parseLines[T any](key, s string, parse func(*T, *Args) error) ([]T, error) {
	out := make([]T, 0, strings.Count(s, "\n")+1)
	var firstErr error
	for s != "" {
		var line string
		line, s = nextLine(s)
		if strings.Trim(line, " ") == "" {
			continue
		}
		out = append(out, *new(T))
		a := NewArgs(line)
		if err := parse(&out[len(out)-1], &a); err != nil {
			out = out[:len(out)-1]
			if firstErr == nil {
				firstErr = &ProtocolError{Msg: key + ": " + err.Error(), Line: line}
			}
		}
	}
	return out, firstErr
}

// ParseCircuitStatus reads GETINFO circuit-status: lines as CIRC events
// without "650 CIRC ".
func ParseCircuitStatus(s string) ([]Circuit, error) {
	return parseLines("circuit-status", s, func(c *Circuit, a *Args) error { return parseCircuit(c, a, nil, nil) })
}

// ParseStreamStatus reads GETINFO stream-status: lines of "StreamID
// StreamStatus CircuitID Target", and any further arguments as in STREAM
// events.
func ParseStreamStatus(s string) ([]Stream, error) {
	return parseLines("stream-status", s, func(st *Stream, a *Args) error { return parseStream(st, a, nil, nil) })
}

// ParseORConnStatus reads GETINFO orconn-status: lines of "LongName
// ORStatus", and any further arguments as in ORCONN events.
func ParseORConnStatus(s string) ([]ORConn, error) {
	return parseLines("orconn-status", s, func(c *ORConn, a *Args) error { return parseORConn(c, a, nil) })
}

// EntryGuard is a line of GETINFO entry-guards.
type EntryGuard struct {
	Name  string  // the guard as tor sent it: a LongName, or a nickname or 40 hex digits from older tors
	Relay PathHop // Name, parsed
	// Status: "up", "never-connected", "down", "unusable", "unlisted", or
	// others.
	Status string
	// Since is the time given after the status, if any (UTC).
	Since   time.Time
	Unknown []KeyValue
}

func parseEntryGuard(g *EntryGuard, a *Args) error {
	name, ok := a.Word()
	if !ok {
		return errBadNickname
	}
	h, err := ParseServerSpec(name)
	if err != nil {
		return err
	}
	st, ok := a.Word()
	if !ok || st == "" {
		return errBadStatus
	}
	g.Name, g.Relay, g.Status = name, h, st
	if peek := *a; a.More() && !a.AtKeyword() {
		if w, _ := peek.Word(); len(w) >= 10 && w[4] == '-' && w[7] == '-' {
			t, _, err := expiryWord(a, time.UTC)
			if err != nil {
				return errors.New("bad time")
			}
			g.Since = t
		}
	}
	return keywords(a, nil, noKeywords, &g.Unknown)
}

// ParseEntryGuards reads GETINFO entry-guards: lines of "LongName Status
// [ISOTime]".
func ParseEntryGuards(s string) ([]EntryGuard, error) {
	return parseLines("entry-guards", s, parseEntryGuard)
}

// AddressMapping is a line of GETINFO address-mappings/*.
type AddressMapping struct {
	From    string
	To      string
	Expires time.Time // UTC; zero when Never is set or no expiry was given
	Never   bool
}

func parseAddressMapping(m *AddressMapping, a *Args) error {
	from, ok := a.Word()
	if !ok || from == "" {
		return errors.New("missing address")
	}
	to, ok := a.Word()
	if !ok || to == "" {
		return errors.New("missing new address")
	}
	m.From, m.To = from, to
	if a.More() {
		var err error
		if m.Expires, m.Never, err = expiryWord(a, time.UTC); err != nil {
			return err
		}
	}
	if a.More() {
		return errors.New("unexpected text after the expiry")
	}
	return a.Err()
}

// ParseAddressMappings reads GETINFO address-mappings/*: lines of
// "from-address to-address expiry", the expiry a quoted UTC ISOTime or
// "NEVER".
func ParseAddressMappings(s string) ([]AddressMapping, error) {
	return parseLines("address-mappings", s, parseAddressMapping)
}

// getInfoParsed asks tor for one GETINFO key and reads its value with
// parse.
func getInfoParsed[T any](ctx context.Context, c *Conn, key string, parse func(string) (T, error)) (T, error) {
	v, err := c.GetInfoOne(ctx, key)
	if err != nil {
		var zero T
		return zero, err
	}
	return parse(v)
}

// Circuits returns tor's circuits (GETINFO circuit-status).
func (c *Conn) Circuits(ctx context.Context) ([]Circuit, error) {
	return getInfoParsed(ctx, c, "circuit-status", ParseCircuitStatus)
}

// Streams returns tor's streams (GETINFO stream-status).
func (c *Conn) Streams(ctx context.Context) ([]Stream, error) {
	return getInfoParsed(ctx, c, "stream-status", ParseStreamStatus)
}

// ORConns returns tor's connections to relays (GETINFO orconn-status).
func (c *Conn) ORConns(ctx context.Context) ([]ORConn, error) {
	return getInfoParsed(ctx, c, "orconn-status", ParseORConnStatus)
}

// EntryGuards returns tor's entry guards (GETINFO entry-guards).
func (c *Conn) EntryGuards(ctx context.Context) ([]EntryGuard, error) {
	return getInfoParsed(ctx, c, "entry-guards", ParseEntryGuards)
}

// AddressMappings returns tor's address mappings (GETINFO
// address-mappings/<which>); which is "all", "config", "cache" or
// "control".
func (c *Conn) AddressMappings(ctx context.Context, which string) ([]AddressMapping, error) {
	switch which {
	case "all", "config", "cache", "control":
	default:
		return nil, &argError{cmd: "GETINFO", msg: "address-mappings/" + which + ": want all, config, cache or control"}
	}
	return getInfoParsed(ctx, c, "address-mappings/"+which, ParseAddressMappings)
}

// nextLine splits s after its first line and returns that line without its
// LF or CRLF.
func nextLine(s string) (line, rest string) {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		line, rest = s[:i], s[i+1:]
	} else {
		line = s
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}
