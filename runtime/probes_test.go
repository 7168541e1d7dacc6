package runtime

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime/simtor"
	"go.starlark.net/starlark"
)

// newModelTor is the simulated tor with its model (simtor.New): relays,
// circuits, streams and a SocksPort, for the probes' tests.
func newModelTor(t testing.TB) *testTor {
	f := &testTor{Tor: simtor.New(), t: t}
	f.SetConnOptions(ctl.Options{Logger: discardLogger()})
	t.Cleanup(f.Close)
	return f
}

// builtCircuit makes a built circuit through guard, middle and exit.
func builtCircuit(t *testing.T, f *testTor, exit string) string {
	t.Helper()
	id, err := f.CircEvent("BUILT", "", []string{"guard1", "middle1", exit}, "GENERAL", "")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

const printResult = `
def show(r):
    print(r.ok, r.status, repr(r.body), r.body_size, r.exit_nickname, r.circuit, r.reason, r.error)
`

// TestProbeNeedsTheGrant: without the grant net, tor.fetch and
// tor.connect fail before anything reaches tor.
func TestProbeNeedsTheGrant(t *testing.T) {
	t.Parallel()
	for _, call := range []string{`tor.fetch("http://example.com/", on_done = print)`, `tor.connect("example.com", 80, on_done = print)`} {
		f := newModelTor(t)
		r := startScript(t, f, call+"\n", Options{Allow: []string{"load", "SETCONF"}})
		code, err := r.wait(5 * time.Second)
		if code == 0 || err == nil || !strings.Contains(err.Error(), "refused, nothing sent") || !strings.Contains(err.Error(), "--allow net") {
			t.Errorf("%s: exit %d, %v; want refused, nothing sent, --allow net", call, code, err)
		}
		for _, l := range f.Lines() {
			if strings.Contains(l, "socks") || strings.HasPrefix(l, "SETCONF") {
				t.Errorf("%s: sent %q", call, l)
			}
		}
	}
}

// TestProbeWithoutAPolicy: a script with no policy fetches over a circuit
// it names; the runtime sets __LeaveStreamsUnattached, attaches the
// probe's stream to that circuit and every other stream to tor, and sets
// the option back when the script ends.
func TestProbeWithoutAPolicy(t *testing.T) {
	t.Parallel()
	f := newModelTor(t)
	c := builtCircuit(t, f, "exit2")
	r := startScript(t, f, printResult+`
tor.fetch("http://probe.example/page", circuit = "`+c+`", on_done = show)
`, Options{Allow: []string{"net"}})
	r.waitOut(`True 200 b"hello from the simulated destination\n" 37 exit2 ` + c + ` None None`)
	attach := f.Lines("ATTACHSTREAM")
	if len(attach) != 1 || !strings.HasSuffix(attach[0], " "+c) {
		t.Fatalf("ATTACHSTREAM %q, want the probe's to circuit %s", attach, c)
	}
	if v, _ := f.Conf(simtor.LeaveStreams); v != "1" {
		t.Fatalf("%s=%s while the script runs, want 1", simtor.LeaveStreams, v)
	}
	// Another client's stream goes to tor.
	other := f.NewStream("www.example.org:443", "127.0.0.1:50001", "USER", false, "", "")
	f.WaitCommand("ATTACHSTREAM " + other + " 0")
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
	if v, _ := f.Conf(simtor.LeaveStreams); v != "0" {
		t.Errorf("%s=%s after the script, want 0 again", simtor.LeaveStreams, v)
	}
}

// TestProbeBesideAPolicy: the script's policy is never asked about a
// probe's stream; a refusing exit's stream is closed with its reason
// (not given to the policy again), and the result says why.
func TestProbeBesideAPolicy(t *testing.T) {
	t.Parallel()
	f := newModelTor(t)
	f.SetExit("exit3", "EXITPOLICY", false, nil)
	c := builtCircuit(t, f, "exit3")
	r := startScript(t, f, printResult+`
asked = []
def route(s):
    asked.append(s.target)
    return None
tor.policy(route)
def done(r):
    show(r)
    print("asked", asked)
tor.every("10ms", lambda: None)
tor.after("1ms", lambda: tor.fetch("http://probe.example/", circuit = "`+c+`", on_done = done))
`, Options{Allow: []string{"net"}})
	r.waitOut("asked []")
	r.waitOut(`False None b"" 0 None None EXITPOLICY tor refused the stream: socks: not allowed`)
	if got := f.Lines("CLOSESTREAM"); len(got) != 1 || !strings.HasSuffix(got[0], " 4") {
		t.Errorf("CLOSESTREAM %q, want one with reason 4 (EXITPOLICY)", got)
	}
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
}

// TestProbeTimesOut: an exit that never answers: the probe ends at its
// timeout, with the time it took.
func TestProbeTimesOut(t *testing.T) {
	t.Parallel()
	f := newModelTor(t)
	f.SetExit("exit1", "", true, nil)
	c := builtCircuit(t, f, "exit1")
	r := startScript(t, f, `
def done(r):
    print(r.ok, r.error, r.elapsed >= 0.3, r.connect_time)
tor.connect("probe.example", 7, circuit = "`+c+`", send = b"hi", on_done = done, timeout = 0.3)
`, Options{Allow: []string{"net"}})
	r.waitOut("False timed out True None")
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
}

// TestProbesQueue: more probes than run at once all end, each once, each
// on its own stream.
func TestProbesQueue(t *testing.T) {
	t.Parallel()
	f := newModelTor(t)
	c := builtCircuit(t, f, "exit1")
	n := maxProbes + 8
	r := startScript(t, f, fmt.Sprintf(`
seen = {}
def done(r):
    if not r.ok:
        print("failed", r.error)
    seen[r.stream] = True
    if len(seen) == %d:
        print("all done")
for _ in range(%d):
    tor.connect("probe.example", 7, circuit = "%s", on_done = done, max_read = 4)
`, n, n, c), Options{Allow: []string{"net"}})
	r.waitOutWithin("all done", 10*time.Second)
	if strings.Contains(r.out.String(), "failed") {
		t.Errorf("a probe failed:\n%s", r.out.String())
	}
	if got := len(f.Lines("ATTACHSTREAM")); got != n {
		t.Errorf("%d ATTACHSTREAM, want %d", got, n)
	}
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
}

// TestProbeOutwaitsThePolicyTimeout: a probe's stream waits for its
// circuit as long as the probe's own timeout, even past the policy's,
// whose on_error would send it over another circuit.
func TestProbeOutwaitsThePolicyTimeout(t *testing.T) {
	t.Parallel()
	f := newModelTor(t)
	c, err := f.CircEvent("LAUNCHED", "", []string{"guard1", "middle1", "exit2"}, "GENERAL", "")
	if err != nil {
		t.Fatal(err)
	}
	r := startScript(t, f, printResult+`
tor.policy(lambda s: None, timeout = "300ms")
tor.after("1ms", lambda: tor.fetch("http://probe.example/", circuit = "`+c+`", on_done = show, timeout = "10s"))
`, Options{Allow: []string{"net"}})
	r.waitLog("policy started")
	time.Sleep(time.Second) // three times the policy's timeout
	if strings.Contains(r.log.String(), "on_error applies") {
		t.Fatalf("on_error applied to the probe's stream:\n%s", r.log.String())
	}
	if got := f.Lines("ATTACHSTREAM"); len(got) != 0 {
		t.Fatalf("ATTACHSTREAM %q before the circuit was built", got)
	}
	if _, err := f.CircEvent("BUILT", c, nil, "", ""); err != nil {
		t.Fatal(err)
	}
	r.waitOut(`True 200 b"hello from the simulated destination\n" 37 exit2 ` + c)
	if got := f.Lines("ATTACHSTREAM"); len(got) != 1 {
		t.Errorf("ATTACHSTREAM %q, want one, to circuit %s", got, c)
	}
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
}

// TestPolicyAfterAProbe: a tor.policy set after a probe started the
// runtime's own policy takes it over: it decides the next client stream,
// and __LeaveStreamsUnattached is set back once, at the end.
func TestPolicyAfterAProbe(t *testing.T) {
	t.Parallel()
	f := newModelTor(t)
	c := builtCircuit(t, f, "exit1")
	r := startScript(t, f, `
def route(s):
    print("asked", s.target)
    return "`+c+`"
def done(res):
    print("probe", res.ok)
    tor.policy(route)
    print("policy set")
tor.fetch("http://probe.example/", circuit = "`+c+`", on_done = done)
`, Options{Allow: []string{"net"}})
	r.waitOut("policy set")
	r.waitLog("taking over from the runtime's own")
	s := f.NewStream("www.example.org:443", "127.0.0.1:50001", "USER", false, "", "")
	r.waitOut("asked www.example.org:443")
	f.WaitCommand("ATTACHSTREAM " + s + " " + c)
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
	if v, _ := f.Conf(simtor.LeaveStreams); v != "0" {
		t.Errorf("%s=%s after the script, want 0 again", simtor.LeaveStreams, v)
	}
	if n := len(f.Lines("SETCONF " + simtor.LeaveStreams + "=1")); n != 1 {
		t.Errorf("%s set %d times, want once", simtor.LeaveStreams, n)
	}
}

// TestProbeResultWaitsForItsStreamsEvents: a probe's network part can end
// before the loop has handled tor's events about its stream (they come on
// the control connection, the answer on the SOCKS one): a success is
// delivered once SENTCONNECT or SUCCEEDED says which circuit carried it,
// not at once without one; a failure before tor had a stream at once.
func TestProbeResultWaitsForItsStreamsEvents(t *testing.T) {
	r := New(Options{Logger: discardLogger(), Stdout: io.Discard})
	var got []string
	onDone := starlark.NewBuiltin("on_done", func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
		v := args[0].(starlark.HasAttrs)
		ok, _ := v.Attr("ok")
		circ, _ := v.Attr("circuit")
		got = append(got, ok.String()+" "+circ.String())
		return starlark.None, nil
	})
	ps := &r.probes
	ps.byUser, ps.byStream = map[string]*probe{}, map[string]*probe{}
	newProbe := func(user string) *probe {
		pr := &probe{p: &builtins.Probe{Kind: "connect", Host: "example.com", Port: 80, Circuit: "5", OnDone: onDone}, user: user, h: handler{fn: onDone}}
		ps.byUser[user] = pr
		return pr
	}
	pr := newProbe("u1")
	ps.onStream(r, &ctl.StreamEvent{Stream: ctl.Stream{ID: "7", Status: ctl.StreamNew, CircuitID: "0", SocksUsername: "u1"}})
	r.probeNetDone(pr, builtins.ProbeResult{Sent: 3})
	if len(got) != 0 {
		t.Fatalf("delivered before tor said which circuit carried the stream: %q", got)
	}
	ps.onStream(r, &ctl.StreamEvent{Stream: ctl.Stream{ID: "7", Status: ctl.StreamSucceeded, CircuitID: "5"}})
	if len(got) != 1 || got[0] != `True "5"` {
		t.Fatalf("after SUCCEEDED: %q, want one success on circuit 5", got)
	}
	// A failure before tor had a stream for it comes at once.
	pr = newProbe("u2")
	r.probeNetDone(pr, builtins.ProbeResult{Err: "socks: connection refused"})
	if len(got) != 2 || got[1] != "False None" {
		t.Fatalf("a failure without a stream: %q", got)
	}
}
