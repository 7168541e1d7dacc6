package runtime

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl"
)

// Lines of circuit-status and events shared by the policy tests.
const (
	fpA = "$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~guard"
	fpB = "$BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB~middle"
	fpC = "$CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC~exit"

	circ5Built    = "5 BUILT " + fpA + "," + fpB + "," + fpC + " BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL TIME_CREATED=2024-05-01T10:00:00.000000"
	circ9Launched = "9 LAUNCHED BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL TIME_CREATED=2024-05-01T10:00:01.000000"

	stream7New = "STREAM 7 NEW 0 example.com:80 SOURCE_ADDR=127.0.0.1:5000 PURPOSE=USER"
	stream8New = "STREAM 8 NEW 0 example.org:443 SOURCE_ADDR=127.0.0.1:5001 PURPOSE=USER"
)

// streamCommands are the commands that act on streams.
var streamCommands = []string{"ATTACHSTREAM", "CLOSESTREAM", "REDIRECTSTREAM"}

// policyScript wraps a policy body: the policy prints "asked ID
// FAILED_CIRCUITS" and then runs body.
func policyScript(body, policyArgs string) string {
	return `
def policy(s):
    print("asked", s.id, s.failed_circuits)
` + indent(body) + `
tor.policy(policy` + policyArgs + `)
`
}

func indent(s string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n")
}

func checkLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// buildLater sends launched, then built, 50ms apart, and records in
// *builtSent (under f.mu) when built was sent.
func (f *testTor) buildLater(launched, built string, builtSent *time.Time) {
	time.Sleep(50 * time.Millisecond)
	f.Event(launched)
	time.Sleep(50 * time.Millisecond)
	f.locked(func() { *builtSent = time.Now() })
	f.Event(built)
}

// refuseFirst answers the first command equal to line with what first
// returns (called with the simulated tor unlocked) and the later ones with
// 250 OK.
func (f *testTor) refuseFirst(line string, first func() string) {
	n := 0
	f.Answer(func(l string) (string, bool) {
		if l != line {
			return "", false
		}
		n++
		if n > 1 {
			return "250 OK", true
		}
		return first(), true
	})
}

// circuitOnce is a policy body that sends a stream to circuit id, and
// lets tor choose once a circuit failed it.
func circuitOnce(id string) string {
	return `
if s.failed_circuits:
    return None
return "` + id + `"`
}

// startWithCircuits starts src against a simulated tor whose
// circuit-status is circs.
func startWithCircuits(t *testing.T, circs, src string, opts Options) (*testTor, *scriptRun) {
	t.Helper()
	f := newTestTor(t)
	f.SetInfo("circuit-status", circs)
	return f, startScript(t, f, src, opts)
}

// stopChecked stops the script, which must end with exit code 0, and
// checks the stream commands the simulated tor received.
func stopChecked(t *testing.T, r *scriptRun, want []string) {
	t.Helper()
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
	checkLines(t, "stream commands", r.f.Lines(streamCommands...), want)
}

func checkExit(t *testing.T, r *scriptRun, code int, err error, want int) {
	t.Helper()
	if code != want || err != nil {
		t.Errorf("Run = %d, %v; want %d, nil\nlog:\n%s", code, err, want, r.log.String())
	}
}

// TestPolicyDecisions checks the exact command each kind of decision sends.
func TestPolicyDecisions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"none", `return None`, []string{"ATTACHSTREAM 7 0"}},
		{"attach none", `return tor.attach(None)`, []string{"ATTACHSTREAM 7 0"}},
		{"circuit id string", `return "5"`, []string{"ATTACHSTREAM 7 5"}},
		{"circuit id int", `return 5`, []string{"ATTACHSTREAM 7 5"}},
		{"circuit value", `return tor.circuit(5)`, []string{"ATTACHSTREAM 7 5"}},
		{"circuit from list", `return [c for c in tor.circuits() if c.built][0]`, []string{"ATTACHSTREAM 7 5"}},
		{"attach hop", `return tor.attach(5, hop=2)`, []string{"ATTACHSTREAM 7 5 HOP=2"}},
		{"close", `return tor.close("EXITPOLICY")`, []string{"CLOSESTREAM 7 4"}},
		{"close default", `return tor.close()`, []string{"CLOSESTREAM 7 1"}},
		{"redirect", `return tor.redirect("10.0.0.1", port=8080)`, []string{"REDIRECTSTREAM 7 10.0.0.1 8080", "ATTACHSTREAM 7 0"}},
		{"redirect then", `return tor.redirect("example.net", then=tor.attach(5, hop=3))`, []string{"REDIRECTSTREAM 7 example.net", "ATTACHSTREAM 7 5 HOP=3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, r := startWithCircuits(t, circ5Built, policyScript(tc.body, ""), Options{})
			r.newStream7()
			f.WaitCommand(tc.want[len(tc.want)-1])
			code, err := r.stop()
			checkExit(t, r, code, err, 0)
			// Nothing more at shutdown: the stream was handed to tor.
			checkLines(t, "stream commands", f.Lines(streamCommands...), tc.want)
			if got := strings.Count(r.out.String(), "asked 7 ()"); got != 1 {
				t.Errorf("policy called %d times, want 1; stdout:\n%s", got, r.out.String())
			}
			if strings.Contains(r.log.String(), "level=ERROR") {
				t.Errorf("errors logged:\n%s", r.log.String())
			}
		})
	}
}

// TestPolicyStartCommands checks what tor.policy sends and what the end of
// the script undoes.
func TestPolicyStartCommands(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	r := startScript(t, f, policyScript("return None", `, map={"a.virtual": "10.1.2.3"}`), Options{})
	f.WaitCommand("MAPADDRESS a.virtual=10.1.2.3")
	r.waitLog("policy started")
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
	checkLines(t, "commands", f.Lines(), []string{
		"GETCONF __LeaveStreamsUnattached",
		"SETCONF __LeaveStreamsUnattached=1",
		"SETEVENTS CIRC STREAM",
		"GETINFO circuit-status",
		"GETINFO stream-status",
		"MAPADDRESS a.virtual=10.1.2.3",
		// shutdown
		"SETCONF __LeaveStreamsUnattached=0",
		"GETINFO stream-status",
		"MAPADDRESS a.virtual=a.virtual",
	})
}

// TestPolicyHoldThenAttachStream: a held stream is attached by a timer
// with tor.attach_stream, and not handed back at exit.
func TestPolicyHoldThenAttachStream(t *testing.T) {
	t.Parallel()
	f, r := startWithCircuits(t, circ5Built, `
held = []
def later():
    for s in held:
        tor.attach_stream(s, 5)
    print("attached", len(held))
def policy(s):
    held.append(s)
    tor.after("50ms", later)
    return tor.hold()
tor.policy(policy)
`, Options{})
	r.started()
	sent := time.Now()
	f.Event(stream7New)
	c := f.WaitCommand("ATTACHSTREAM 7 5")
	if d := c.At.Sub(sent); d < 50*time.Millisecond {
		t.Errorf("attached %v after NEW, before the 50ms timer", d)
	}
	r.waitOut("attached 1")
	stopChecked(t, r, []string{"ATTACHSTREAM 7 5"})
}

// TestPolicyInternalStreams: tor attaches its own directory streams
// itself, so their NEW gets no command and no policy call (an ATTACHSTREAM
// would race tor's); one that tor leaves waiting (CONTROLLER_WAIT) goes to
// tor, or to the policy with all_streams.
func TestPolicyInternalStreams(t *testing.T) {
	t.Parallel()
	const (
		dirFetch = "STREAM 7 NEW 0 1.2.3.4:443 SOURCE_ADDR=(Tor_internal):0 PURPOSE=DIR_FETCH"
		waiting  = "STREAM 7 CONTROLLER_WAIT 0 1.2.3.4:443"
		userNew  = "STREAM 8 NEW 0 example.com:80 SOURCE_ADDR=127.0.0.1:5000 PURPOSE=USER"
	)
	for _, tc := range []struct {
		name, args, body string
		want             []string
		asked            string
	}{
		{"default", "", `return None if s.id == "8" else tor.close()`, []string{"ATTACHSTREAM 8 0", "ATTACHSTREAM 7 0"}, "asked 8 ()"},
		{"all_streams", ", all_streams=True", `return 5`, []string{"ATTACHSTREAM 8 5", "ATTACHSTREAM 7 5"}, "asked 8 ()\nasked 7 ()"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, r := startWithCircuits(t, circ5Built, policyScript(tc.body, tc.args), Options{})
			r.started()
			f.Event(dirFetch, userNew) // the user stream's attach shows the DIR_FETCH was passed over
			f.WaitCommand(tc.want[0])
			f.Event(waiting)
			f.WaitCommand(tc.want[1])
			stopChecked(t, r, tc.want)
			if out := strings.TrimSpace(r.out.String()); out != tc.asked {
				t.Errorf("policy calls %q, want %q", out, tc.asked)
			}
		})
	}
}

// TestPolicyWaitsForCircuit: a stream sent to a circuit not yet built is
// attached when CIRC BUILT arrives, or decided again when it fails.
func TestPolicyWaitsForCircuit(t *testing.T) {
	t.Parallel()
	body := circuitOnce("9")
	// waiting starts the policy and a stream it sends to circuit 9.
	waiting := func(t *testing.T) (*testTor, *scriptRun) {
		f, r := startWithCircuits(t, circ9Launched, policyScript(body, ""), Options{})
		r.newStream7()
		r.waitOut("asked 7 ()")
		return f, r
	}
	t.Run("built", func(t *testing.T) {
		t.Parallel()
		f, r := waiting(t)
		f.Event("CIRC 9 EXTENDED " + fpA + " PURPOSE=GENERAL")
		time.Sleep(100 * time.Millisecond)
		if l := f.Lines(streamCommands...); len(l) > 0 {
			t.Fatalf("stream commands before the circuit was built: %q", l)
		}
		f.Event("CIRC 9 BUILT " + fpA + "," + fpB + "," + fpC + " PURPOSE=GENERAL")
		f.WaitCommand("ATTACHSTREAM 7 9")
		stopChecked(t, r, []string{"ATTACHSTREAM 7 9"})
	})
	t.Run("failed", func(t *testing.T) {
		t.Parallel()
		f, r := waiting(t)
		f.Event("CIRC 9 FAILED " + fpA + " PURPOSE=GENERAL REASON=TIMEOUT")
		r.waitOut(`asked 7 ("9",)`)
		f.WaitCommand("ATTACHSTREAM 7 0")
		stopChecked(t, r, []string{"ATTACHSTREAM 7 0"})
	})
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		// A circuit that never gets built: on_error after the policy's
		// timeout.
		f, r := startWithCircuits(t, circ9Launched, policyScript(body, `, on_error="close", timeout="300ms"`), Options{})
		r.started()
		sent := time.Now()
		f.Event(stream7New)
		c := f.WaitCommand("CLOSESTREAM 7 1")
		if d := c.At.Sub(sent); d < 300*time.Millisecond || d > 1500*time.Millisecond {
			t.Errorf("on_error applied %v after NEW; want after the 300ms timeout, soon", d)
		}
		r.stop()
		checkLines(t, "stream commands", f.Lines(streamCommands...), []string{"CLOSESTREAM 7 1"})
		if !strings.Contains(r.log.String(), "waiting for circuit 9") {
			t.Errorf("log does not say what the stream waited for:\n%s", r.log.String())
		}
	})
}

// TestPolicyAttachRaces covers tor refusing ATTACHSTREAM.
func TestPolicyAttachRaces(t *testing.T) {
	t.Parallel()
	body := circuitOnce("5")
	for _, tc := range []struct {
		name  string
		reply string
		want  []string
		asked []string // what the policy printed
	}{
		{"unknown stream", `552 Unknown stream "7"`, []string{"ATTACHSTREAM 7 5"}, []string{"asked 7 ()"}},
		{"not managed", `555 Connection is not managed by controller.`, []string{"ATTACHSTREAM 7 5"}, []string{"asked 7 ()"}},
		{"unknown circuit", `552 Unknown circuit "5"`, []string{"ATTACHSTREAM 7 5", "ATTACHSTREAM 7 0"}, []string{"asked 7 ()", `asked 7 ("5",)`}},
		// 551 for a circuit known to be built: unusable, ask again.
		{"cannot attach", `551 Can't attach stream to non-open origin circuit`, []string{"ATTACHSTREAM 7 5", "ATTACHSTREAM 7 0"}, []string{"asked 7 ()", `asked 7 ("5",)`}},
		// Any other refusal: on_error.
		{"other", `550 Something else`, []string{"ATTACHSTREAM 7 5", "ATTACHSTREAM 7 0"}, []string{"asked 7 ()"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newTestTor(t)
			f.SetInfo("circuit-status", circ5Built)
			f.ReplyLine("ATTACHSTREAM 7 5", tc.reply)
			r := startScript(t, f, policyScript(body, ""), Options{})
			r.newStream7()
			f.WaitCommand(tc.want[len(tc.want)-1])
			// Let a wrong retry show itself.
			time.Sleep(100 * time.Millisecond)
			stopChecked(t, r, tc.want)
			checkLines(t, "policy calls", strings.Split(strings.TrimSpace(r.out.String()), "\n"), tc.asked)
		})
	}
}

// circ12Launched is the first CIRC event of circuit 12.
const circ12Launched = "CIRC 12 LAUNCHED BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL"

// circ12Built is the CIRC event of circuit 12, the one the fake's
// EXTENDCIRCUIT makes, built.
const circ12Built = "CIRC 12 BUILT " + fpA + "," + fpB + "," + fpC + " BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL"

// TestPolicyLaunchedCircuit: the policy builds a circuit with
// tor.extend_circuit and returns its id. The stream waits for the circuit
// to be built, even though its first CIRC event comes after the policy
// returned, and is attached once, when it is.
func TestPolicyLaunchedCircuit(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	var builtSent time.Time
	f.Answer(func(line string) (string, bool) {
		if line != "EXTENDCIRCUIT 0" {
			return "", false
		}
		go f.buildLater(circ12Launched, circ12Built, &builtSent)
		return "250 EXTENDED 12", true
	})
	r := startScript(t, f, policyScript(`return tor.extend_circuit()`, ""), Options{})
	r.newStream7()
	c := f.WaitCommand("ATTACHSTREAM 7 12")
	f.mu.Lock()
	if c.At.Before(builtSent) || builtSent.IsZero() {
		t.Errorf("attached before CIRC 12 BUILT was sent")
	}
	f.mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
	checkLines(t, "commands", f.Lines(append([]string{"EXTENDCIRCUIT"}, streamCommands...)...),
		[]string{"EXTENDCIRCUIT 0", "ATTACHSTREAM 7 12"})
}

// TestPolicyFreshCircuit: the policy returns a circuit someone else is
// building, before its first CIRC event reaches us. Tor refuses the attach
// (551, not built yet); the stream is attached when the circuit is built.
func TestPolicyFreshCircuit(t *testing.T) {
	t.Parallel()
	const (
		launched = circ12Launched
		built    = circ12Built
		notOpen  = "551 Can't attach stream to non-open origin circuit"
	)
	body := circuitOnce("12")
	t.Run("events later", func(t *testing.T) {
		t.Parallel()
		f := newTestTor(t)
		var builtSent time.Time
		f.refuseFirst("ATTACHSTREAM 7 12", func() string {
			go f.buildLater(launched, built, &builtSent)
			return notOpen
		})
		r := startScript(t, f, policyScript(body, ""), Options{})
		r.newStream7()
		c := f.WaitCommand("ATTACHSTREAM 7 12", 2)
		f.mu.Lock()
		if c.At.Before(builtSent) {
			t.Errorf("attached again before CIRC 12 BUILT was sent")
		}
		f.mu.Unlock()
		code, err := r.stop()
		checkExit(t, r, code, err, 0)
		checkLines(t, "commands", f.Lines(streamCommands...), []string{"ATTACHSTREAM 7 12", "ATTACHSTREAM 7 12"})
		checkLines(t, "policy calls", strings.Split(strings.TrimSpace(r.out.String()), "\n"), []string{"asked 7 ()"})
	})
	t.Run("events before the refusal is handled", func(t *testing.T) {
		t.Parallel()
		// Tor sends the 551 and then, at once, LAUNCHED and BUILT. The
		// loop is busy in a handler meanwhile, so when it is free it finds
		// the circuit events queued ahead of the reply's task: by the time
		// it handles the 551 the circuit is already BUILT. The stream
		// should still be attached to it, not counted as failed there.
		f := newTestTor(t)
		f.refuseFirst("ATTACHSTREAM 7 12", func() string {
			f.Event("BW 1 1") // keeps the loop busy for 300ms
			time.Sleep(50 * time.Millisecond)
			return notOpen + "\n650 " + launched + "\n650 " + built
		})
		r := startScript(t, f, `
def busy(e):
    t0 = time.now()
    while time.now() - t0 < 300 * time.millisecond:
        pass
    print("busy done")
tor.on("bw", busy)
`+policyScript(body, ""), Options{MaxSteps: 1e12})
		r.newStream7()
		r.waitOut("busy done")
		time.Sleep(100 * time.Millisecond)
		stopChecked(t, r, []string{"ATTACHSTREAM 7 12", "ATTACHSTREAM 7 12"})
		if strings.Contains(r.out.String(), `asked 7 ("12",)`) {
			t.Errorf("the policy was told circuit 12 failed, but it was built:\n%s", r.out.String())
		}
	})
}

// TestPolicyDetached: a stream detached from its circuit is decided again.
func TestPolicyDetached(t *testing.T) {
	t.Parallel()
	f, r := startWithCircuits(t, circ5Built, policyScript(circuitOnce("5"), ""), Options{})
	r.newStream7()
	f.WaitCommand("ATTACHSTREAM 7 5")
	f.Event("STREAM 7 SENTCONNECT 5 example.com:80",
		"STREAM 7 DETACHED 5 example.com:80 REASON=END REMOTE_REASON=MISC")
	r.waitOut(`asked 7 ("5",)`)
	f.WaitCommand("ATTACHSTREAM 7 0")
	stopChecked(t, r, []string{"ATTACHSTREAM 7 5", "ATTACHSTREAM 7 0"})
}

// TestPolicySupervision: a policy that fails, returns nonsense or overruns
// leaves the stream to on_error, and the log says where.
func TestPolicySupervision(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body, args string
		opts             Options
		want             string
		logs             []string
	}{
		{"fail tor", `fail("boom")`, "", Options{}, "ATTACHSTREAM 7 0", []string{"Traceback", "boom", "x.star:4:"}},
		{"fail close", `fail("boom")`, `, on_error="close"`, Options{}, "CLOSESTREAM 7 1", []string{"boom"}},
		{"fail close reason", `1 // 0`, `, on_error=tor.close("DONE")`, Options{}, "CLOSESTREAM 7 6", []string{"Traceback", "division by zero", "x.star:4:"}},
		{"bad decision", `return 3.5`, "", Options{}, "ATTACHSTREAM 7 0", []string{"policy returned float"}},
		{"step budget", "while True:\n    pass", "", Options{MaxSteps: 10000}, "ATTACHSTREAM 7 0", []string{"Traceback", "in policy", "x.star:", "too many steps"}},
		{"wall deadline", "while True:\n    tor.circuit(5)", `, on_error="close"`, Options{MaxSteps: 1e15, HandlerTimeout: 100 * time.Millisecond},
			"CLOSESTREAM 7 1", []string{"Traceback", "handler timeout", "in policy", "x.star:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, r := startWithCircuits(t, circ5Built, policyScript(tc.body, tc.args), tc.opts)
			r.started()
			sent := time.Now()
			f.Event(stream7New)
			c := f.WaitCommand(tc.want)
			if d := c.At.Sub(sent); d > time.Second {
				t.Errorf("on_error applied %v after NEW, want within 1s", d)
			}
			stopChecked(t, r, []string{tc.want})
			log := r.log.String()
			for _, s := range append([]string{"policy failed; on_error applies"}, tc.logs...) {
				if !strings.Contains(log, s) {
					t.Errorf("log lacks %q:\n%s", s, log)
				}
			}
		})
	}
}

// TestPolicyAfterOverrun: after a call was stopped by the wall deadline,
// the next call runs normally and its commands work.
func TestPolicyAfterOverrun(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	f.SetInfo("circuit-status", circ5Built)
	f.Answer(func(line string) (string, bool) {
		if line == "EXTENDCIRCUIT 0" {
			return "250 EXTENDED 12\n650 " + circ12Built, true
		}
		return "", false
	})
	r := startScript(t, f, policyScript(`
if s.id == "7":
    while True:
        tor.circuit(5)
return tor.extend_circuit()`, ""), Options{MaxSteps: 1e15, HandlerTimeout: 100 * time.Millisecond})
	r.newStream7()
	f.WaitCommand("ATTACHSTREAM 7 0")
	f.Event(stream8New)
	f.WaitCommand("ATTACHSTREAM 8 12")
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
}

// TestPolicyHoldTimeout: a held stream nobody attaches gets on_error after
// the policy's timeout.
func TestPolicyHoldTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ args, want string }{
		{`, timeout="300ms"`, "ATTACHSTREAM 7 0"},
		{`, timeout="300ms", on_error="close"`, "CLOSESTREAM 7 1"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			t.Parallel()
			f := newTestTor(t)
			r := startScript(t, f, policyScript(`return tor.hold()`, tc.args), Options{})
			r.started()
			sent := time.Now()
			f.Event(stream7New)
			c := f.WaitCommand(tc.want)
			if d := c.At.Sub(sent); d < 300*time.Millisecond || d > 1500*time.Millisecond {
				t.Errorf("%s: on_error applied %v after NEW; want after the 300ms timeout, soon", tc.args, d)
			}
			stopChecked(t, r, []string{tc.want})
			if !strings.Contains(r.log.String(), "stream waited longer than the policy timeout") {
				t.Errorf("log:\n%s", r.log.String())
			}
		})
	}
}

// TestPolicyShutdown: at exit, held streams go back to tor (or are closed
// per on_error), __LeaveStreamsUnattached gets its earlier value and the
// policy's mappings are removed.
func TestPolicyShutdown(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, leave, args string
		want              []string
	}{
		{"was 0", "0", "", []string{"SETCONF __LeaveStreamsUnattached=0", "ATTACHSTREAM 7 0"}},
		{"was unset", "", "", []string{"RESETCONF __LeaveStreamsUnattached", "ATTACHSTREAM 7 0"}},
		{"close", "0", `, on_error="close"`, []string{"SETCONF __LeaveStreamsUnattached=0", "CLOSESTREAM 7 1"}},
		{"close reason", "0", `, on_error=tor.close("TIMEOUT")`, []string{"SETCONF __LeaveStreamsUnattached=0", "CLOSESTREAM 7 7"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newTestTor(t)
			f.SetConf(leaveStreams, tc.leave, tc.leave != "")
			r := startScript(t, f, policyScript(`return tor.hold()`, tc.args+`, map={"a.virtual": "b.virtual"}`), Options{})
			r.newStream7()
			r.waitOut("asked 7 ()")
			n := len(f.Commands())
			code, err := r.stop()
			checkExit(t, r, code, err, 0)
			var after []string
			for _, c := range f.Commands()[n:] {
				after = append(after, c.Line)
			}
			checkLines(t, "commands at exit", after, append(tc.want, "GETINFO stream-status", "MAPADDRESS a.virtual=a.virtual"))
		})
	}
}

// TestPolicyShutdownLateStreams: streams that tor announced but the loop
// never read are handed back at exit too.
func TestPolicyShutdownLateStreams(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	r := startScript(t, f, policyScript(`return tor.hold()`, ""), Options{})
	r.started()
	f.SetInfo("stream-status", "9 NEW 0 example.com:80\n10 SUCCEEDED 5 example.com:443")
	stopChecked(t, r, []string{"ATTACHSTREAM 9 0"})
}

// TestPolicyExit: exit(3) from a handler or from the policy ends Run with
// code 3 and still restores tor.
func TestPolicyExit(t *testing.T) {
	t.Parallel()
	t.Run("handler", func(t *testing.T) {
		t.Parallel()
		f := newTestTor(t)
		r := startScript(t, f, `
tor.on("circ", lambda c: exit(3))
`+policyScript(`return tor.hold()`, ""), Options{})
		r.newStream7()
		r.waitOut("asked 7 ()")
		f.Event("CIRC 5 LAUNCHED PURPOSE=GENERAL")
		code, err := r.wait(5 * time.Second)
		checkExit(t, r, code, err, 3)
		checkLines(t, "restore", f.Lines("SETCONF", "ATTACHSTREAM"), []string{
			"SETCONF __LeaveStreamsUnattached=1", "SETCONF __LeaveStreamsUnattached=0", "ATTACHSTREAM 7 0"})
	})
	t.Run("policy", func(t *testing.T) {
		t.Parallel()
		f := newTestTor(t)
		r := startScript(t, f, policyScript(`exit(3)`, `, on_error="close"`), Options{})
		r.newStream7()
		code, err := r.wait(5 * time.Second)
		checkExit(t, r, code, err, 3)
		checkLines(t, "restore", f.Lines("SETCONF", "ATTACHSTREAM", "CLOSESTREAM"), []string{
			"SETCONF __LeaveStreamsUnattached=1", "SETCONF __LeaveStreamsUnattached=0", "CLOSESTREAM 7 1"})
	})
	t.Run("timer", func(t *testing.T) {
		t.Parallel()
		f := newTestTor(t)
		r := startScript(t, f, `
tor.after("50ms", lambda: exit(3))
`+policyScript(`return None`, ""), Options{})
		code, err := r.wait(5 * time.Second)
		checkExit(t, r, code, err, 3)
		checkLines(t, "restore", f.Lines("SETCONF"), []string{
			"SETCONF __LeaveStreamsUnattached=1", "SETCONF __LeaveStreamsUnattached=0"})
	})
}

// TestPolicyTakeOverOnStart: __LeaveStreamsUnattached was already 1 and a
// stream waits: the policy takes it over, says so, and puts 1 back at exit.
func TestPolicyTakeOverOnStart(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	f.SetConf(leaveStreams, "1", true)
	f.SetInfo("circuit-status", circ5Built)
	f.SetInfo("stream-status", "3 NEW 0 example.com:443\n4 SUCCEEDED 5 example.com:80")
	r := startScript(t, f, policyScript(`return 5`, ""), Options{})
	f.WaitCommand("ATTACHSTREAM 3 5")
	r.waitOut("asked 3 ()")
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
	if !strings.Contains(r.log.String(), "level=WARN") || !strings.Contains(r.log.String(), "was already 1 and streams were waiting") {
		t.Errorf("no warning about taking over:\n%s", r.log.String())
	}
	checkLines(t, "stream commands", f.Lines(streamCommands...), []string{"ATTACHSTREAM 3 5"})
	checkLines(t, "SETCONF", f.Lines("SETCONF", "RESETCONF"), []string{
		"SETCONF __LeaveStreamsUnattached=1", "SETCONF __LeaveStreamsUnattached=1"})
	// Streams waiting at exit may be another controller's: not handed back.
	if n := len(f.Lines("GETINFO stream-status")); n != 1 {
		t.Errorf("GETINFO stream-status sent %d times, want 1 (at start)", n)
	}
}

// TestPolicyDryRun: the policy is called and its decision logged, but
// tor attaches the streams.
func TestPolicyDryRun(t *testing.T) {
	t.Parallel()
	f, r := startWithCircuits(t, circ5Built, policyScript(`return tor.close()`, `, map={"a.virtual": "b.virtual"}`), Options{DryRun: true})
	r.waitLog("policy started")
	f.Event(stream7New)
	r.waitLog("dry run: decision not applied")
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
	if l := f.Lines(append([]string{"SETCONF", "RESETCONF", "MAPADDRESS"}, streamCommands...)...); len(l) > 0 {
		t.Errorf("dry run changed tor: %q", l)
	}
}

// TestPolicyAsksBounded: a policy that keeps choosing a circuit tor
// refuses is asked at most 8 times; then on_error applies.
func TestPolicyAsksBounded(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	f.SetInfo("circuit-status", circ5Built)
	f.ReplyLine("ATTACHSTREAM 7 5", `552 Unknown circuit "5"`)
	r := startScript(t, f, policyScript(`return 5`, `, on_error="close"`), Options{})
	r.newStream7()
	f.WaitCommand("CLOSESTREAM 7 1")
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
	want := slices.Repeat([]string{"ATTACHSTREAM 7 5"}, 8)
	checkLines(t, "stream commands", f.Lines(streamCommands...), append(want, "CLOSESTREAM 7 1"))
	if !strings.Contains(r.log.String(), "asked about a stream too often") {
		t.Errorf("log:\n%s", r.log.String())
	}
}

// TestPolicyHandlesStreamItself: a policy that attaches the stream with
// tor.attach_stream has decided; its return value is not applied.
func TestPolicyHandlesStreamItself(t *testing.T) {
	t.Parallel()
	f, r := startWithCircuits(t, circ5Built, policyScript(`
tor.attach_stream(s, 5, hop=2)
return None`, ""), Options{})
	r.newStream7()
	f.WaitCommand("ATTACHSTREAM 7 5 HOP=2")
	time.Sleep(50 * time.Millisecond)
	stopChecked(t, r, []string{"ATTACHSTREAM 7 5 HOP=2"})
}

// TestPolicyHeldStreamEnds: a held stream that tor closes is forgotten:
// no on_error for it, nothing at exit.
func TestPolicyHeldStreamEnds(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	r := startScript(t, f, policyScript(`return tor.hold()`, `, timeout="200ms"`), Options{})
	r.newStream7()
	r.waitOut("asked 7 ()")
	f.Event("STREAM 7 CLOSED 0 example.com:80 REASON=END")
	time.Sleep(500 * time.Millisecond)
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
	if l := f.Lines(streamCommands...); len(l) > 0 {
		t.Errorf("commands for a closed stream: %q", l)
	}
}

// TestPolicyShutdownWaitingForCircuit: a stream waiting for its circuit
// when the script ends goes back to tor.
func TestPolicyShutdownWaitingForCircuit(t *testing.T) {
	t.Parallel()
	_, r := startWithCircuits(t, circ9Launched, policyScript(`return 9`, ""), Options{})
	r.newStream7()
	r.waitOut("asked 7 ()")
	stopChecked(t, r, []string{"ATTACHSTREAM 7 0"})
}

// TestPolicyExitMidBatch: exit() from a handler with a new stream queued
// behind its event: the stream is handed back, not left waiting.
func TestPolicyExitMidBatch(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	r := startScript(t, f, `
tor.on("circ", lambda c: exit(3))
`+policyScript(`return 5`, ""), Options{})
	r.started()
	f.Event("CIRC 5 LAUNCHED PURPOSE=GENERAL", stream8New)
	code, err := r.wait(5 * time.Second)
	checkExit(t, r, code, err, 3)
	checkLines(t, "stream commands", f.Lines(streamCommands...), []string{"ATTACHSTREAM 8 0"})
	if strings.Contains(r.out.String(), "asked 8") {
		t.Errorf("the policy ran after exit(): %q", r.out.String())
	}
}

// TestPolicyTopLevelEnds: a top level that sets a policy and then fails
// or exits never set __LeaveStreamsUnattached: the policy takes streams
// only once the top level has returned.
func TestPolicyTopLevelEnds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, tail string
		code       int
	}{
		{"fail", `fail("late")`, 1},
		{"exit", `exit(5)`, 5},
		{"policy twice", `tor.policy(policy)`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newTestTor(t)
			r := startScript(t, f, policyScript(`return None`, "")+tc.tail+"\n", Options{})
			code, _ := r.wait(5 * time.Second)
			if code != tc.code {
				t.Errorf("Run = %d, want %d", code, tc.code)
			}
			// The policy starts only once the top level has returned:
			// a top level that fails or exits changed nothing.
			checkLines(t, "SETCONF", f.Lines("SETCONF", "RESETCONF"), nil)
		})
	}
	f := newTestTor(t)
	r := startScript(t, f, policyScript(`return None`, "")+"tor.policy(policy)\n", Options{})
	_, err := r.wait(5 * time.Second)
	if err == nil || !strings.Contains(err.Error(), "a policy is already set") {
		t.Errorf("second tor.policy: %v", err)
	}
}

// TestPolicyStartFails: when tor refuses part of starting the policy,
// what was already changed is undone and the script fails with tor's
// answer.
func TestPolicyStartFails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line, reply string
		want        []string
	}{
		{"GETCONF __LeaveStreamsUnattached", `552 Unrecognized configuration key "__LeaveStreamsUnattached"`, []string{"GETCONF __LeaveStreamsUnattached"}},
		{"SETCONF __LeaveStreamsUnattached=1", `553 Invalid value`, []string{"GETCONF __LeaveStreamsUnattached", "SETCONF __LeaveStreamsUnattached=1"}},
		{"SETEVENTS CIRC STREAM", `552 Unrecognized event "STREAM"`, []string{"GETCONF __LeaveStreamsUnattached", "SETCONF __LeaveStreamsUnattached=1", "SETEVENTS CIRC STREAM", "SETCONF __LeaveStreamsUnattached=0"}},
		{"GETINFO stream-status", `551 Internal error`, []string{"GETCONF __LeaveStreamsUnattached", "SETCONF __LeaveStreamsUnattached=1", "SETEVENTS CIRC STREAM", "GETINFO circuit-status", "GETINFO stream-status", "SETCONF __LeaveStreamsUnattached=0"}},
	} {
		t.Run(tc.line, func(t *testing.T) {
			t.Parallel()
			f := newTestTor(t)
			f.ReplyLine(tc.line, tc.reply)
			r := startScript(t, f, policyScript(`return None`, ""), Options{})
			code, err := r.wait(5 * time.Second)
			if code != 3 || err == nil || !strings.Contains(FormatError(err), "tor.policy: "+tc.reply) {
				t.Errorf("Run = %d, %v", code, err)
			}
			// SETEVENTS may be sent again to turn events off; ignore it.
			var got []string
			for _, l := range f.Lines() {
				if l != "SETEVENTS" {
					got = append(got, l)
				}
			}
			checkLines(t, "commands", got, tc.want)
		})
	}
}

// TestPolicyStartInterrupted: SIGTERM (ctx cancelled) while tor.policy is
// setting things up. Whatever tor may have applied must still be undone
// at exit: a command sent but not yet answered may have taken effect.
func TestPolicyStartInterrupted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		slow string   // the command whose reply is late
		want []string // commands expected at exit, in order
	}{
		{"SETCONF __LeaveStreamsUnattached=1", []string{"SETCONF __LeaveStreamsUnattached=0"}},
		{"MAPADDRESS a.virtual=b.virtual", []string{"SETCONF __LeaveStreamsUnattached=0", "MAPADDRESS a.virtual=a.virtual"}},
	} {
		t.Run(tc.slow, func(t *testing.T) {
			t.Parallel()
			f := newTestTor(t)
			f.Answer(func(line string) (string, bool) {
				if line != tc.slow {
					return "", false
				}
				time.Sleep(200 * time.Millisecond)
				return "", false // then the default reply
			})
			r := startScript(t, f, policyScript(`return None`, `, map={"a.virtual": "b.virtual"}`), Options{})
			f.WaitCommand(tc.slow)
			n := len(f.Commands())
			r.stop()
			var after []string
			for _, c := range f.Commands()[n:] {
				if c.Line != "GETINFO stream-status" {
					after = append(after, c.Line)
				}
			}
			checkLines(t, "commands at exit", after, tc.want)
		})
	}
}

// TestPolicyOnlyTor: a stream only tor can carry (an onion service) goes
// to tor whatever circuit the policy returns; a HOST.RELAY.exit name whose
// circuit leaves elsewhere is closed (tor cannot carry it either);
// closing and redirecting still apply.
func TestPolicyOnlyTor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, target, body string
		want               []string
	}{
		{"onion", "abcdefghijklmnop.onion:80", `return 5`, []string{"ATTACHSTREAM 9 0"}},
		{"onion upper case, trailing dot", "ABCDEFGHIJKLMNOP.ONION.:80", `return tor.attach(5, hop=2)`, []string{"ATTACHSTREAM 9 0"}},
		{"onion closed", "abcdefghijklmnop.onion:80", `return tor.close("EXITPOLICY")`, []string{"CLOSESTREAM 9 4"}},
		{"onion redirected away", "abcdefghijklmnop.onion:80", `return tor.redirect("example.net", then=5)`, []string{"REDIRECTSTREAM 9 example.net", "ATTACHSTREAM 9 5"}},
		{"redirected to an onion", "example.com:80", `return tor.redirect("abcdefghijklmnop.onion", then=5)`, []string{"REDIRECTSTREAM 9 abcdefghijklmnop.onion", "ATTACHSTREAM 9 0"}},
		{".exit of the circuit's exit", "127.0.0.3.exit.exit:80", `return 5`, []string{"ATTACHSTREAM 9 5"}},
		{".exit of another relay", "127.0.0.3.other.exit:80", `return 5`, []string{"CLOSESTREAM 9 1"}},
		{".exit redirected to its host", "127.0.0.3.other.exit:80", `return tor.redirect("127.0.0.3", then=5)`, []string{"REDIRECTSTREAM 9 127.0.0.3", "ATTACHSTREAM 9 5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, r := startWithCircuits(t, circ5Built, policyScript(tc.body, ""), Options{})
			r.started()
			f.Event("STREAM 9 NEW 0 " + tc.target + " SOURCE_ADDR=127.0.0.1:5009 PURPOSE=USER")
			f.WaitCommand(tc.want[len(tc.want)-1])
			stopChecked(t, r, tc.want)
		})
	}
}

// TestPolicyShutdownDuringFlood: a script that ends while tor floods it
// with events still hands its held stream back at once. Tor answers the
// hand-back's ATTACHSTREAM only after 20,000 events (1 MiB past the
// reader's bound); the script takes no more events, so the connection's
// reader stops, and shutdown must take the events to reach the reply.
func TestPolicyShutdownDuringFlood(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	f.SetConnOptions(ctl.Options{Logger: discardLogger(), EventBytes: 16 << 20}) // the reader stops at 1 MiB
	f.SetInfo("circuit-status", circ5Built)
	// Another controller had set __LeaveStreamsUnattached: shutdown then
	// sends no command after the hand-back that would make the reader go
	// on while it waits for a reply.
	f.SetConf(leaveStreams, "1", true)
	flood := make([]string, 20000)
	for i := range flood {
		flood[i] = fmt.Sprintf("650 STREAM %d SUCCEEDED 5 www.example.com:443 SOURCE_ADDR=127.0.0.1:%d PURPOSE=USER", 100+i, 1000+i)
	}
	f.Answer(func(line string) (string, bool) {
		if line != "ATTACHSTREAM 7 0" {
			return "", false
		}
		return strings.Join(flood, "\n") + "\n250 OK", true
	})
	r := startScript(t, f, policyScript(`return tor.hold()`, `, timeout="60s"`), Options{})
	r.newStream7()
	r.waitOut("asked 7 ()")
	start := time.Now()
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	checkLines(t, "stream commands", f.Lines(streamCommands...), []string{"ATTACHSTREAM 7 0"})
	if log := r.log.String(); !strings.Contains(log, "streams handed back at exit") || strings.Contains(log, "gave up") {
		t.Errorf("log:\n%s", log)
	}
}

// TestPolicyDecisionsLogged: each decision is logged at INFO, or at DEBUG
// with QuietDecisions (--quiet).
func TestPolicyDecisionsLogged(t *testing.T) {
	t.Parallel()
	for _, quiet := range []bool{false, true} {
		f, r := startWithCircuits(t, circ5Built, policyScript(`return "5"`, ``), Options{QuietDecisions: quiet})
		r.waitLog("policy started")
		f.Event(stream7New)
		r.waitLog("msg=decision")
		code, err := r.stop()
		checkExit(t, r, code, err, 0)
		want := "level=INFO msg=decision stream=7"
		if quiet {
			want = "level=DEBUG msg=decision stream=7"
		}
		if !strings.Contains(r.log.String(), want) {
			t.Errorf("quiet=%v: the log lacks %q:\n%s", quiet, want, r.log.String())
		}
	}
}
