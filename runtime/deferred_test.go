package runtime

import (
	"context"
	"fmt"
	"log/slog"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/ctl/ctltest"
	"go.starlark.net/starlark"
)

// deferredScript keeps every STREAM and CIRC event's value unread, and on
// SIGNAL prints all of them and the live streams, every attribute: what a
// value shows when a handler reads it long after the events that followed.
const deferredScript = `
seen = []
tor.on("stream", seen.append)
tor.on("circ", seen.append)
def dump(v):
    return " ".join(["%s=%s" % (k, getattr(v, k)) for k in dir(v) if k != "raw"])
def report(e):
    for v in seen:
        print(dump(v))
    print("live:", [dump(s) for s in tor.streams()])
    print("circuits:", [dump(c) for c in tor.circuits()])
    print("report", e.signal)
tor.on("signal", report)
tor.policy(lambda s: None)
print("ready")
`

// deferredEvents is a client stream's life with the keywords only NEW
// has (which later events leave out and the live state fills in), a
// stream the policy leaves alone (DIR_FETCH), a REMAP, forty XOFF/XON
// events (past maxStreamChain), and a detach and a re-attach.
func deferredStreamEvents() []string {
	evs := []string{
		"650 CIRC 5 LAUNCHED PURPOSE=GENERAL",
		"650 CIRC 5 BUILT $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~a PURPOSE=GENERAL",
		`650 STREAM 7 NEW 0 example.com:443 SOURCE_ADDR=127.0.0.1:5000 PURPOSE=USER SOCKS_USERNAME="u" SOCKS_PASSWORD="p" CLIENT_PROTOCOL=SOCKS5 NYM_EPOCH=3 SESSION_GROUP=-4 ISO_FIELDS=SOCKS_USERNAME,SOCKS_PASSWORD`,
		"650 STREAM 8 NEW 0 127.0.0.1:80 SOURCE_ADDR=(Tor_internal):0 PURPOSE=DIR_FETCH",
		"650 STREAM 7 SENTCONNECT 5 example.com:443",
		"650 STREAM 8 SENTCONNECT 5 127.0.0.1:80",
		"650 STREAM 7 REMAP 5 93.184.216.34:443 SOURCE=EXIT",
		"650 STREAM 7 SUCCEEDED 5 93.184.216.34:443",
	}
	for i := 0; i < 20; i++ {
		evs = append(evs, "650 STREAM 7 XOFF_SENT 5 93.184.216.34:443", "650 STREAM 7 XON_SENT 5 93.184.216.34:443")
	}
	return append(evs,
		"650 STREAM 7 DETACHED 5 93.184.216.34:443 REASON=END REMOTE_REASON=TIMEOUT",
		"650 STREAM 7 SENTCONNECT 5 93.184.216.34:443",
		"650 STREAM 8 CLOSED 5 127.0.0.1:80 REASON=DONE",
		"650 STREAM 7 SUCCEEDED 5 93.184.216.34:443",
		"650 SIGNAL NEWNYM",
		"650 STREAM 7 CLOSED 5 93.184.216.34:443 REASON=DONE",
		"650 SIGNAL RELOAD",
	)
}

// TestDeferredStreamsShowWhatParsedOnesShow: a STREAM event left unparsed
// (deferredEvents) shows handlers, tor.streams() and the policy exactly what
// the same event parsed at once shows (Options.OnEvent makes dispatch parse
// every event), read long after, with the live state's filling in of what
// later events leave out; every attribute.
func TestDeferredStreamsShowWhatParsedOnesShow(t *testing.T) {
	run := func(parsed bool) (string, []string) {
		f := newTestTor(t)
		var opts Options
		if parsed {
			opts.OnEvent = func(ev ctl.Event) {
				if _, ok := ev.(*ctl.Deferred); ok {
					t.Errorf("OnEvent got %T, want it parsed", ev)
				}
			}
		}
		r := startScript(t, f, deferredScript, opts)
		r.waitOut("ready")
		r.started()
		evs := deferredStreamEvents()
		// NEW comes alone, so that the policy's ATTACHSTREAM is
		// answered before the stream moves on.
		f.Event(evs[:3]...)
		f.WaitCommand("ATTACHSTREAM 7 0")
		f.Event(evs[3:]...)
		r.waitOut("report RELOAD")
		if _, err := r.stop(); err != nil {
			t.Fatal(err)
		}
		return r.out.String(), f.Lines("ATTACHSTREAM", "CLOSESTREAM", "REDIRECTSTREAM")
	}
	parsed, parsedCmds := run(true)
	deferred, deferredCmds := run(false)
	if deferred != parsed {
		pl, dl := strings.Split(parsed, "\n"), strings.Split(deferred, "\n")
		for i := range min(len(pl), len(dl)) {
			if pl[i] != dl[i] {
				t.Fatalf("line %d differs:\nparsed:   %s\ndeferred: %s", i+1, pl[i], dl[i])
			}
		}
		t.Fatalf("%d lines parsed, %d deferred", len(pl), len(dl))
	}
	if fmt.Sprint(deferredCmds) != fmt.Sprint(parsedCmds) || len(parsedCmds) != 2 {
		t.Fatalf("the policy sent %q deferred, %q parsed; want two ATTACHSTREAM 7 0 (NEW, DETACHED)", deferredCmds, parsedCmds)
	}
	for _, want := range []string{
		// SUCCEEDED, read at the end, with what NEW said.
		"id=7 iso_fields=(\"SOCKS_USERNAME\", \"SOCKS_PASSWORD\") nym_epoch=3 purpose=USER reason= remote_reason= session_group=-4 socks_password=p socks_username=u source= source_addr=127.0.0.1:5000 source_host=127.0.0.1 source_port=5000 status=SUCCEEDED",
		// The REMAP's own SOURCE.
		"source=EXIT source_addr=127.0.0.1:5000 source_host=127.0.0.1 source_port=5000 status=REMAP",
		// Stream 8's end, with what its NEW said.
		"id=8 iso_fields=() nym_epoch=0 purpose=DIR_FETCH reason=DONE",
		`live: ["circuit=<circuit 5 BUILT GENERAL a> circuit_id=5 client_protocol=SOCKS5`,
		"live: []",
	} {
		if !strings.Contains(deferred, want) {
			t.Errorf("output lacks %q:\n%s", want, deferred)
		}
	}
}

// TestDeferredStreamMalformed: a STREAM event malformed past its head
// (an unterminated quote; tor never sends one) is, deferred, the stream of
// its ID and status: a CLOSED one ends the stream. Malformed in its head,
// it is an unknown event, as parsed at once, and changes nothing.
func TestDeferredStreamMalformed(t *testing.T) {
	f := newTestTor(t)
	r := startScript(t, f, `
tor.on("stream", lambda e: print(type(e), e.id if type(e) == "tor.stream" else e.raw))
tor.on("signal", lambda e: print("live", [s.id for s in tor.streams()]))
tor.policy(lambda s: None)
print("ready")
`, Options{})
	r.waitOut("ready")
	r.started()
	f.Event("650 STREAM 7 NEW 0 example.com:443 PURPOSE=USER", "650 STREAM 8 NEW 0 example.com:443 PURPOSE=USER")
	f.WaitCommand("ATTACHSTREAM 8 0")
	f.Event(`650 STREAM 7 CLOSED 0 example.com:443 REASON=DONE BOGUS="x`, "650 STREAM 8 CLOSED 0 example.com REASON=DONE", "650 SIGNAL NEWNYM")
	r.waitOut("live")
	want := "tor.stream 7\ntor.stream 8\ntor.stream 7\ntor.event 650 STREAM 8 CLOSED 0 example.com REASON=DONE\nlive [\"8\"]\n"
	if got := r.out.String(); got != "ready\n"+want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

// TestLongBatchFlushesItsDecisions: a decision made early in a long batch
// of events (a flood, handlers that take their time) goes out about 1 ms
// after it was made, not at the batch's end; with one processor, as
// torscript runs, where the cork's own timer waits for the loop to be
// preempted.
func TestLongBatchFlushesItsDecisions(t *testing.T) {
	defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(1))
	f := newTestTor(t)
	r := startScript(t, f, `
n = [0]
def slow(e):
    for i in range(1000):
        pass
    n[0] += 1
    if n[0] == 1000:
        tor.get_info("version")
tor.on("bw", slow)
tor.policy(lambda s: None)
print("ready")
`, Options{})
	r.waitOut("ready")
	r.started()
	var evs []string
	for i := 0; i < 1000; i++ {
		if i == 20 {
			evs = append(evs, "650 STREAM 7 NEW 0 example.com:443 PURPOSE=USER")
		}
		evs = append(evs, "650 BW 1 2")
	}
	start := time.Now()
	f.Event(evs...)
	attach := f.WaitCommand("ATTACHSTREAM 7 0")
	last := f.WaitCommand("GETINFO version")
	took, held := last.At.Sub(start), attach.At.Sub(start)
	t.Logf("the batch took %v, its decision went out after %v", took, held)
	if held > took/2 {
		t.Fatalf("the batch took %v, its decision went out after %v: held to near its end", took, held)
	}
}

// TestDecisionHeldBeforeASlowCall: a decision the policy made (held to go
// out with the batch's others) is not kept waiting by a slow handler later
// in the same batch: the call's Guard has it written about 1 ms after.
func TestDecisionHeldBeforeASlowCall(t *testing.T) {
	defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(1))
	f := newTestTor(t)
	log := &ctltest.SyncBuffer{}
	r := New(Options{Connect: f.Connect, Stdout: &ctltest.SyncBuffer{},
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	const spin = 300 * time.Millisecond
	r.pre["spin"] = starlark.NewBuiltin("spin", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
		for end := time.Now().Add(spin); time.Now().Before(end); {
		}
		return starlark.None, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	go func() {
		defer close(done)
		r.Run(ctx, "x.star", []byte("def slow(e):\n    spin()\n    tor.get_info(\"version\")\ntor.on(\"bw\", slow)\ntor.policy(lambda s: None)\n"))
	}()
	waitUntil(t, 5*time.Second, "the policy to start", func() bool { return strings.Contains(log.String(), "policy started") })
	start := time.Now()
	f.Event("650 STREAM 7 NEW 0 example.com:443 PURPOSE=USER", "650 BW 1 2")
	attach := f.WaitCommand("ATTACHSTREAM 7 0")
	last := f.WaitCommand("GETINFO version")
	took, held := last.At.Sub(start), attach.At.Sub(start)
	t.Logf("the slow call ended after %v, the decision before it went out after %v", took, held)
	// Held until the call ended, it would go out with the call's own
	// command; a preemption of the call (every 10 ms or so, with one
	// processor) lets the timer write it long before.
	if took < spin || held > spin/2 {
		t.Fatalf("the slow call ended after %v, the decision before it went out after %v: held until it ended", took, held)
	}
}

// TestDeferredStreamChainIsBounded: a stream's unparsed events wait on each
// other at most maxStreamChain deep, however many come (XOFF and XON by the
// hundred), and the last one still shows what NEW said.
func TestDeferredStreamChainIsBounded(t *testing.T) {
	s := newLiveState(nil)
	s.tracking = true
	deferred := func(line string) *ctl.Deferred {
		rs, err := ctl.ParseReplies([]byte(line+"\r\n"), ctl.Limits{})
		if err != nil || len(rs) != 1 {
			t.Fatalf("%q: %v", line, err)
		}
		return ctl.NewDeferred(rs[0])
	}
	s.stream(&deferred(`650 STREAM 7 NEW 0 example.com:443 SOURCE_ADDR=127.0.0.1:5000 PURPOSE=USER`).Event().(*ctl.StreamEvent).Stream)
	var last builtins.Source[ctl.Stream]
	for i := range 1000 {
		status := []string{"XOFF_SENT", "XON_SENT"}[i%2]
		last, _ = s.deferredStream("7", ctl.StreamStatus(status), deferred("650 STREAM 7 "+status+" 5 example.com:443"), i%3 == 0)
		depth := 0
		for p := last.(*deferredStream); p != nil; p = p.prev {
			depth++
		}
		if depth > maxStreamChain {
			t.Fatalf("event %d: %d unparsed events wait on each other", i, depth)
		}
	}
	st := s.streams.Get("7")
	if st != last.Parse() || st.Status != "XON_SENT" || st.SourceAddr != "127.0.0.1:5000" || st.Purpose != "USER" {
		t.Fatalf("the stream after 1000 events: %+v", st)
	}
}

// TestDeferredStreamClosed checks a deferred CLOSED or FAILED event: the
// live state drops the stream whether or not a handler takes the event,
// and the event's stream, for a handler, still shows what NEW said.
func TestDeferredStreamClosed(t *testing.T) {
	deferred := func(line string) *ctl.Deferred {
		rs, err := ctl.ParseReplies([]byte(line+"\r\n"), ctl.Limits{})
		if err != nil || len(rs) != 1 {
			t.Fatalf("%q: %v", line, err)
		}
		return ctl.NewDeferred(rs[0])
	}
	for _, status := range []string{"CLOSED", "FAILED"} {
		for _, value := range []bool{false, true} {
			s := newLiveState(nil)
			s.tracking = true
			s.stream(&deferred(`650 STREAM 7 NEW 0 example.com:443 SOURCE_ADDR=127.0.0.1:5000 PURPOSE=USER`).Event().(*ctl.StreamEvent).Stream)
			s.stream(&deferred(`650 STREAM 8 NEW 0 example.org:80 PURPOSE=USER`).Event().(*ctl.StreamEvent).Stream)
			src, val := s.deferredStream("7", ctl.StreamStatus(status), deferred("650 STREAM 7 "+status+" 5 example.com:443 REASON=DONE"), value)
			if got := s.streams.Get("7"); got != nil {
				t.Errorf("%s, value %v: stream 7 still live: %+v", status, value, got)
			}
			if s.streams.Get("8") == nil {
				t.Errorf("%s, value %v: stream 8 gone", status, value)
			}
			if !value {
				if src != nil || val != nil {
					t.Errorf("%s without a handler: stream %v, value %v; want none", status, src, val)
				}
				continue
			}
			if src == nil || val == nil {
				t.Fatalf("%s with a handler: stream %v, value %v", status, src, val)
			}
			if st := src.Parse(); st.Status != ctl.StreamStatus(status) || st.Reason != "DONE" || st.SourceAddr != "127.0.0.1:5000" || st.Purpose != "USER" {
				t.Errorf("%s with a handler: the event's stream %+v", status, st)
			}
		}
	}
}
