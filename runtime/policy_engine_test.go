package runtime

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

// engineRig feeds a policyEngine events and records the commands it
// sends: the engine tested alone, through policyEnv, with no runtime, no
// Starlark and no tor.
type engineRig struct {
	t       *testing.T
	e       *policyEngine
	decide  func(s *ctl.Stream, failed []string) (starlark.Value, error)
	circs   map[string]*ctl.Circuit
	streams map[string]*ctl.Stream
	closed  map[string]bool
	sent    []string
	onError map[string]func(error) // by command line, the last sent
	posted  []func()
	exiting bool
	fails   []string
	asked   int
}

func newEngineRig(t *testing.T, p builtins.Policy, dryRun bool) *engineRig {
	g := &engineRig{t: t, circs: map[string]*ctl.Circuit{}, streams: map[string]*ctl.Stream{}, closed: map[string]bool{}, onError: map[string]func(error){}}
	if p.OnError == nil {
		p.OnError = builtins.Attach{Circuit: "0"}
	}
	if p.Timeout == 0 {
		p.Timeout = time.Minute
	}
	g.e = newPolicyEngine(g, slog.New(slog.DiscardHandler), &p, dryRun)
	return g
}

func (g *engineRig) call(fn starlark.Callable, args starlark.Tuple) (starlark.Value, error) {
	g.asked++
	s := args[0].(*builtins.Stream)
	return g.decide(s.Strm(), s.Failed)
}

func (g *engineRig) send(cmd ctl.Command, onError func(error)) {
	g.sent = append(g.sent, cmd.String())
	g.onError[cmd.String()] = onError
}

func (g *engineRig) post(f func())                                         { g.posted = append(g.posted, f) }
func (g *engineRig) circuit(id string) *ctl.Circuit                        { return g.circs[id] }
func (g *engineRig) stream(id string) *ctl.Stream                          { return g.streams[id] }
func (g *engineRig) circuitClosed(id string) bool                          { return g.closed[id] }
func (g *engineRig) probe(*ctl.Stream, []string) (builtins.Decision, bool) { return nil, false }

func (g *engineRig) streamValue(s *ctl.Stream, failed []string) starlark.Value {
	return &builtins.Stream{S: s, Failed: failed}
}
func (g *engineRig) exitRequested(err error) bool { return strings.Contains(err.Error(), "exit(") }
func (g *engineRig) reportFailure(msg string, _ int, err error, _ ...any) {
	g.fails = append(g.fails, msg+": "+err.Error())
}
func (g *engineRig) ending() bool { return g.exiting }
func (g *engineRig) broken() bool { return false }

// event parses one event line as tor sends it and feeds it to the engine
// (and the rig's live state, as dispatch does).
func (g *engineRig) event(line string) {
	g.t.Helper()
	r, err := ctl.NewReplyReader(strings.NewReader(line+"\r\n"), ctl.Limits{}).ReadReply()
	if err != nil {
		g.t.Fatal(err)
	}
	switch e := ctl.ParseEvent(r).(type) {
	case *ctl.StreamEvent:
		g.streams[e.Stream.ID] = &e.Stream
		g.e.onStream(e)
	case *ctl.CircEvent:
		g.circs[e.Circuit.ID] = &e.Circuit
		if e.Circuit.Status == ctl.CircClosed || e.Circuit.Status == ctl.CircFailed {
			delete(g.circs, e.Circuit.ID)
			g.closed[e.Circuit.ID] = true
		}
		g.e.onCircuit(e.ID, e.Status)
	default:
		g.t.Fatalf("not a STREAM or CIRC event: %q", line)
	}
}

// refuse answers the last command sent with line as tor would refuse it.
func (g *engineRig) refuse(line string, code int, msg string) {
	g.t.Helper()
	f := g.onError[line]
	if f == nil {
		g.t.Fatalf("%q was not sent; sent %q", line, g.sent)
	}
	f(&ctl.Error{Code: code, Msg: msg})
}

func (g *engineRig) runPosted() {
	for len(g.posted) > 0 {
		f := g.posted[0]
		g.posted = g.posted[1:]
		f()
	}
}

func (g *engineRig) want(cmds ...string) {
	g.t.Helper()
	if fmt.Sprint(g.sent) != fmt.Sprint(cmds) {
		g.t.Fatalf("sent %q, want %q", g.sent, cmds)
	}
}

func circuitDecision(id string) func(*ctl.Stream, []string) (starlark.Value, error) {
	return func(*ctl.Stream, []string) (starlark.Value, error) { return starlark.String(id), nil }
}

const (
	built7  = "650 CIRC 7 BUILT $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~guard,$BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB~middle,$CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC~exit1 PURPOSE=GENERAL"
	launch7 = "650 CIRC 7 LAUNCHED PURPOSE=GENERAL"
	new42   = "650 STREAM 42 NEW 0 example.com:443 SOURCE_ADDR=127.0.0.1:5000 PURPOSE=USER"
)

func TestEngineAttach(t *testing.T) {
	g := newEngineRig(t, builtins.Policy{}, false)
	g.decide = circuitDecision("7")
	g.event(built7)
	g.event(new42)
	g.want("ATTACHSTREAM 42 7")
	g.event("650 STREAM 42 SENTCONNECT 7 example.com:443")
	g.event("650 STREAM 42 CLOSED 7 example.com:443 REASON=DONE")
	if n := g.e.streams.Len(); n != 0 {
		t.Fatalf("a closed stream is still kept: %d streams", n)
	}
}

func TestEngineWaitsForCircuit(t *testing.T) {
	g := newEngineRig(t, builtins.Policy{}, false)
	g.decide = circuitDecision("7")
	g.event(launch7)
	g.event(new42)
	g.want() // not built: it waits
	if len(g.e.byCirc["7"]) != 1 || len(g.e.waiting) != 1 {
		t.Fatalf("stream not waiting for circuit 7: %v %v", g.e.byCirc, g.e.waiting)
	}
	g.event(built7)
	g.want("ATTACHSTREAM 42 7")
	if len(g.e.byCirc) != 0 || len(g.e.waiting) != 0 {
		t.Fatal("the stream is still on the waiting lists")
	}
}

func TestEngineCircuitFailsWhileWaiting(t *testing.T) {
	g := newEngineRig(t, builtins.Policy{}, false)
	var failedSeen []string
	g.decide = func(_ *ctl.Stream, failed []string) (starlark.Value, error) {
		failedSeen = failed
		if len(failed) == 0 {
			return starlark.String("7"), nil
		}
		return starlark.None, nil // tor chooses
	}
	g.event(launch7)
	g.event(new42)
	g.event("650 CIRC 7 FAILED PURPOSE=GENERAL REASON=TIMEOUT")
	g.want("ATTACHSTREAM 42 0")
	if fmt.Sprint(failedSeen) != "[7]" {
		t.Fatalf("the policy was told the failed circuits %v, want [7]", failedSeen)
	}
}

func TestEngineRefusedAttach(t *testing.T) {
	for _, tc := range []struct {
		code  int
		msg   string
		after []string // sent after the refusal
		asked int
	}{
		// The stream ended: nothing more, and no second question.
		{552, `Unknown stream "42"`, nil, 1},
		// Another controller took it.
		{555, `Connection is not managed by controller.`, nil, 1},
		// The circuit is gone: the policy is asked again (it says 7 again).
		{552, `Unknown circuit "7"`, []string{"ATTACHSTREAM 42 7"}, 2},
		// Anything else: on_error.
		{553, `Other`, []string{"ATTACHSTREAM 42 0"}, 1},
	} {
		g := newEngineRig(t, builtins.Policy{}, false)
		g.decide = circuitDecision("7")
		g.event(built7)
		g.event(new42)
		g.refuse("ATTACHSTREAM 42 7", tc.code, tc.msg)
		want := append([]string{"ATTACHSTREAM 42 7"}, tc.after...)
		if fmt.Sprint(g.sent) != fmt.Sprint(want) || g.asked != tc.asked {
			t.Errorf("%d %s: sent %q after %d questions, want %q after %d", tc.code, tc.msg, g.sent, g.asked, want, tc.asked)
		}
	}
}

func TestEngineOnionGoesToTor(t *testing.T) {
	g := newEngineRig(t, builtins.Policy{}, false)
	g.decide = circuitDecision("7")
	g.event(built7)
	g.event("650 STREAM 43 NEW 0 abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcd.onion:80 PURPOSE=USER")
	g.want("ATTACHSTREAM 43 0")
}

func TestEngineWrongExitCloses(t *testing.T) {
	for target, want := range map[string]string{
		"example.com.exit2.exit:80": "CLOSESTREAM 44 1", // circuit 7 leaves through exit1
		"example.com.exit1.exit:80": "ATTACHSTREAM 44 7",
	} {
		g := newEngineRig(t, builtins.Policy{}, false)
		g.decide = circuitDecision("7")
		g.event(built7)
		g.event("650 STREAM 44 NEW 0 " + target + " PURPOSE=USER")
		g.want(want)
	}
}

func TestEngineGivesUpOnDetachStorm(t *testing.T) {
	g := newEngineRig(t, builtins.Policy{OnError: builtins.Close{Reason: ctl.RelayEndMisc}}, false)
	g.decide = circuitDecision("7")
	g.event(built7)
	g.event(new42)
	for range maxAsks + 3 {
		g.event("650 STREAM 42 DETACHED 7 example.com:443 REASON=END REMOTE_REASON=MISC")
	}
	if g.asked != maxAsks {
		t.Fatalf("asked %d times, want %d", g.asked, maxAsks)
	}
	if last := g.sent[len(g.sent)-1]; last != "CLOSESTREAM 42 1" {
		t.Fatalf("last command %q, want on_error's CLOSESTREAM", last)
	}
	if n := len(g.sent); n != maxAsks+1 {
		t.Fatalf("%d commands after giving up, want %d: %q", n, maxAsks+1, g.sent)
	}
}

func TestEngineRedirectThenAttach(t *testing.T) {
	g := newEngineRig(t, builtins.Policy{}, false)
	g.decide = func(*ctl.Stream, []string) (starlark.Value, error) {
		return builtins.Redirect{Host: "10.0.0.1", Port: 8080, Then: builtins.Attach{Circuit: "7"}}, nil
	}
	g.event(built7)
	g.event(new42)
	g.want("REDIRECTSTREAM 42 10.0.0.1 8080", "ATTACHSTREAM 42 7")
}

// TestEngineRedirectFailsClosed: a redirect tor refuses closes the stream
// (with on_error "tor" as the policy's); one that cannot be written is
// closed at once. Neither is let out to where it first asked.
func TestEngineRedirectFailsClosed(t *testing.T) {
	g := newEngineRig(t, builtins.Policy{}, false)
	g.decide = func(*ctl.Stream, []string) (starlark.Value, error) {
		return builtins.Redirect{Host: "10.0.0.1", Port: 8080, Then: builtins.Attach{Circuit: "0"}}, nil
	}
	g.event(built7)
	g.event(new42)
	g.want("REDIRECTSTREAM 42 10.0.0.1 8080", "ATTACHSTREAM 42 0")
	g.refuse("REDIRECTSTREAM 42 10.0.0.1 8080", 555, "Connection is not managed by controller.")
	g.want("REDIRECTSTREAM 42 10.0.0.1 8080", "ATTACHSTREAM 42 0", "CLOSESTREAM 42 1")

	g = newEngineRig(t, builtins.Policy{}, false)
	g.decide = func(*ctl.Stream, []string) (starlark.Value, error) {
		return builtins.Redirect{Host: "two words", Then: builtins.Attach{Circuit: "0"}}, nil
	}
	g.event(new42)
	g.want("CLOSESTREAM 42 1")
}

func TestEngineHoldTimesOut(t *testing.T) {
	g := newEngineRig(t, builtins.Policy{Timeout: time.Second}, false)
	g.decide = func(*ctl.Stream, []string) (starlark.Value, error) { return builtins.Hold{}, nil }
	now := time.Unix(1000, 0)
	g.e.now = func() time.Time { return now }
	g.event(new42)
	g.want()
	g.e.sweep(now.Add(500 * time.Millisecond))
	g.want()
	g.e.sweep(now.Add(2 * time.Second))
	g.want("ATTACHSTREAM 42 0")
}

func TestEnginePolicyFails(t *testing.T) {
	g := newEngineRig(t, builtins.Policy{OnError: builtins.Close{Reason: ctl.RelayEndExitPolicy}}, false)
	g.decide = func(*ctl.Stream, []string) (starlark.Value, error) { return nil, errors.New("boom") }
	g.event(new42)
	g.want("CLOSESTREAM 42 4")
	if len(g.fails) != 1 {
		t.Fatalf("failures reported: %q", g.fails)
	}
	// exit() in the policy applies nothing: the end hands the stream back.
	g = newEngineRig(t, builtins.Policy{}, false)
	g.decide = func(*ctl.Stream, []string) (starlark.Value, error) { return nil, errors.New("exit(3)") }
	g.event(new42)
	g.want()
	cmds, _ := g.e.handBack()
	if len(cmds) != 1 || cmds[0].String() != "ATTACHSTREAM 42 0" {
		t.Fatalf("handed back %v", cmds)
	}
}

func TestEngineDryRunSendsNothing(t *testing.T) {
	g := newEngineRig(t, builtins.Policy{}, true)
	g.decide = circuitDecision("7")
	g.event(built7)
	g.event(new42)
	g.want()
	if g.asked != 1 {
		t.Fatalf("dry run asked %d times, want 1", g.asked)
	}
}

func TestEngineHandBack(t *testing.T) {
	g := newEngineRig(t, builtins.Policy{OnError: builtins.Close{Reason: ctl.RelayEndMisc}}, false)
	g.decide = func(s *ctl.Stream, _ []string) (starlark.Value, error) {
		if s.ID == "42" {
			return builtins.Hold{}, nil
		}
		return starlark.String("7"), nil
	}
	g.event(launch7)
	g.event(new42)
	g.event("650 STREAM 45 NEW 0 example.org:80 PURPOSE=USER")
	cmds, ids := g.e.handBack()
	var lines []string
	for _, c := range cmds {
		lines = append(lines, c.String())
	}
	if len(lines) != 2 || !ids["42"] || !ids["45"] || lines[0] != "CLOSESTREAM "+lines[0][12:14]+" 1" {
		t.Fatalf("handed back %q (%v), want both closed per on_error", lines, ids)
	}
}

func TestEngineTakeOver(t *testing.T) {
	g := newEngineRig(t, builtins.Policy{}, false)
	g.decide = circuitDecision("7")
	g.event(built7)
	n := g.e.takeOver([]*ctl.Stream{
		{ID: "50", Status: ctl.StreamNew, CircuitID: "0"},
		{ID: "51", Status: ctl.StreamSucceeded, CircuitID: "7"},
	})
	if n != 1 {
		t.Fatalf("took over %d streams, want 1", n)
	}
	g.want()
	g.runPosted()
	g.want("ATTACHSTREAM 50 7")
}
