package ctl

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// RelayEndReason is why a stream ends: the reason byte of a RELAY_END
// message (tor-spec 6.3, "Closing streams"). CLOSESTREAM takes one. Values
// outside 1-14 are valid too: tor must accept reasons it does not know.
type RelayEndReason uint8

// The RELAY_END reasons of tor-spec 6.3.
const (
	RelayEndMisc           RelayEndReason = 1  // catch-all for unlisted reasons
	RelayEndResolveFailed  RelayEndReason = 2  // couldn't look up hostname
	RelayEndConnectRefused RelayEndReason = 3  // remote host refused connection
	RelayEndExitPolicy     RelayEndReason = 4  // OR refuses to connect to host or port
	RelayEndDestroy        RelayEndReason = 5  // circuit is being destroyed
	RelayEndDone           RelayEndReason = 6  // anonymized TCP connection was closed
	RelayEndTimeout        RelayEndReason = 7  // connection timed out, or OR timed out while connecting
	RelayEndNoRoute        RelayEndReason = 8  // routing error while attempting to contact destination
	RelayEndHibernating    RelayEndReason = 9  // OR is temporarily hibernating
	RelayEndInternal       RelayEndReason = 10 // internal error at the OR
	RelayEndResourceLimit  RelayEndReason = 11 // OR has no resources to fulfill request
	RelayEndConnReset      RelayEndReason = 12 // connection was unexpectedly reset
	RelayEndTorProtocol    RelayEndReason = 13 // Tor protocol violations
	RelayEndNotDirectory   RelayEndReason = 14 // RELAY_BEGIN_DIR sent to a non-directory relay
)

var relayEndNames = [...]string{
	RelayEndMisc:           "MISC",
	RelayEndResolveFailed:  "RESOLVEFAILED",
	RelayEndConnectRefused: "CONNECTREFUSED",
	RelayEndExitPolicy:     "EXITPOLICY",
	RelayEndDestroy:        "DESTROY",
	RelayEndDone:           "DONE",
	RelayEndTimeout:        "TIMEOUT",
	RelayEndNoRoute:        "NOROUTE",
	RelayEndHibernating:    "HIBERNATING",
	RelayEndInternal:       "INTERNAL",
	RelayEndResourceLimit:  "RESOURCELIMIT",
	RelayEndConnReset:      "CONNRESET",
	RelayEndTorProtocol:    "TORPROTOCOL",
	RelayEndNotDirectory:   "NOTDIRECTORY",
}

// String is the reason's name without "REASON_" ("EXITPOLICY"), as STREAM
// events write it, or its number for a reason without a name ("200").
func (r RelayEndReason) String() string {
	if int(r) < len(relayEndNames) && relayEndNames[r] != "" {
		return relayEndNames[r]
	}
	return strconv.Itoa(int(r))
}

// ParseRelayEndReason reads a reason by name, with or without "REASON_" and
// in any case ("EXITPOLICY", "REASON_EXITPOLICY", "exitpolicy"), or by its
// decimal number 0-255 ("4", "200").
func ParseRelayEndReason(s string) (RelayEndReason, error) {
	if s != "" && s[0] >= '0' && s[0] <= '9' {
		n, err := strconv.ParseUint(s, 10, 8)
		if err != nil {
			return 0, fmt.Errorf("relay end reason %q: not a name or a number from 0 to 255", s)
		}
		return RelayEndReason(n), nil
	}
	name := strings.ToUpper(s)
	name = strings.TrimPrefix(name, "REASON_")
	for i, n := range relayEndNames {
		if n != "" && n == name {
			return RelayEndReason(i), nil
		}
	}
	return 0, fmt.Errorf("relay end reason %q: not a name (MISC, RESOLVEFAILED, CONNECTREFUSED, EXITPOLICY, DESTROY, DONE, TIMEOUT, NOROUTE, HIBERNATING, INTERNAL, RESOURCELIMIT, CONNRESET, TORPROTOCOL, NOTDIRECTORY) or a number from 0 to 255", s)
}

// AttachStream attaches a stream to a built circuit (control-spec 3.13).
// Circuit "0" hands the stream back to tor. A hop above 0 makes that hop of
// the circuit (1-indexed) the exit; 0 means the last hop. Tor answers 552
// for an unknown stream or circuit, 555 when the stream is not waiting for
// the controller, 551 when it cannot attach.
func (c *Conn) AttachStream(ctx context.Context, stream, circuit string, hop int) error {
	_, err := attachStreamLine(stream, circuit, hop).do(ctx, c)
	return err
}

func attachStreamLine(stream, circuit string, hop int) *cmdLine {
	const cmd = "ATTACHSTREAM"
	l := newCmdLine(cmd).
		arg(argID(cmd+" stream id", stream), stream).
		arg(argID(cmd+" circuit id", circuit), circuit)
	return l.optNumber(cmd+" hop", "HOP=", hop, hop < 0, "is negative")
}

// RedirectStream changes the destination address of a stream, and its port
// unless port is 0 (control-spec 3.15). Send it after the stream's NEW
// event and before attaching it. Tor does not remap the new address.
func (c *Conn) RedirectStream(ctx context.Context, stream, addr string, port int) error {
	_, err := redirectStreamLine(stream, addr, port).do(ctx, c)
	return err
}

func redirectStreamLine(stream, addr string, port int) *cmdLine {
	const cmd = "REDIRECTSTREAM"
	l := newCmdLine(cmd).
		arg(argID(cmd+" stream id", stream), stream).
		arg(argWord(cmd+" address", addr), addr)
	return l.optNumber(cmd+" port", "", port, port < 0 || port > 65535, "is not in 1-65535")
}

// CloseStream closes a stream, telling its exit why (control-spec 3.16).
// Tor ignores flags it does not know; none are defined.
func (c *Conn) CloseStream(ctx context.Context, stream string, reason RelayEndReason, flags ...string) error {
	_, err := closeStreamLine(stream, reason, flags).do(ctx, c)
	return err
}

func closeStreamLine(stream string, reason RelayEndReason, flags []string) *cmdLine {
	const cmd = "CLOSESTREAM"
	l := newCmdLine(cmd).
		arg(argID(cmd+" stream id", stream), stream).
		raw(strconv.Itoa(int(reason)))
	for _, f := range flags {
		l.arg(argName(cmd+" flag", f), f)
	}
	return l
}

// Resolve asks tor to look up hostnames, or with reverse set the names of
// IPv4 addresses (control-spec 3.20). Tor answers at once; the results
// arrive as ADDRMAP events, which must be enabled with SetEvents.
func (c *Conn) Resolve(ctx context.Context, names []string, reverse bool) error {
	const cmd = "RESOLVE"
	if len(names) == 0 {
		return cmdNoArgs(cmd, "no names")
	}
	l := newCmdLine(cmd)
	if reverse {
		l.raw("mode=reverse")
	}
	for _, n := range names {
		// Tor reads the names as keyword arguments: a name with '=' would
		// be taken for an option (such as mode=reverse) and skipped.
		l.arg(argName(cmd+" name", n), n)
	}
	_, err := l.do(ctx, c)
	return err
}
