package simtor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl"
)

// do sends line and returns tor's reply exactly as it came.
func do(t *testing.T, c *ctl.Conn, line string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rep, err := c.Do(ctx, line)
	if rep == nil {
		t.Fatalf("%s: no reply: %v", line, err)
	}
	return rep.Raw
}

// TestModel: the modelled tor attaches a stream it knows to a built
// circuit, refuses an unknown stream, and sends the events it causes.
func TestModel(t *testing.T) {
	s := New()
	c := s.Connect()
	defer s.Close()
	do(t, c, "SETEVENTS STREAM CIRC")
	id := s.NewStream("example.com:443", "127.0.0.1:5000", "USER", false, "", "")
	if got := do(t, c, "EXTENDCIRCUIT 0"); got != "250 EXTENDED 2\r\n" {
		t.Fatalf("EXTENDCIRCUIT: %q", got)
	}
	if got := do(t, c, "ATTACHSTREAM "+id+" 2"); !strings.HasPrefix(got, "551 ") {
		t.Errorf("attach to a launched circuit: %q, want 551", got)
	}
	if _, err := s.CircEvent("BUILT", "2", nil, "GENERAL", ""); err != nil {
		t.Fatal(err)
	}
	if got := do(t, c, "ATTACHSTREAM "+id+" 2"); got != "250 OK\r\n" {
		t.Errorf("attach: %q", got)
	}
	if got := do(t, c, "ATTACHSTREAM 99 2"); !strings.HasPrefix(got, "552 ") {
		t.Errorf("attach an unknown stream: %q, want 552", got)
	}
	if _, _, ok := s.Expect("ATTACHSTREAM", func(a []string) bool { return a[0] == id }); !ok {
		t.Errorf("no ATTACHSTREAM %s recorded", id)
	}
	var evs []ctl.Event
	deadline := time.Now().Add(5 * time.Second)
	for len(evs) < 4 && time.Now().Before(deadline) { // NEW, LAUNCHED, BUILT, SENTCONNECT
		var more []ctl.Event
		more, _ = c.EventBatch(more)
		evs = append(evs, more...)
		time.Sleep(time.Millisecond)
	}
	if len(evs) != 4 {
		t.Errorf("%d events, want 4 (NEW, LAUNCHED, BUILT, SENTCONNECT)", len(evs))
	}
}

// TestScripted: a scripted tor answers as an idle tor, from what the test
// set, and lets a hook and exact lines override it.
func TestScripted(t *testing.T) {
	s := NewScripted(12)
	defer s.Close()
	c, err := s.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.SetInfo("circuit-status", "5 BUILT $A~a\n6 LAUNCHED")
	s.ReplyLine("GETINFO version", "250-version=0.4.8.12\n250 OK")
	s.Answer(func(line string) (string, bool) { return "551 no", line == "SIGNAL NEWNYM" })
	for _, tc := range []struct{ line, want string }{
		{"EXTENDCIRCUIT 0", "250 EXTENDED 12\r\n"},
		{"EXTENDCIRCUIT 0", "250 EXTENDED 13\r\n"},
		{"ATTACHSTREAM 7 12", "250 OK\r\n"},
		{"GETCONF __LeaveStreamsUnattached", "250 __LeaveStreamsUnattached=0\r\n"},
		{"GETCONF a b", "250-a\r\n250 b\r\n"},
		{"GETINFO stream-status", "250-stream-status=\r\n250 OK\r\n"},
		{"GETINFO circuit-status", "250+circuit-status=\r\n5 BUILT $A~a\r\n6 LAUNCHED\r\n.\r\n250 OK\r\n"},
		{"GETINFO nope", "552 Unrecognized key \"nope\"\r\n"},
		{"GETINFO version", "250-version=0.4.8.12\r\n250 OK\r\n"},
		{"MAPADDRESS a=b c=d", "250-a=b\r\n250 c=d\r\n"},
		{"SIGNAL NEWNYM", "551 no\r\n"},
	} {
		if got := do(t, c, tc.line); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.line, got, tc.want)
		}
	}
	s.SetConf(LeaveStreams, "", false)
	if got := do(t, c, "GETCONF __LeaveStreamsUnattached"); got != "250 __LeaveStreamsUnattached\r\n" {
		t.Errorf("GETCONF with no value: %q", got)
	}
	if n := len(s.Commands()); n != 12 {
		t.Errorf("%d commands recorded, want 12", n)
	}
}

// TestConnections: dials fail when told, each dial is a new connection
// whose commands are told apart, events go to the newest, and Drop ends
// it.
func TestConnections(t *testing.T) {
	s := NewScripted(1)
	defer s.Close()
	s.FailDials(1)
	if _, err := s.Dial(context.Background()); err == nil {
		t.Fatal("the first dial did not fail")
	}
	c1, err := s.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	do(t, c1, "SETEVENTS STREAM")
	c2, _ := s.Dial(context.Background())
	do(t, c2, "SETEVENTS STREAM")
	if got, ok := s.WaitCommand("SETEVENTS STREAM", 2, time.Second); !ok || got.Conn != 2 {
		t.Errorf("second SETEVENTS: %+v, %v; want it on connection 2", got, ok)
	}
	if !s.WaitConns(2, time.Second) || s.CurrentConn() != 2 || len(s.Dials()) != 3 {
		t.Errorf("connections %d, dials %d; want 2 and 3", s.CurrentConn(), len(s.Dials()))
	}
	if err := s.Event("STREAM 7 NEW 0 example.com:80 PURPOSE=USER"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c2.EventReady():
	case <-time.After(5 * time.Second):
		t.Fatal("no event on the newest connection")
	}
	s.Drop()
	select {
	case <-c2.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Drop did not end the connection")
	}
	if _, err := c1.Do(context.Background(), "GETINFO stream-status"); err != nil {
		t.Errorf("the older connection ended too: %v", err)
	}
}
