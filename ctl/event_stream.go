package ctl

import (
	"errors"
	"strings"
	"time"
)

// StreamStatus is the status of a stream in a STREAM event or in
// stream-status. Tor may send values not listed here.
type StreamStatus string

const (
	StreamNew            StreamStatus = "NEW"
	StreamNewResolve     StreamStatus = "NEWRESOLVE"
	StreamRemap          StreamStatus = "REMAP"
	StreamSentConnect    StreamStatus = "SENTCONNECT"
	StreamSentResolve    StreamStatus = "SENTRESOLVE"
	StreamSucceeded      StreamStatus = "SUCCEEDED"
	StreamFailed         StreamStatus = "FAILED"
	StreamClosed         StreamStatus = "CLOSED"
	StreamDetached       StreamStatus = "DETACHED"
	StreamControllerWait StreamStatus = "CONTROLLER_WAIT"
	StreamXoffSent       StreamStatus = "XOFF_SENT"
	StreamXoffRecv       StreamStatus = "XOFF_RECV"
	StreamXonSent        StreamStatus = "XON_SENT"
	StreamXonRecv        StreamStatus = "XON_RECV"
)

// Stream is a stream as a STREAM event or a line of GETINFO stream-status
// describes it (control-spec 4.1.2). Fields tor did not send are zero.
type Stream struct {
	ID        string
	Status    StreamStatus
	CircuitID string // "0" while the stream is not attached
	// Target is "address:port" as tor sent it; TargetHost is its address
	// (without brackets for IPv6) and TargetPort its port. The address
	// may be "(Tor_internal)".
	Target     string
	TargetHost string
	TargetPort int

	Reason       string // for FAILED, CLOSED and DETACHED
	RemoteReason string
	Source       string // for REMAP: CACHE or EXIT
	SourceAddr   string // for NEW and NEWRESOLVE: the client's "address:port"
	// Purpose, for NEW and NEWRESOLVE: DIR_FETCH, DIR_UPLOAD, DNS_REQUEST,
	// USER, DIRPORT_TEST, or others.
	Purpose        string
	SocksUsername  string
	SocksPassword  string
	ClientProtocol string // SOCKS4, SOCKS5, TRANS, NATD, DNS, HTTPCONNECT, UNKNOWN, ...
	NymEpoch       int64
	SessionGroup   int64
	IsoFields      []string // the fields the client's listener isolates streams by
	// Unknown holds the arguments and additional lines not recognised,
	// in order.
	Unknown []KeyValue
}

var (
	errBadStreamID = errors.New("bad stream ID")
	errBadTarget   = errors.New("missing or bad target")
)

// splitTarget splits "address:port" at its last colon.
func splitTarget(s string) (host string, port int, ok bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", 0, false
	}
	port, ok = parsePort(s[i+1:])
	host = s[:i]
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return host, port, ok && host != ""
}

// parsePositional reads "StreamID SP StreamStatus SP CircuitID SP Target".
func (s *Stream) parsePositional(a *Args) error {
	p, err := readStreamHead(a)
	if err != nil {
		return err
	}
	s.ID, s.Status, s.CircuitID = p.id, StreamStatus(p.status), p.circ
	s.Target, s.TargetHost, s.TargetPort = p.target, p.host, p.port
	return nil
}

// streamHead is the positional arguments of a stream.
type streamHead struct {
	id, status, circ, target, host string
	port                           int
}

// readStreamHead reads "StreamID SP StreamStatus SP CircuitID SP Target".
func readStreamHead(a *Args) (streamHead, error) {
	var p streamHead
	var ok bool
	if p.id, ok = a.Word(); !ok || !isID(p.id) {
		return p, errBadStreamID
	}
	if p.status, ok = a.Word(); !ok || !isKeyword(p.status) {
		return p, errBadStatus
	}
	if p.circ, ok = a.Word(); !ok || !isID(p.circ) {
		return p, errBadCircuitID
	}
	if p.target, ok = a.Word(); !ok {
		return p, errBadTarget
	}
	if p.host, p.port, ok = splitTarget(p.target); !ok {
		return p, errBadTarget
	}
	return p, nil
}

// set takes the keyword arguments of control-spec 4.1.2.
func (s *Stream) set(kv KeyValue) bool {
	if !kv.HasValue {
		return false
	}
	switch kv.Key {
	case "REASON":
		s.Reason = kv.Value
	case "REMOTE_REASON":
		s.RemoteReason = kv.Value
	case "SOURCE":
		s.Source = kv.Value
	case "SOURCE_ADDR":
		s.SourceAddr = kv.Value
	case "PURPOSE":
		s.Purpose = kv.Value
	case "SOCKS_USERNAME":
		s.SocksUsername = kv.Value
	case "SOCKS_PASSWORD":
		s.SocksPassword = kv.Value
	case "CLIENT_PROTOCOL":
		s.ClientProtocol = kv.Value
	case "NYM_EPOCH":
		n, ok := parseUint(kv.Value)
		if !ok {
			return false
		}
		s.NymEpoch = n
	case "SESSION_GROUP":
		n, ok := parseInt(kv.Value)
		if !ok {
			return false
		}
		s.SessionGroup = n
	case "ISO_FIELDS":
		s.IsoFields = splitList(kv.Value)
	default:
		return false
	}
	return true
}

// parseStream reads a stream; isoBuf, if not nil, is room for its
// IsoFields.
func parseStream(s *Stream, a *Args, extra []Line, isoBuf []string) error {
	if err := s.parsePositional(a); err != nil {
		return err
	}
	set := s.set
	if isoBuf != nil {
		set = func(kv KeyValue) bool {
			if kv.Key == "ISO_FIELDS" {
				s.IsoFields = splitListInto(kv.Value, isoBuf)
				return true
			}
			return s.set(kv)
		}
	}
	return keywords(a, extra, set, &s.Unknown)
}

// StreamEvent is a STREAM event: a stream changed status (control-spec
// 4.1.2).
type StreamEvent struct {
	Base
	Stream
}

func parseStreamEvent(b Base, a *Args) (Event, error) {
	// One allocation for the event, a typical IsoFields and its Reply
	// struct.
	ev := &struct {
		StreamEvent
		iso   [6]string
		reply Reply
	}{StreamEvent: StreamEvent{Base: b}}
	if err := parseStream(&ev.Stream, a, extraLines(b.Raw), ev.iso[:0:len(ev.iso)]); err != nil {
		return nil, err
	}
	ev.ownReply(&ev.reply)
	return &ev.StreamEvent, nil
}

// StreamBWEvent is a STREAM_BW event: bytes an application stream carried
// since the last one (control-spec 4.1.13).
type StreamBWEvent struct {
	Base
	StreamID string
	// Written is what the application wrote (tor read from it); Read is
	// what the application read. Tor sends Written first.
	Written int64
	Read    int64
	Time    time.Time // UTC; zero before tor 0.3.2.1-alpha
	Unknown []KeyValue
}

var errBadNumber = errors.New("missing or bad number")

func parseStreamBWEvent(b Base, a *Args) (Event, error) {
	ev := &StreamBWEvent{Base: b}
	id, ok := a.Word()
	if !ok || !isID(id) {
		return nil, errBadStreamID
	}
	ev.StreamID = id
	if ev.Written, ok = uintWord(a); !ok {
		return nil, errBadNumber
	}
	if ev.Read, ok = uintWord(a); !ok {
		return nil, errBadNumber
	}
	if a.More() && !a.AtKeyword() {
		w, _ := a.Word()
		t, ok := parseISOTime2Frac(w)
		if !ok {
			return nil, errors.New("bad time")
		}
		ev.Time = t
	}
	if err := keywords(a, extraLines(b.Raw), noKeywords, &ev.Unknown); err != nil {
		return nil, err
	}
	return ev, nil
}

// uintWord reads a positional non-negative integer.
func uintWord(a *Args) (int64, bool) {
	w, ok := a.Word()
	if !ok {
		return 0, false
	}
	return parseUint(w)
}
