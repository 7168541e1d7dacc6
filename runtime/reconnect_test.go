package runtime

import (
	"strings"
	"testing"
	"time"
)

// linesOn is the command lines received on connection n.
func linesOn(f *testTor, n int) []string {
	var out []string
	for _, c := range f.Commands() {
		if c.Conn == n {
			out = append(out, c.Line)
		}
	}
	return out
}

// TestReconnect: when tor hangs up, the runtime reconnects with backoff,
// sets up the new connection as the old one was and takes over the
// streams that wait.
func TestReconnect(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	f.SetInfo("circuit-status", circ5Built)
	r := startScript(t, f, `
tor.on("bw", print)
`+policyScript(`return 5`, `, map={"a.virtual": "b.virtual"}`), Options{})
	r.started()
	f.WaitCommand("MAPADDRESS a.virtual=b.virtual")
	f.Event(stream7New)
	f.WaitCommand("ATTACHSTREAM 7 5")

	f.FailDials(1)
	f.SetInfo("stream-status", "7 SUCCEEDED 5 example.com:80\n8 NEW 0 example.org:443")
	dropped := time.Now()
	f.Drop()
	f.WaitConns(2)
	f.WaitCommand("ATTACHSTREAM 8 5")
	r.waitOut("asked 8 ()")

	f.mu.Lock()
	connects := f.Dials()
	f.mu.Unlock()
	if len(connects) != 3 {
		t.Fatalf("Connect called %d times, want 3 (start, a failure, success)", len(connects))
	}
	if d := connects[1].Sub(dropped); d < 90*time.Millisecond {
		t.Errorf("first reconnect %v after the drop; want a backoff of 100ms", d)
	}
	if d := connects[2].Sub(connects[1]); d < 190*time.Millisecond {
		t.Errorf("second reconnect %v after the first; want a backoff of 200ms", d)
	}
	checkLines(t, "commands on the new connection", linesOn(f, 2), []string{
		"SETCONF __LeaveStreamsUnattached=1",
		"SETEVENTS BW CIRC STREAM",
		"GETINFO circuit-status",
		"GETINFO stream-status",
		"MAPADDRESS a.virtual=b.virtual",
		"ATTACHSTREAM 8 5",
	})
	// Events on the new connection reach the handlers and the policy.
	f.Event("BW 10 20", stream7New)
	f.WaitCommand("ATTACHSTREAM 7 5", 2)
	r.waitOut(`read = 10, type = "BW", written = 20`)

	code, err := r.stop()
	checkExit(t, r, code, err, 0)
	log := r.log.String()
	for _, s := range []string{"lost the control connection; reconnecting", "reconnected to tor", "taking over streams that waited"} {
		if !strings.Contains(log, s) {
			t.Errorf("log lacks %q:\n%s", s, log)
		}
	}
	l := linesOn(f, 2)
	if !strings.Contains(strings.Join(l, "\n"), "SETCONF __LeaveStreamsUnattached=0") {
		t.Errorf("not restored on the new connection: %q", l)
	}
}

// TestReconnectHeldStream: a stream held when tor hung up and still
// waiting after the reconnect is decided again.
func TestReconnectHeldStream(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	r := startScript(t, f, policyScript(`return tor.hold()`, ""), Options{})
	r.newStream7()
	r.waitOut("asked 7 ()")
	f.SetInfo("stream-status", "7 NEW 0 example.com:80")
	f.Drop()
	f.WaitConns(2)
	waitUntil(t, 5*time.Second, "the policy asked again", func() bool {
		return strings.Count(r.out.String(), "asked 7 ()") == 2
	})
	stopChecked(t, r, []string{"ATTACHSTREAM 7 0"})
	if l := linesOn(f, 2); !strings.Contains(strings.Join(l, "\n"), "ATTACHSTREAM 7 0") {
		t.Errorf("held stream not handed back on the new connection: %q", l)
	}
}

// TestReconnectAtShutdown: tor is away when the script ends; shutdown
// reaches it once more to undo the policy.
func TestReconnectAtShutdown(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	r := startScript(t, f, policyScript(`return None`, ""), Options{})
	r.started()
	f.FailDials(1000)
	f.Drop()
	waitUntil(t, 5*time.Second, "a failed reconnect", func() bool { return f.ConnectCount() >= 2 })
	f.FailDials(0)
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
	found := false
	for _, c := range f.Commands() {
		if c.Conn > 1 && c.Line == "SETCONF __LeaveStreamsUnattached=0" {
			found = true
		}
	}
	if !found {
		t.Errorf("__LeaveStreamsUnattached not restored after tor came back:\n%s\nlog:\n%s", strings.Join(f.Lines(), "\n"), r.log.String())
	}
}

// TestReconnectBuiltinWhileAway: a command issued while reconnecting fails
// with a clear error instead of hanging.
func TestReconnectBuiltinWhileAway(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	r := startScript(t, f, `
def tick():
    print(tor.get_info("circuit-status") == "")
tor.every("20ms", tick)
`, Options{})
	r.waitOut("True")
	f.FailDials(1000)
	f.Drop()
	r.waitLog("not connected to tor (reconnecting)")
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
	if !strings.Contains(r.log.String(), "Error in tor.get_info: not connected to tor (reconnecting)") {
		t.Errorf("log:\n%s", r.log.String())
	}
}

// TestReconnectDuringPolicy: tor hangs up while the policy waits for an
// answer; the policy's error does not lose the stream: after the
// reconnect it is taken over and decided again.
func TestReconnectDuringPolicy(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	f.Answer(func(line string) (string, bool) {
		if line == "EXTENDCIRCUIT 0" && f.CurrentConn() == 1 {
			f.SetInfo("stream-status", "7 NEW 0 example.com:80")
			f.Drop()
			return "", true
		}
		if line == "EXTENDCIRCUIT 0" {
			return "250 EXTENDED 12\n650 " + circ12Built, true
		}
		return "", false
	})
	r := startScript(t, f, policyScript(`return tor.extend_circuit()`, ""), Options{})
	r.newStream7()
	f.WaitCommand("ATTACHSTREAM 7 12")
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
	if l := linesOn(f, 2); !strings.Contains(strings.Join(l, "\n"), "EXTENDCIRCUIT 0\nATTACHSTREAM 7 12") {
		t.Errorf("commands on the new connection: %q", l)
	}
	if !strings.Contains(r.log.String(), "Error in tor.extend_circuit") {
		t.Errorf("the policy's error is not logged:\n%s", r.log.String())
	}
}
