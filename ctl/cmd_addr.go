package ctl

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Null addresses for MAPADDRESS: mapping one of them asks tor to choose an
// unused address of that kind (a virtual address) and map it.
const (
	MapNullIPv4     = "0.0.0.0"
	MapNullIPv6     = "::" // control-spec 3.8 writes "::0"; MapAddress sends either as "::", which tor compares with
	MapNullHostname = "."
)

// AddrMap is one address mapping: connections to From go to To.
type AddrMap struct {
	From, To string
}

// MapAddress asks tor to send future connections for each From address to
// its To address (control-spec 3.8) and returns the mappings tor made, in
// the order asked. A From that is a null address (MapNullIPv4,
// MapNullIPv6, MapNullHostname) comes back as the address tor chose. A
// mapping from an address to itself removes the mapping.
//
// Tor may refuse some pairs and make the others (a reply of mixed codes):
// MapAddress then returns the mappings made and an error that joins one
// *Error per refused pair, so ErrorCode reports the first refusal's code.
func (c *Conn) MapAddress(ctx context.Context, pairs ...AddrMap) ([]AddrMap, error) {
	const cmd = "MAPADDRESS"
	if len(pairs) == 0 {
		return nil, cmdNoArgs(cmd, "no addresses")
	}
	l := newCmdLine(cmd)
	for _, p := range pairs {
		// Tor reads the pairs as key=value with no quoting: both must be
		// single words and the original address may not hold "=".
		from := p.From
		if from == "::0" {
			from = MapNullIPv6
		}
		if l.check(argName(cmd+" original address", from)) &&
			l.check(argName(cmd+" replacement address", p.To)) {
			l.raw(from + "=" + p.To)
		}
	}
	r, err := l.do(ctx, c)
	if r == nil {
		return nil, err
	}
	return ParseMapAddressReply(r, pairs)
}

// ParseMapAddressReply reads a MAPADDRESS reply: one line per pair asked,
// in order, "250 Old=New" for a mapping made and a 4yz or 5yz line for a
// pair refused. pairs (may be nil) name the refused pairs in the error.
func ParseMapAddressReply(r *Reply, pairs []AddrMap) ([]AddrMap, error) {
	if pairs != nil && len(r.Lines) != len(pairs) {
		return nil, &ProtocolError{Msg: fmt.Sprintf("MAPADDRESS reply has %d lines for %d pairs", len(r.Lines), len(pairs)), Line: r.String()}
	}
	var made []AddrMap
	var errs []error
	for i, l := range r.Lines {
		if l.Code >= 400 && l.Code < 600 {
			e := &Error{Code: l.Code, Msg: l.Text}
			if pairs != nil {
				errs = append(errs, fmt.Errorf("MAPADDRESS %s=%s: %w", pairs[i].From, pairs[i].To, e))
			} else {
				errs = append(errs, e)
			}
			continue
		}
		if l.Code/100 != 2 {
			return nil, &ProtocolError{Msg: "MAPADDRESS reply line is neither a mapping nor an error", Line: l.Text}
		}
		from, to, ok := strings.Cut(l.Text, "=")
		if !ok || from == "" {
			return nil, &ProtocolError{Msg: `MAPADDRESS reply line is not "Old=New"`, Line: l.Text}
		}
		made = append(made, AddrMap{From: from, To: to})
	}
	return made, errors.Join(errs...)
}
