package ctl

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// checkDeferred checks that a Deferred of r is what ParseEvent makes of r:
// the same event once parsed, and a CIRC or STREAM head that agrees with
// the parse.
func checkDeferred(t *testing.T, r *Reply, ev Event) {
	t.Helper()
	d := NewDeferred(r)
	if d.EventType() != ev.EventType() {
		t.Fatalf("Deferred(%q).EventType() = %q, want %q", r.Raw, d.EventType(), ev.EventType())
	}
	if d.Reply().String() != r.String() {
		t.Fatalf("Deferred(%q): its reply's text differs", r.Raw)
	}
	got := d.Event()
	if !reflect.DeepEqual(got, ev) {
		t.Fatalf("Deferred(%q).Event() = %#v, want %#v", r.Raw, got, ev)
	}
	if d.Event() != got {
		t.Fatalf("Deferred(%q).Event() parsed twice", r.Raw)
	}
	id, status, ok := d.CircHead()
	switch e := ev.(type) {
	case *CircEvent:
		if !ok || id != e.ID || status != e.Status {
			t.Fatalf("Deferred(%q).CircHead() = %q, %q, %v; the event has %q, %q", r.Raw, id, status, ok, e.ID, e.Status)
		}
	default:
		// A head that reads does not make the event a CIRC one: only its
		// type and the ID and status being well-formed do.
		if ok && ev.EventType() != EventCirc {
			t.Fatalf("Deferred(%q).CircHead() ok for a %s event", r.Raw, ev.EventType())
		}
	}
	sid, sstatus, sok := d.StreamHead()
	switch e := ev.(type) {
	case *StreamEvent:
		if !sok || sid != e.ID || sstatus != e.Status {
			t.Fatalf("Deferred(%q).StreamHead() = %q, %q, %v; the event has %q, %q", r.Raw, sid, sstatus, sok, e.ID, e.Status)
		}
	default:
		if sok && ev.EventType() != EventStream {
			t.Fatalf("Deferred(%q).StreamHead() ok for a %s event", r.Raw, ev.EventType())
		}
	}
	if ok && sok {
		t.Fatalf("Deferred(%q): both a CIRC and a STREAM head", r.Raw)
	}
}

// TestDeferredRecordedEvents: every event recorded from tor 0.4.9, deferred,
// parses to what ParseEvent makes of it.
func TestDeferredRecordedEvents(t *testing.T) {
	raw, err := os.ReadFile("testdata/tor-0.4.9/events.txt")
	if err != nil {
		t.Fatal(err)
	}
	replies, err := ParseReplies(raw, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	circs, streams := 0, 0
	for _, r := range replies {
		if !r.IsAsync() {
			continue
		}
		ev := ParseEvent(r)
		switch ev.(type) {
		case *CircEvent:
			circs++
		case *StreamEvent:
			streams++
		}
		checkDeferred(t, r, ev)
	}
	if circs == 0 || streams == 0 {
		t.Fatalf("%d CIRC and %d STREAM events in the recording", circs, streams)
	}
}

// TestDeferredQuotedHead: tor quotes no ID or status, but one quoted reads
// as ParseEvent reads it, an escape in it too (the head is then no
// substring of the text), and spaces before it do not move it.
func TestDeferredQuotedHead(t *testing.T) {
	for _, line := range []string{
		`CIRC "12" BUILT`,
		`CIRC 12 "BUILT" PURPOSE=GENERAL`,
		`CIRC "12" "BU\ILT"`,
		`CIRC "1\2" BUILT`,
		`CIRC  12   BUILT`,
		`CIRC 1 1 PURPOSE=GENERAL`,
		`STREAM "7" "SUCC\EEDED" 12 a.example:443`,
		`STREAM 7 "NEW" 0 a.example:443 PURPOSE=USER`,
		`STREAM  7  NEW  0  a.example:443`,
	} {
		rs, err := ParseReplies([]byte("650 "+line+"\r\n"), Limits{})
		if err != nil || len(rs) != 1 {
			t.Fatalf("%s: %v", line, err)
		}
		ev := ParseEvent(rs[0])
		if u, ok := ev.(*UnknownEvent); ok && !strings.Contains(line, `1\2`) {
			t.Errorf("%s: ParseEvent: %v", line, u.ParseErr)
		}
		checkDeferred(t, rs[0], ev)
	}
}

// TestDeferredMalformed: a CIRC or STREAM event malformed in its head has
// no head and parses to an UnknownEvent; one malformed past its head keeps
// its head, and parses to the UnknownEvent ParseEvent makes of it.
func TestDeferredMalformed(t *testing.T) {
	for _, tc := range []struct {
		line   string
		headOK bool
	}{
		{"650 CIRC 12 BUILT $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~a PURPOSE=GENERAL", true},
		{"650 CIRC 12 BUILT PURPOSE=\"GENERAL", true},             // an unterminated quote
		{"650 CIRC 12 BUILT $zz~a PURPOSE=GENERAL", true},         // a bad path
		{"650 CIRC 1.2 BUILT", false},                             // a bad ID
		{"650 CIRC 12345678901234567 BUILT", false},               // an ID too long
		{"650 CIRC 12", false},                                    // no status
		{"650 CIRC \"12\" BUILT", true},                           // quoted, as ParseEvent reads it
		{"650 CIRC 12 BU=ILT", false},                             // a keyword, not a status
		{"650 CIRC\t12 BUILT", false},                             // a tab: the type is "CIRC\t12"
		{"650 STREAM 1 NEW 0 example.com:80", true},               // a STREAM head
		{"650 CIRC 7 EXTENDED $" + strings.Repeat("B", 40), true}, // no nickname
		{"650 STREAM 9 SUCCEEDED 4 example.com:443", true},
		{"650 STREAM 9 NEW 0 [2001:db8::1]:443 SOURCE_ADDR=127.0.0.1:5 PURPOSE=USER", true},
		{"650 STREAM 9 CLOSED 4 example.com:443 REASON=\"DONE", true}, // an unterminated quote
		{"650 STREAM 9 REMAP 4 1.2.3.4:443 NYM_EPOCH=x", true},        // a bad number: past the head
		{"650 STREAM 9 NEW 0 example.com", false},                     // a target without a port
		{"650 STREAM 9 NEW 0 :80", false},                             // without a host
		{"650 STREAM 9 NEW 0 example.com:99999", false},               // a port out of range
		{"650 STREAM 9 NEW x.y example.com:80", false},                // a bad circuit ID
		{"650 STREAM 9 NEW", false},                                   // no circuit, no target
		{"650 STREAM 9\tNEW 0 example.com:80", false},                 // a tab inside a word
		{"650 STREAM 12345678901234567 NEW 0 example.com:80", false},
		{"650 STREAM 9 NE=W 0 example.com:80", false},
		{"650 CIRC 9 NEW 0 example.com:80", true}, // a CIRC event, not a stream
	} {
		r, err := ParseReplies([]byte(tc.line+"\r\n"), Limits{})
		if err != nil || len(r) != 1 {
			t.Fatalf("%q: %v", tc.line, err)
		}
		ev := ParseEvent(r[0])
		checkDeferred(t, r[0], ev)
		d := NewDeferred(r[0])
		_, _, cok := d.CircHead()
		_, _, sok := d.StreamHead()
		if ok := cok || sok; ok != tc.headOK {
			t.Errorf("%q: head ok = %v, want %v (parsed: %T)", tc.line, ok, tc.headOK, ev)
		}
	}
}

// TestConnDefer: a connection delivers the types given to Defer unparsed,
// and the others parsed, in the order tor sent them.
func TestConnDefer(t *testing.T) {
	f, c := NewFakeControlPort(t, Options{})
	c.Defer(EventCirc, EventBW)
	f.Send("650 CIRC 1 LAUNCHED PURPOSE=GENERAL\r\n" +
		"650 STREAM 2 NEW 0 example.com:80\r\n" +
		"650 BW 10 20\r\n" +
		"650-CIRC 3 BUILT\r\n650 EXTRA=1\r\n")
	want := []string{"*ctl.Deferred CIRC", "*ctl.StreamEvent STREAM", "*ctl.Deferred BW", "*ctl.Deferred CIRC"}
	for i, w := range want {
		var ev Event
		select {
		case ev = <-c.Events():
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d never came", i)
		}
		if got := reflect.TypeOf(ev).String() + " " + ev.EventType(); got != w {
			t.Fatalf("event %d: %s, want %s", i, got, w)
		}
		if d, ok := ev.(*Deferred); ok {
			checkDeferred(t, ev.Reply(), ParseEvent(ev.Reply()))
			if i == 3 {
				e, ok := d.Event().(*CircEvent)
				if !ok || e.ID != "3" || len(e.Unknown) != 1 || e.Unknown[0].Key != "EXTRA" {
					t.Fatalf("multi-line CIRC deferred: %#v", d.Event())
				}
			}
		}
	}
	c.Defer()
	f.Send("650 CIRC 4 CLOSED\r\n")
	if ev := <-c.Events(); reflect.TypeOf(ev) != reflect.TypeOf(&CircEvent{}) {
		t.Fatalf("after Defer(): %T, want *ctl.CircEvent", ev)
	}
}

// TestEventsKeepTheirReplies: the reader reads each single-line event into
// one scratch Reply; every event, of whatever type, parsed, deferred,
// unknown or malformed, still has its own text once many more were read.
func TestEventsKeepTheirReplies(t *testing.T) {
	f, c := NewFakeControlPort(t, Options{})
	c.Defer(EventBW, EventCirc)
	lines := []string{
		"650 NOTICE hello there",
		"650 BW 1 2",
		"650 CIRC 5 BUILT PURPOSE=GENERAL",
		"650 CIRC 5.5 BUILT",
		"650 STREAM 9 NEW 0 example.com:80",
		"650 STREAM x",
		"650 ADDRMAP a.example 1.2.3.4 NEVER",
		"650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=100",
		"650 FOO bar",
		"650 ORCONN $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~a CONNECTED",
		"650 CIRC_MINOR 5 PURPOSE_CHANGED OLD_PURPOSE=GENERAL",
		"650 SIGNAL NEWNYM",
	}
	var b strings.Builder
	const rounds = 50
	for i := 0; i < rounds; i++ {
		for _, l := range lines {
			b.WriteString(l + "\r\n")
		}
	}
	f.Send(b.String())
	time.Sleep(100 * time.Millisecond) // all read before any is looked at
	for i := 0; i < rounds*len(lines); i++ {
		var ev Event
		select {
		case ev = <-c.Events():
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d never came", i)
		}
		want := lines[i%len(lines)] + "\r\n"
		if got := ev.Reply().String(); got != want {
			t.Fatalf("event %d (%T): text %q, want %q", i, ev, got, want)
		}
		if got := Parsed(ev).Reply().String(); got != want {
			t.Fatalf("event %d parsed (%T): text %q, want %q", i, Parsed(ev), got, want)
		}
	}
}

// FuzzDeferredHead: the head NewDeferred reads in place (scanHead) is the
// one readHead and setHead read through Args, whatever follows the type.
func FuzzDeferredHead(f *testing.F) {
	for _, s := range []string{
		"12 BUILT $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~a PURPOSE=GENERAL",
		"7 NEW 0 a.example:443 SOURCE_ADDR=127.0.0.1:5 PURPOSE=USER",
		`"12" BUILT`, `12 "BU\ILT"`, `7 NEW "0" a:1`, `7 NEW 0 "a:1"`, `7 NEW 0 [::1]:80`,
		"  12   BUILT  ", "12", "", "12 BUILT\x00", `1"2 BUILT`, "7 NEW 0 a:", "7 NEW 0 :1",
	} {
		f.Add(false, s)
		f.Add(true, s)
	}
	f.Fuzz(func(t *testing.T, stream bool, rest string) {
		if strings.ContainsAny(rest, "\r\n") {
			return
		}
		typ := EventCirc
		if stream {
			typ = EventStream
		}
		rs, err := ParseReplies([]byte("650 "+typ+" "+rest+"\r\n"), Limits{})
		if err != nil || len(rs) != 1 {
			return
		}
		d := NewDeferred(rs[0])
		ref := &Deferred{}
		ref.Raw, ref.Type = rs[0], typ
		ref.setHead(ref.readHead(stream))
		id, status, ok := d.head()
		rid, rstatus, rok := ref.head()
		if id != rid || status != rstatus || ok != rok {
			t.Fatalf("%s %q: head %q, %q, %v; through Args %q, %q, %v", typ, rest, id, status, ok, rid, rstatus, rok)
		}
	})
}
