package main

import (
	"reflect"
	"testing"

	"github.com/torscript/torscript/ctl"
)

// TestTorMix: every generated event parses with ctl as tor's own would
// (no unknown argument, no malformed event), lifecycles are consistent, the
// live circuits reach the target and every form appears.
func TestTorMix(t *testing.T) {
	const events = 100_000
	m := newTorMix(1, 2000)
	var data []byte
	for range events {
		data = m.next(data)
	}
	replies, err := ctl.ParseReplies(data, ctl.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(replies) != events {
		t.Fatalf("%d replies, want %d", len(replies), events)
	}
	circs := map[string]ctl.CircStatus{}
	gone := map[string]bool{}
	streams := map[string]ctl.StreamStatus{}
	most, mostStreams, counted, newStreams := 0, 0, 0, 0
	for i, r := range replies {
		ev := ctl.ParseEvent(r)
		if u, ok := ev.(*ctl.UnknownEvent); ok {
			t.Fatalf("event %d not parsed (%v): %s", i, u.ParseErr, r.Raw)
		}
		if u := reflect.ValueOf(ev).Elem().FieldByName("Unknown"); u.IsValid() && u.Len() > 0 {
			t.Fatalf("event %d has arguments ctl does not know: %v: %s", i, u.Interface(), r.Raw)
		}
		switch e := ev.(type) {
		case *ctl.CircEvent:
			counted++
			if gone[e.ID] {
				t.Fatalf("event %d: circuit %s after it ended: %s", i, e.ID, r.Raw)
			}
			if _, ok := circs[e.ID]; !ok && e.Status != ctl.CircLaunched {
				t.Fatalf("event %d: circuit %s starts %s, not LAUNCHED", i, e.ID, e.Status)
			}
			if e.Status != ctl.CircLaunched && e.Status != ctl.CircClosed && e.Status != ctl.CircFailed && len(e.Path) == 0 {
				t.Fatalf("event %d: circuit %s %s without a path", i, e.ID, e.Status)
			}
			if e.Purpose == "" || len(e.BuildFlags) == 0 || e.TimeCreated.IsZero() {
				t.Fatalf("event %d lacks PURPOSE, BUILD_FLAGS or TIME_CREATED: %s", i, r.Raw)
			}
			if e.Status == ctl.CircClosed || e.Status == ctl.CircFailed {
				if prev := circs[e.ID]; e.Status == ctl.CircClosed && prev != ctl.CircBuilt {
					t.Fatalf("event %d: circuit %s CLOSED after %s", i, e.ID, prev)
				}
				delete(circs, e.ID)
				gone[e.ID] = true
			} else {
				circs[e.ID] = e.Status
			}
			most = max(most, len(circs))
		case *ctl.StreamEvent:
			counted++
			prev, known := streams[e.ID]
			switch {
			case !known && e.Status != ctl.StreamNew && e.Status != ctl.StreamNewResolve:
				t.Fatalf("event %d: stream %s starts %s", i, e.ID, e.Status)
			case known && prev == ctl.StreamClosed:
				t.Fatalf("event %d: stream %s after CLOSED", i, e.ID)
			}
			if !known && (e.Purpose == "USER" || e.Purpose == "DNS_REQUEST") {
				newStreams++
			}
			streams[e.ID] = e.Status
			if e.Status == ctl.StreamClosed {
				delete(streams, e.ID)
			}
			mostStreams = max(mostStreams, len(streams))
		case *ctl.BWEvent, *ctl.ORConnEvent:
			counted++
		}
	}
	if counted != m.Counted {
		t.Errorf("%d CIRC, STREAM, BW and ORCONN events; the generator counted %d", counted, m.Counted)
	}
	if newStreams != m.userStreams {
		t.Errorf("%d client streams; the generator counted %d", newStreams, m.userStreams)
	}
	if most < 2000 {
		t.Errorf("at most %d live circuits, want 2000", most)
	}
	if mostStreams > mixStreams || mostStreams < mixStreams/2 {
		t.Errorf("up to %d live streams, want %d to %d", mostStreams, mixStreams/2, mixStreams)
	}
	for _, form := range []string{
		"CIRC LAUNCHED", "CIRC EXTENDED", "CIRC BUILT", "CIRC CLOSED", "CIRC FAILED",
		"STREAM NEW", "STREAM NEWRESOLVE", "STREAM SENTCONNECT", "STREAM SENTRESOLVE", "STREAM REMAP",
		"STREAM SUCCEEDED", "STREAM DETACHED", "STREAM FAILED", "STREAM CLOSED",
		"BW", "BW by type", "ORCONN LAUNCHED", "ORCONN CONNECTED", "ORCONN CLOSED",
		"650- CONF_CHANGED", "650+ NS",
	} {
		if m.seen[form] == 0 {
			t.Errorf("no %s event in %d", form, events)
		}
	}
	if m.seen["650- CONF_CHANGED"] != events/50-events/400 || m.seen["650+ NS"] != events/400 {
		t.Errorf("%d 650- and %d 650+ events in %d, want every 50th and every 400th", m.seen["650- CONF_CHANGED"], m.seen["650+ NS"], events)
	}
	t.Logf("%d events: %d CIRC/STREAM/BW/ORCONN, %d client streams, up to %d live circuits and %d live streams; %v", events, counted, newStreams, most, mostStreams, m.seen)
}
