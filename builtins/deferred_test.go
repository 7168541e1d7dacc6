package builtins

import (
	"strconv"
	"testing"

	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

func reply(t *testing.T, text string) *ctl.Reply {
	t.Helper()
	rs, err := ctl.ParseReplies([]byte(text), ctl.Limits{})
	if err != nil || len(rs) != 1 {
		t.Fatalf("%q: %v", text, err)
	}
	return rs[0]
}

// attrsOf reads every attribute of v, as dir() and getattr() would.
func attrsOf(t *testing.T, v starlark.Value) map[string]string {
	t.Helper()
	h := v.(starlark.HasAttrs)
	out := map[string]string{"type()": v.Type(), "str()": v.String()}
	for _, n := range h.AttrNames() {
		x, err := h.Attr(n)
		if err != nil {
			t.Fatalf("%s.%s: %v", v.Type(), n, err)
		}
		if x == nil {
			out[n] = "<no such attribute>"
			continue
		}
		out[n] = x.String()
	}
	return out
}

// TestDeferredEventValues: the value of a deferred event shows exactly what
// the value of the same event parsed at once shows: every attribute, its
// type and its text, also for an event malformed past its head.
func TestDeferredEventValues(t *testing.T) {
	for _, text := range []string{
		"650 CIRC 12 BUILT $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~a,$BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB~b BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL TIME_CREATED=2026-12-05T10:00:00.5 ODD=1\r\n",
		"650-CIRC 3 CLOSED REASON=FINISHED\r\n650 EXTRA=1\r\n",
		"650 CIRC 1.2 BUILT\r\n",      // malformed head: an unknown event, as parsed
		"650 CIRC 12 BUILT P=\"x\r\n", // malformed past the head
		"650 BW 10 20 DIR=1 OR=2\r\n", // a tor.event
		"650 ORCONN $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~a CONNECTED ID=5\r\n",
		"650 BW ten 20\r\n", // malformed BW
		"650 STREAM 7 NEW 0 [2001:db8::1]:443 SOURCE_ADDR=127.0.0.1:5000 PURPOSE=USER SOCKS_USERNAME=\"u\" ISO_FIELDS=SOCKS_USERNAME NYM_EPOCH=2 ODD=1\r\n",
		"650-STREAM 7 CLOSED 5 example.com:443 REASON=END REMOTE_REASON=DONE\r\n650 EXTRA=1\r\n",
		"650 STREAM 7 NEW 0 example.com\r\n",             // malformed head (no port)
		"650 STREAM 12 BUILT 0 example.com:80 P=\"x\r\n", // malformed past the head
	} {
		r := reply(t, text)
		parsed := attrsOf(t, EventValue(ctl.ParseEvent(r), nil))
		d := ctl.NewDeferred(r)
		deferred := attrsOf(t, EventValue(d, nil))
		_, _, circOK := d.CircHead()
		_, _, streamOK := d.StreamHead()
		if _, malformed := d.Event().(*ctl.UnknownEvent); malformed && (circOK || streamOK) {
			// A CIRC or STREAM event malformed past its head is a
			// circuit or stream of its ID and status (CircuitOf,
			// StreamOf), where parsed at once it is an unknown event:
			// tor never sends one.
			want := map[bool]string{true: "tor.circuit", false: "tor.stream"}[circOK]
			if deferred["type()"] != want || deferred["id"] != `"12"` || deferred["status"] != `"BUILT"` {
				t.Errorf("%q deferred: %v", text, deferred)
			}
			continue
		}
		if len(parsed) != len(deferred) {
			t.Errorf("%q: %d attributes parsed, %d deferred", text, len(parsed), len(deferred))
		}
		for k, v := range parsed {
			if deferred[k] != v {
				t.Errorf("%q: %s is %s parsed, %s deferred", text, k, v, deferred[k])
			}
		}
	}
}

// TestLiveSourceParsedOnRead: a state given unparsed is parsed on the
// item's first read, once, and never when nobody reads it.
func TestLiveSourceParsedOnRead(t *testing.T) {
	l := newLiveCircuits()
	src := &countingSource{c: ctl.Circuit{ID: "5", Status: ctl.CircBuilt, Purpose: "GENERAL"}}
	l.SetSource("5", src)
	l.SetSource("6", &countingSource{c: ctl.Circuit{ID: "6", Status: ctl.CircLaunched}})
	if !l.Has("5") || src.n != 0 {
		t.Fatalf("Has: %v, parsed %d times; want true, 0", l.Has("5"), src.n)
	}
	keep := func(c *ctl.Circuit) bool { return c.Status == ctl.CircBuilt }
	if got := ids(t, l.View("tor.circuits", keep)); len(got) != 1 || got[0] != "5" || src.n != 1 {
		t.Fatalf("view: %v, parsed %d times; want [5], 1", got, src.n)
	}
	if l.Get("5").Purpose != "GENERAL" || l.Value("5").(*Circuit).C.ID != "5" || src.n != 1 {
		t.Fatalf("later reads parsed again: %d", src.n)
	}
	again := &countingSource{c: ctl.Circuit{ID: "5", Status: ctl.CircBuilt, Purpose: "HS_VANGUARDS"}}
	l.SetSource("5", again)
	if l.Get("5").Purpose != "HS_VANGUARDS" || again.n != 1 {
		t.Fatalf("a new state: purpose %s, parsed %d times", l.Get("5").Purpose, again.n)
	}
	l.Delete("6")
	if l.Has("6") || l.Len() != 1 || len(l.All()) != 1 {
		t.Fatalf("after Delete: Has %v, Len %d, All %d", l.Has("6"), l.Len(), len(l.All()))
	}
	// ReplaceSource and Take give the state before as it was, parsed or
	// not, and parse nothing.
	third := &countingSource{c: ctl.Circuit{ID: "5", Status: ctl.CircClosed}}
	if cur, prev, had := l.ReplaceSource("5", third); !had || prev != nil || cur == nil || cur.Purpose != "HS_VANGUARDS" {
		t.Fatalf("ReplaceSource over a parsed state: %v, %v, %v", cur, prev, had)
	}
	if cur, prev, had := l.Take("5"); !had || cur != nil || prev != third || third.n != 0 || l.Has("5") {
		t.Fatalf("Take of an unparsed state: %v, %v, %v; parsed %d times", cur, prev, had, third.n)
	}
	if cur, prev, had := l.ReplaceSource("9", third); had || cur != nil || prev != nil || !l.Has("9") {
		t.Fatalf("ReplaceSource of a new item: %v, %v, %v", cur, prev, had)
	}
	if _, _, had := l.Take("10"); had {
		t.Fatal("Take of an item that is not there")
	}
}

type countingSource struct {
	c ctl.Circuit
	n int
}

func (s *countingSource) Parse() *ctl.Circuit { s.n++; c := s.c; return &c }

// TestIDMap: numeric IDs and others never collide, whatever their text.
func TestIDMap(t *testing.T) {
	var m IDMap[string]
	ids := []string{"0", "1", "01", "001", "10", "a1", "1a", "18446744073709551615", "9999999999999999999", "99999999999999999999", "-1", "+1", " 1", "1 "}
	for _, id := range ids {
		m.Set(id, "v"+id)
	}
	if m.Len() != len(ids) {
		t.Fatalf("Len %d, want %d", m.Len(), len(ids))
	}
	for _, id := range ids {
		if v, ok := m.Get(id); !ok || v != "v"+id {
			t.Errorf("Get(%q) = %q, %v", id, v, ok)
		}
	}
	if _, ok := m.Get("2"); ok {
		t.Error("Get(2) found")
	}
	m.Delete("1")
	if _, ok := m.Get("1"); ok {
		t.Error("1 still there")
	}
	if _, ok := m.Get("01"); !ok {
		t.Error("deleting 1 deleted 01")
	}
	all := map[string]string{}
	for id, v := range m.All() {
		all[id] = v
	}
	if len(all) != m.Len() {
		t.Errorf("All gave %d IDs, Len is %d", len(all), m.Len())
	}
	for _, id := range ids {
		if v, ok := all[id]; id != "1" && (!ok || v != "v"+id) {
			t.Errorf("All: %q = %q, %v", id, v, ok)
		}
	}
	m.Clear()
	if m.Len() != 0 {
		t.Errorf("Len after Clear: %d", m.Len())
	}
}

// TestNumID: an ID written the one way is its number, as strconv reads it.
func TestNumID(t *testing.T) {
	for _, id := range []string{"0", "7", "12", "21", "4294967296", "9999999999999999999", "1234567890123456789"} {
		want, err := strconv.ParseUint(id, 10, 64)
		if n, ok := numID(id); err != nil || !ok || n != want {
			t.Errorf("numID(%q) = %d, %v; want %d (%v)", id, n, ok, want, err)
		}
	}
	for _, id := range []string{"", "00", "01", "-1", "+1", "1_0", "1a", "a1", " 1", "1 ", "10000000000000000000", "99999999999999999999", "1\x00"} {
		if n, ok := numID(id); ok {
			t.Errorf("numID(%q) = %d, ok", id, n)
		}
	}
}

// TestDeferredEventValuesAllocateNothing: handing a deferred CIRC, BW or
// ORCONN event to a handler allocates nothing (its value is the Deferred
// itself); a CIRC event's value still equals, and hashes as, the live
// state's value of its circuit, and is a circuit to tor.attach.
func TestDeferredEventValuesAllocateNothing(t *testing.T) {
	for _, text := range []string{
		"650 CIRC 12 BUILT $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~a PURPOSE=GENERAL\r\n",
		"650 BW 10 20\r\n",
		"650 ORCONN $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~a CONNECTED ID=5\r\n",
	} {
		d := ctl.NewDeferred(reply(t, text))
		if n := testing.AllocsPerRun(100, func() { EventValue(d, nil) }); n != 0 {
			t.Errorf("%q: %v allocations a value, want 0", text, n)
		}
	}
	ev := EventValue(ctl.NewDeferred(reply(t, "650 CIRC 12 BUILT $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~a PURPOSE=GENERAL\r\n")), nil)
	live := &Circuit{C: &ctl.Circuit{ID: "12", Status: ctl.CircBuilt}}
	other := &Circuit{C: &ctl.Circuit{ID: "13", Status: ctl.CircBuilt}}
	for _, c := range []struct {
		x, y starlark.Value
		want bool
	}{{ev, live, true}, {live, ev, true}, {ev, other, false}, {other, ev, false}, {ev, ev, true}} {
		if eq, err := starlark.Equal(c.x, c.y); err != nil || eq != c.want {
			t.Errorf("%v == %v: %v, %v; want %v", c.x, c.y, eq, err, c.want)
		}
	}
	dict := starlark.NewDict(1)
	if err := dict.SetKey(live, starlark.True); err != nil {
		t.Fatal(err)
	}
	if v, found, err := dict.Get(ev); err != nil || !found || v != starlark.True {
		t.Errorf("the event's circuit is not the live circuit's key: %v %v %v", v, found, err)
	}
	var id CircuitID
	if err := id.Unpack(ev); err != nil || id != "12" {
		t.Errorf("CircuitID.Unpack(event) = %q, %v", id, err)
	}
	if d, err := ToDecision(ev); err != nil || d != (Attach{Circuit: "12"}) {
		t.Errorf("ToDecision(event) = %v, %v", d, err)
	}
}
