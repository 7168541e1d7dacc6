package ctl

import (
	"errors"
	"fmt"
)

// Event is an asynchronous event (a 650 reply), parsed into its type.
// Every event keeps the reply it was parsed from.
type Event interface {
	// EventType is the event's keyword as tor sent it: "CIRC", "STREAM",
	// "NOTICE", or a keyword this package does not know.
	EventType() string
	// Reply is the reply the event was parsed from (a CIRC or STREAM
	// event's own copy of the Reply struct); Reply().String() is its text
	// (Reply().Raw exactly as read, but for a big data block).
	Reply() *Reply
}

// Base is embedded in every typed event. It is left out of the event's
// JSON form, which is its parsed fields.
type Base struct {
	Type string `json:"-"`
	Raw  *Reply `json:"-"`
}

func (b *Base) EventType() string { return b.Type }
func (b *Base) Reply() *Reply     { return b.Raw }

// ownReply points Raw at own, a copy of the Reply struct (its text is
// shared). The reader carves Reply structs from slabs, and an event kept
// for long (the latest CIRC and STREAM event of each live circuit and
// stream, which those events make room for) would otherwise keep its
// slab's neighbours, and their text, alive with it.
func (b *Base) ownReply(own *Reply) {
	r := b.Raw
	if r == nil {
		return
	}
	*own = *r
	if len(r.Lines) == 1 && &r.Lines[0] == &r.first[0] {
		own.Lines = own.first[:]
	}
	b.Raw = own
}

// keepReply gives ev a Reply of its own if it still points at scratch,
// the reader's Reply that the next read overwrites (CIRC and STREAM events
// and Deferred already copied it: ownReply).
func keepReply(ev Event, scratch *Reply) {
	if ev.Reply() != scratch {
		return
	}
	if b, ok := ev.(interface{ base() *Base }); ok {
		b.base().ownReply(new(Reply))
	}
}

func (b *Base) base() *Base { return b }

// UnknownEvent is an event whose type this package does not know, or whose
// text it could not parse (ParseErr says why). It is never dropped.
type UnknownEvent struct {
	Base
	ParseErr error
}

// Event types, as given to SETEVENTS and as EventType returns them
// (control-spec 4.1).
const (
	EventCirc              = "CIRC"
	EventStream            = "STREAM"
	EventORConn            = "ORCONN"
	EventBW                = "BW"
	EventDebug             = "DEBUG"
	EventInfo              = "INFO"
	EventNotice            = "NOTICE"
	EventWarn              = "WARN"
	EventErr               = "ERR"
	EventNewDesc           = "NEWDESC"
	EventAddrMap           = "ADDRMAP"
	EventAuthDirNewDescs   = "AUTHDIR_NEWDESCS"
	EventDescChanged       = "DESCCHANGED"
	EventStatusGeneral     = "STATUS_GENERAL"
	EventStatusClient      = "STATUS_CLIENT"
	EventStatusServer      = "STATUS_SERVER"
	EventGuard             = "GUARD"
	EventNS                = "NS"
	EventStreamBW          = "STREAM_BW"
	EventClientsSeen       = "CLIENTS_SEEN"
	EventNewConsensus      = "NEWCONSENSUS"
	EventBuildTimeoutSet   = "BUILDTIMEOUT_SET"
	EventSignal            = "SIGNAL"
	EventConfChanged       = "CONF_CHANGED"
	EventCircMinor         = "CIRC_MINOR"
	EventTransportLaunched = "TRANSPORT_LAUNCHED"
	EventConnBW            = "CONN_BW"
	EventCircBW            = "CIRC_BW"
	EventCellStats         = "CELL_STATS"
	EventTBEmpty           = "TB_EMPTY"
	EventHSDesc            = "HS_DESC"
	EventHSDescContent     = "HS_DESC_CONTENT"
	EventNetworkLiveness   = "NETWORK_LIVENESS"
	EventPTLog             = "PT_LOG"
	EventPTStatus          = "PT_STATUS"
)

// eventStatusSever is how tor before 0.2.0.22-rc spelled STATUS_SERVER.
const eventStatusSever = "STATUS_SEVER"

// EventTypes returns every event type of control-spec 4.1, in the spec's
// order, for SETEVENTS. Each call returns a new slice.
func EventTypes() []string {
	return []string{
		EventCirc, EventStream, EventORConn, EventBW,
		EventDebug, EventInfo, EventNotice, EventWarn, EventErr,
		EventNewDesc, EventAddrMap, EventAuthDirNewDescs, EventDescChanged,
		EventStatusGeneral, EventStatusClient, EventStatusServer,
		EventGuard, EventNS, EventStreamBW, EventClientsSeen,
		EventNewConsensus, EventBuildTimeoutSet, EventSignal,
		EventConfChanged, EventCircMinor, EventTransportLaunched,
		EventConnBW, EventCircBW, EventCellStats, EventTBEmpty,
		EventHSDesc, EventHSDescContent, EventNetworkLiveness,
		EventPTLog, EventPTStatus,
	}
}

// ParseEvent turns a 650 reply into a typed event: a *CircEvent for CIRC, a
// *StreamEvent for STREAM, and so on (see EventTypes). It never fails: an
// event of a type this package does not know, or of a known type whose text
// is malformed, becomes an *UnknownEvent, with ParseErr set in the second
// case.
//
// Parsing follows control-spec 4.1: arguments and lines the parser does not
// recognise are kept in the event's Unknown field, keyword arguments may come
// in any order, and a keyword whose value does not parse as its type is kept
// in Unknown with its field left zero. Missing or malformed positional
// arguments make the event malformed. Strings in events are substrings of
// Reply().Raw, except for QuotedStrings with escapes and data blocks that
// needed unstuffing or were read straight into their Data (over
// Limits.BigData); exact numbers and times are in Reply().Raw too.
func ParseEvent(r *Reply) (ev Event) {
	if r == nil || len(r.Lines) == 0 {
		return &UnknownEvent{Base: Base{Raw: r}, ParseErr: &ProtocolError{Msg: "event: empty reply"}}
	}
	typ, rest, _ := cutWord(r.Lines[0].Text)
	b := Base{Type: typ, Raw: r}
	defer func() {
		// A parser bug must not take the reader goroutine down; the fuzz
		// tests check that this never happens.
		if p := recover(); p != nil {
			ev = &UnknownEvent{Base: b, ParseErr: fmt.Errorf("%s event: %w: %v", typ, errParserPanic, p)}
		}
	}()
	a := NewArgs(rest)
	var err error
	switch typ {
	case EventCirc:
		ev, err = parseCircEvent(b, &a)
	case EventStream:
		ev, err = parseStreamEvent(b, &a)
	case EventORConn:
		ev, err = parseORConnEvent(b, &a)
	case EventBW:
		ev, err = parseBWEvent(b, &a)
	case EventDebug, EventInfo, EventNotice, EventWarn, EventErr:
		ev, err = parseLogEvent(b, rest)
	case EventNewDesc:
		ev, err = parseNewDescEvent(b, &a)
	case EventAddrMap:
		ev, err = parseAddrMapEvent(b, &a)
	case EventAuthDirNewDescs:
		ev, err = parseAuthDirNewDescsEvent(b, &a)
	case EventDescChanged:
		ev, err = parseDescChangedEvent(b, &a)
	case EventStatusGeneral, EventStatusClient, EventStatusServer, eventStatusSever:
		ev, err = parseStatusEvent(b, &a)
	case EventGuard:
		ev, err = parseGuardEvent(b, &a)
	case EventNS, EventNewConsensus:
		ev, err = parseNSEvent(b, &a)
	case EventStreamBW:
		ev, err = parseStreamBWEvent(b, &a)
	case EventClientsSeen:
		ev, err = parseClientsSeenEvent(b, &a)
	case EventBuildTimeoutSet:
		ev, err = parseBuildTimeoutSetEvent(b, &a)
	case EventSignal:
		ev, err = parseSignalEvent(b, &a)
	case EventConfChanged:
		ev, err = parseConfChangedEvent(b, &a)
	case EventCircMinor:
		ev, err = parseCircMinorEvent(b, &a)
	case EventTransportLaunched:
		ev, err = parseTransportLaunchedEvent(b, &a)
	case EventConnBW:
		ev, err = parseConnBWEvent(b, &a)
	case EventCircBW:
		ev, err = parseCircBWEvent(b, &a)
	case EventCellStats:
		ev, err = parseCellStatsEvent(b, &a)
	case EventTBEmpty:
		ev, err = parseTBEmptyEvent(b, &a)
	case EventHSDesc:
		ev, err = parseHSDescEvent(b, &a)
	case EventHSDescContent:
		ev, err = parseHSDescContentEvent(b, &a)
	case EventNetworkLiveness:
		ev, err = parseNetworkLivenessEvent(b, &a)
	case EventPTLog:
		ev, err = parsePTLogEvent(b, &a)
	case EventPTStatus:
		ev, err = parsePTStatusEvent(b, &a)
	default:
		return &UnknownEvent{Base: b}
	}
	if err != nil {
		return &UnknownEvent{Base: b, ParseErr: &ProtocolError{Msg: typ + " event: " + err.Error(), Line: r.Lines[0].Text}}
	}
	return ev
}

var errParserPanic = errors.New("parser panic")

// keywords hands every argument left in a, then every additional line in
// extra, to set; what set does not take is appended to unknown. It fails
// only on a malformed QuotedString.
func keywords(a *Args, extra []Line, set func(KeyValue) bool, unknown *[]KeyValue) error {
	var kv KeyValue
	for a.next(&kv) {
		if !set(kv) {
			*unknown = append(*unknown, kv)
		}
	}
	if err := a.Err(); err != nil {
		return err
	}
	for i := range extra {
		kv := lineKeyValue(&extra[i])
		if !set(kv) {
			*unknown = append(*unknown, kv)
		}
	}
	return nil
}

// noKeywords is the set function of events that name no keyword arguments.
func noKeywords(KeyValue) bool { return false }

// keywordEvent finishes an event whose arguments after the positional ones
// are all keywords: set takes those it knows, the rest go to unknown.
func keywordEvent(ev Event, a *Args, set func(KeyValue) bool, unknown *[]KeyValue) (Event, error) {
	if err := keywords(a, extraLines(ev.Reply()), set, unknown); err != nil {
		return nil, err
	}
	return ev, nil
}

func cutWord(s string) (word, rest string, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
