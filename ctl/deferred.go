package ctl

import (
	"math"
	"slices"
	"strings"
	"sync"
)

// Deferred is an event the connection read but left unparsed, because its
// consumer asked for that (Conn.Defer): a consumer that looks at few of
// the events it receives, or at only the ID and status of a CIRC event,
// need not pay for parsing the rest. Event parses it, once, into what
// ParseEvent would have returned. A Deferred may be shared between
// goroutines.
//
// Its head (CircHead, StreamHead) is read as ParseEvent reads it, but a
// Deferred whose head reads may still turn out malformed: Event is then an
// *UnknownEvent with ParseErr set, as ParseEvent would have returned at
// once.
type Deferred struct {
	Base
	own  Reply // the reply's struct: see Base.ownReply
	once sync.Once
	ev   Event

	// A CIRC or STREAM event's ID and status, read once, as offsets in
	// the text of its first line (a Deferred is allocated for every
	// event: offsets keep it in a smaller size class than two strings
	// would); idHi is 0 for other types and for a malformed head.
	idLo, idHi, statusLo, statusHi uint32
}

// NewDeferred is r, a 650 reply, as an event to parse later: what a
// connection delivers for the types given to Defer.
func NewDeferred(r *Reply) *Deferred {
	d := &Deferred{}
	d.Raw = r
	if r != nil && len(r.Lines) > 0 {
		d.Type, _, _ = cutWord(r.Lines[0].Text)
	}
	d.ownReply(&d.own)
	switch d.Type {
	case EventCirc:
		if !d.scanHead(false) {
			d.setHead(d.readHead(false))
		}
	case EventStream:
		if !d.scanHead(true) {
			d.setHead(d.readHead(true))
		}
	}
	return d
}

// scanHead is readHead and setHead for a head without a quoted word (what
// tor sends), read in place: each word as Args.Word reads an unquoted
// one. It says whether it could; a quoted word leaves the head to
// readHead, which unquotes it. A malformed head is none, as there.
func (d *Deferred) scanHead(stream bool) bool {
	text := d.Raw.Lines[0].Text
	if len(text) >= headParsed {
		return true
	}
	i := len(d.Type) // cutWord: the type, a space, the rest
	if i < len(text) {
		i++
	}
	idLo, idHi, ok, quoted := headWord(text, i)
	if quoted {
		return false
	}
	if !ok || !isID(text[idLo:idHi]) {
		return true
	}
	stLo, stHi, ok, quoted := headWord(text, idHi)
	if quoted {
		return false
	}
	if !ok || !isKeyword(text[stLo:stHi]) {
		return true
	}
	if stream { // readStreamHead
		cLo, cHi, ok, quoted := headWord(text, stHi)
		if quoted {
			return false
		}
		if !ok || !isID(text[cLo:cHi]) {
			return true
		}
		tLo, tHi, ok, quoted := headWord(text, cHi)
		if quoted {
			return false
		}
		if !ok {
			return true
		}
		if _, _, ok := splitTarget(text[tLo:tHi]); !ok {
			return true
		}
	}
	d.idLo, d.idHi = uint32(idLo), uint32(idHi)
	d.statusLo, d.statusHi = uint32(stLo), uint32(stHi)
	return true
}

// headWord is where the next word of text from offset i is, as Args.Word
// reads an unquoted one: past the spaces there, up to the next space or
// the end. ok is false at the end of the text; quoted says the word
// there starts with a quote (Args.Word would unquote it).
func headWord(text string, i int) (lo, hi int, ok, quoted bool) {
	for i < len(text) && text[i] == ' ' {
		i++
	}
	if i == len(text) {
		return i, i, false, false
	}
	if text[i] == '"' {
		return i, i, false, true
	}
	if j := strings.IndexByte(text[i:], ' '); j >= 0 {
		return i, i + j, true, false
	}
	return i, len(text), true, false
}

// setHead keeps id and status, the first two words after the type in the
// first line's text (readHead: neither is empty or holds a space or a
// quote), as their offsets in it. A word quoted with an escape in it
// (tor sends none) is no substring of the text: the event is parsed now,
// and the head is the parsed event's.
func (d *Deferred) setHead(id, status string, ok bool) {
	text := d.Raw.Lines[0].Text
	if !ok || len(text) >= headParsed {
		return
	}
	idLo := wordAt(text, len(d.Type), id)
	if idLo < 0 {
		d.parseHead()
		return
	}
	idHi := idLo + len(id)
	stLo := wordAt(text, idHi, status)
	if stLo < 0 {
		d.parseHead()
		return
	}
	d.idLo, d.idHi = uint32(idLo), uint32(idHi)
	d.statusLo, d.statusHi = uint32(stLo), uint32(stLo+len(status))
}

// headParsed is idHi for a head read from the event parsed by NewDeferred.
const headParsed = math.MaxUint32

// parseHead parses the event, before the Deferred is handed to anyone:
// head reads its ev without the once.
func (d *Deferred) parseHead() {
	d.Event()
	d.idHi = headParsed
}

// wordAt is the offset in text of word, the next word Args read past
// offset from: right after the spaces there, where it was not quoted;
// else (a quoted word) its first match past from, inside the quotes; -1
// when it is not in the text as it reads (a quoted escape).
func wordAt(text string, from int, word string) int {
	i := from
	for i < len(text) && text[i] == ' ' {
		i++
	}
	if strings.HasPrefix(text[i:], word) {
		return i
	}
	if j := strings.Index(text[from:], word); j >= 0 {
		return from + j
	}
	return -1
}

// head is the ID and status setHead kept.
func (d *Deferred) head() (id, status string, ok bool) {
	switch d.idHi {
	case 0:
		return "", "", false
	case headParsed:
		switch e := d.ev.(type) {
		case *CircEvent:
			return e.ID, string(e.Status), true
		case *StreamEvent:
			return e.Stream.ID, string(e.Stream.Status), true
		}
		return "", "", false
	}
	text := d.Raw.Lines[0].Text
	return text[d.idLo:d.idHi], text[d.statusLo:d.statusHi], true
}

// Event is the event parsed (ParseEvent), the first call parsing it.
func (d *Deferred) Event() Event {
	d.once.Do(func() { d.ev = ParseEvent(d.Raw) })
	return d.ev
}

// CircHead is a deferred CIRC event's circuit ID and status, read as
// ParseEvent reads them, without reading the rest. ok is false for another
// event type, or when the ID or the status is malformed (Event then says
// why).
func (d *Deferred) CircHead() (id string, status CircStatus, ok bool) {
	if d.Type != EventCirc {
		return "", "", false
	}
	id, st, ok := d.head()
	return id, CircStatus(st), ok
}

// StreamHead is a deferred STREAM event's stream ID and status, read as
// ParseEvent reads them, without the keywords that follow. ok is false for
// another event type, or when the ID, the status, the circuit ID or the
// target is malformed (Event then says why).
func (d *Deferred) StreamHead() (id string, status StreamStatus, ok bool) {
	if d.Type != EventStream {
		return "", "", false
	}
	id, st, ok := d.head()
	return id, StreamStatus(st), ok
}

// readHead reads the ID and status of a CIRC event, or with stream the
// positional arguments of a STREAM event (readStreamHead).
func (d *Deferred) readHead(stream bool) (id, status string, ok bool) {
	if d.Raw == nil || len(d.Raw.Lines) == 0 {
		return "", "", false
	}
	_, rest, _ := cutWord(d.Raw.Lines[0].Text)
	a := NewArgs(rest)
	if stream {
		p, err := readStreamHead(&a)
		if err != nil {
			return "", "", false
		}
		return p.id, p.status, true
	}
	id, ok = a.Word()
	if !ok || !isID(id) {
		return "", "", false
	}
	status, ok = a.Word()
	if !ok || !isKeyword(status) {
		return "", "", false
	}
	return id, status, true
}

// Parsed is ev, parsed if it is a *Deferred.
func Parsed(ev Event) Event {
	if d, ok := ev.(*Deferred); ok {
		return d.Event()
	}
	return ev
}

// Defer makes the connection deliver the events of these types (CIRC,
// BW, ...) as *Deferred, unparsed, from the next one read on; no types
// parses every event again. Events of other types are parsed as before.
func (c *Conn) Defer(types ...string) {
	if len(types) == 0 {
		c.deferred.Store(nil)
		return
	}
	t := slices.Clone(types)
	c.deferred.Store(&t)
}

// parseEvent is r, an event, as the consumer takes it: parsed, or
// *Deferred for the types given to Defer.
func (c *Conn) parseEvent(r *Reply) Event {
	if set := c.deferred.Load(); set != nil && len(r.Lines) > 0 {
		typ, _, _ := cutWord(r.Lines[0].Text)
		for _, t := range *set {
			if t == typ {
				return NewDeferred(r)
			}
		}
	}
	return ParseEvent(r)
}
