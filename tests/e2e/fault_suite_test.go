package e2e

// The fault suite: the README's safety promise tried as an attacker. Each
// case runs a policy against the shared network's client with real curls
// through its SocksPort, breaks something (the script, the interpreter,
// its guardian, the process group, a second torscript), and checks that
// every curl completed (or failed at once) within 5 s of the fault, that
// __LeaveStreamsUnattached, the address mappings and a config key the
// script set are what they were before, that no stream waits for a
// controller, and that the log stayed small. It prints a table of the
// cases with -v.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
	"github.com/torscript/torscript/ctl"
)

// suiteBefore is the state of tor the suite wants back after every case.
type suiteBefore struct {
	leave, maps, dirtiness string
}

func suiteState(t *testing.T, c *ctl.Conn) suiteBefore {
	t.Helper()
	maps, err := c.GetInfoOne(testCtx(t, 10*time.Second), "address-mappings/control")
	if err != nil {
		t.Fatal(err)
	}
	return suiteBefore{leave: leaveValue(t, c), maps: maps, dirtiness: getConf(t, c, "MaxCircuitDirtiness")}
}

// suitePreamble changes tor as a script may: a declared config key and an
// address mapping, both to be undone however the script ends.
const suitePreamble = `tor.require(config=["MaxCircuitDirtiness"])
tor.set_conf(MaxCircuitDirtiness="1234")
tor.map_address({"suite.virtual": "127.0.0.1"})
`

// suiteProc is a torscript run in a process group of its own, so that
// the group can be killed without the test.
type suiteProc struct {
	*scriptProc
	script string
}

func suiteStart(ctx context.Context, t *testing.T, src string, flags ...string) *suiteProc {
	t.Helper()
	p := &suiteProc{script: writeScript(t, t.TempDir(), "policy.star", src)}
	cmd := cli(ctx, t, append(append([]string{"run"}, flags...), p.script)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	p.scriptProc = startScript(t, cmd)
	return p
}

func (p *suiteProc) pid() int { return p.cmd.Process.Pid }

// guardian is the pid of the interpreter's guardian.
func (p *suiteProc) guardian(t *testing.T) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", p.pid()))
		for _, f := range tasks {
			b, _ := os.ReadFile(f)
			for _, s := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(s); err == nil {
					return pid
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no guardian process found")
	return 0
}

// wait waits for the process to end (after a fault that ends it).
func (p *suiteProc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("torscript did not end within %v", d)
	}
	return exitStatus(p.err)
}

// suiteRow is a line of the suite's table.
type suiteRow struct {
	fault     string
	recovered time.Duration
	restored  string
	logBytes  int
}

// suiteCase is one fault.
type suiteCase struct {
	name string
	// policy is the script after the preamble.
	policy string
	flags  []string
	// fault breaks something once the policy started (nil: the policy is
	// the fault) and returns when it did; curls in flight were started
	// before it.
	fault func(ctx context.Context, t *testing.T, p *suiteProc) time.Time
	// inFlight is how many curls are started before the fault.
	inFlight int
	// refused: curls are expected to fail at once (on_error close).
	refused bool
	// after runs once the fault is over, before the state is checked (a
	// repair, the next run); it returns when recovery started.
	after func(ctx context.Context, t *testing.T, p *suiteProc) time.Time
	// end: how the run ends; "term" sends SIGTERM and wants 0, "dies"
	// waits for it to end by itself.
	end string
	// started: the log line that says the policy took the streams.
	started string
}

const holdPolicy = `def route(s):
    return tor.hold()
tor.policy(route, timeout="100s")
`

func TestFaultSuite(t *testing.T) {
	c := dial(t)
	suiteT := t
	restoreLeave(t, "0")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.Do(ctx, "RESETCONF MaxCircuitDirtiness")
	})
	port := httpServer(t, "suite page")
	var rows []suiteRow

	kill := func(sig syscall.Signal) func(ctx context.Context, t *testing.T, p *suiteProc) time.Time {
		return func(ctx context.Context, t *testing.T, p *suiteProc) time.Time {
			at := time.Now()
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			return at
		}
	}
	killBoth := func(ctx context.Context, t *testing.T, p *suiteProc) time.Time {
		g := p.guardian(t)
		at := time.Now()
		syscall.Kill(g, syscall.SIGKILL)
		syscall.Kill(p.pid(), syscall.SIGKILL)
		return at
	}
	deepName := "f" + strings.Repeat("x", 5000)
	cases := []suiteCase{
		{name: "policy raises (on_error tor)", policy: "def route(s):\n    fail(\"boom\")\ntor.policy(route)\n", end: "term"},
		{name: "policy raises (on_error close)", policy: "def route(s):\n    fail(\"boom\")\ntor.policy(route, on_error=\"close\")\n", refused: true, end: "term"},
		{name: "policy loops forever", policy: "def route(s):\n    while True:\n        pass\ntor.policy(route)\n", flags: []string{"--handler-timeout", "1s"}, end: "term"},
		{name: "policy stuck in one Go operation", policy: "def big():\n    a = [1] * 1000\n    a = [a] * 1000\n    return [a] * 1000\nA = big()\nB = big()\ndef route(s):\n    return None if A == B else None\ntor.policy(route)\n", flags: []string{"--handler-timeout", "1s"}, end: "dies"},
		{name: "top level loops after tor.policy", policy: "tor.policy(lambda s: None)\nwhile True:\n    pass\n", flags: []string{"--top-level-timeout", "3s"}, end: "dies", started: "-"},
		{name: "policy allocates without bound", policy: "def route(s):\n    x = [0] * 100000000\n    return None\ntor.policy(route)\n", flags: []string{"--max-memory", "512MiB"}, end: "dies"},
		{name: "deep recursion, long name", policy: "def " + deepName + "(k):\n    return " + deepName + "(k + 1)\ndef route(s):\n    return " + deepName + "(0)\ntor.policy(route)\n", end: "term"},
		{name: "SIGKILL of the interpreter", policy: holdPolicy, inFlight: 2, fault: kill(syscall.SIGKILL), end: "dies"},
		{name: "SIGKILL of its process group", policy: holdPolicy, inFlight: 2, end: "dies", fault: func(ctx context.Context, t *testing.T, p *suiteProc) time.Time {
			at := time.Now()
			syscall.Kill(-p.pid(), syscall.SIGKILL)
			return at
		}},
		{name: "SIGKILL of both, then torscript repair", policy: holdPolicy, inFlight: 2, fault: killBoth, end: "dies", after: func(ctx context.Context, t *testing.T, p *suiteProc) time.Time {
			at := time.Now()
			out, err := cli(ctx, t, "repair").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "undid:") {
				t.Errorf("torscript repair: %v\n%s", err, out)
			}
			return at
		}},
		{name: "SIGKILL of both, then torscript run", policy: holdPolicy, inFlight: 2, fault: killBoth, end: "dies", after: func(ctx context.Context, t *testing.T, p *suiteProc) time.Time {
			at := time.Now()
			script := writeScript(t, t.TempDir(), "next.star", `print("next")`+"\n")
			out, err := cli(ctx, t, "run", script).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "undid what a dead torscript left") {
				t.Errorf("torscript run after the kill: %v\n%s", err, out)
			}
			return at
		}},
		{name: "tor restarted, then SIGKILL", policy: holdPolicy, end: "dies", fault: func(ctx context.Context, t *testing.T, p *suiteProc) time.Time {
			// The run reconnects to the restarted tor (a new cookie) and
			// sets things again; its guardian then undoes them there.
			n := testnet.Shared(t)
			if err := n.RestartClient(ctx); err != nil {
				t.Fatal(err)
			}
			p.waitLog(t, "reconnected to tor", 30*time.Second)
			c.Close()
			c = dial(suiteT) // the whole suite's: it outlives this case
			at := time.Now()
			syscall.Kill(p.pid(), syscall.SIGKILL)
			return at
		}},
		// A terminal that closes: SIGHUP ends the run (--hup exit, what
		// auto does on a terminal; without one it reloads the script,
		// TestReloadOnSIGHUP).
		{name: "SIGHUP", policy: holdPolicy, flags: []string{"--hup", "exit"}, inFlight: 2, fault: kill(syscall.SIGHUP), end: "exit0"},
		{name: "SIGTERM", policy: holdPolicy, inFlight: 2, fault: kill(syscall.SIGTERM), end: "exit0"},
		{name: "a timer failing every 1 ms", policy: "tor.every(\"1ms\", lambda: fail(\"tick\"))\ntor.policy(lambda s: None)\n", end: "term", fault: func(ctx context.Context, t *testing.T, p *suiteProc) time.Time {
			time.Sleep(5 * time.Second)
			return time.Now()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rows = append(rows, suiteRun(t, &c, port, tc))
		})
	}
	c = dial(t) // the client may have been restarted
	t.Run("two policies", func(t *testing.T) { rows = append(rows, suiteTwoPolicies(t, c, port)) })

	var b strings.Builder
	fmt.Fprintf(&b, "\n%-42s %-14s %-10s %s\n", "fault", "recovered in", "log bytes", "restored")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-42s %-14v %-10d %s\n", r.fault, r.recovered.Round(time.Millisecond), r.logBytes, r.restored)
	}
	t.Log(b.String())
}

// suiteRun runs one case.
func suiteRun(t *testing.T, cref **ctl.Conn, port int, tc suiteCase) suiteRow {
	ctx := testCtx(t, 2*time.Minute)
	before := suiteState(t, *cref)
	start := time.Now()
	p := suiteStart(ctx, t, suitePreamble+tc.policy, tc.flags...)
	if tc.started != "-" {
		p.waitStarted(t)
	} else {
		time.Sleep(500 * time.Millisecond) // the top level is running
	}
	row := suiteRow{fault: tc.name}

	var inFlight []<-chan curlResult
	for range tc.inFlight {
		inFlight = append(inFlight, faultCurl(ctx, t, port))
	}
	if tc.inFlight > 0 {
		time.Sleep(time.Second) // they wait for the policy
	}
	faultAt := time.Now()
	if tc.fault != nil {
		faultAt = tc.fault(ctx, t, p)
	}
	recoverAt := faultAt
	if tc.after != nil {
		// Nothing has undone the fault yet: the curls in flight wait.
		time.Sleep(time.Second)
		for _, ch := range inFlight {
			select {
			case r := <-ch:
				t.Errorf("%v before the repair", r)
			default:
			}
		}
		recoverAt = tc.after(ctx, t, p)
	}
	// Curls made after the fault, and those in flight.
	if tc.inFlight == 0 {
		inFlight = append(inFlight, faultCurl(ctx, t, port), faultCurl(ctx, t, port))
	}
	for _, ch := range inFlight {
		r := <-ch
		took := time.Since(recoverAt)
		if r.start.After(recoverAt) {
			took = r.took
		}
		if took > row.recovered {
			row.recovered = took
		}
		switch {
		case tc.refused && r.err == nil:
			t.Errorf("%v; want it refused at once", r)
		case took > 5*time.Second:
			t.Errorf("%v: %v after the fault, want within 5 s", r, took.Round(time.Millisecond))
		case r.err != nil && !tc.refused:
			// Tor may fail a stream it routes itself at an exit that
			// refuses (the private network): at once is what counts.
			t.Logf("%v (tor's own routing; within %v of the fault)", r, took.Round(time.Millisecond))
		}
	}

	switch tc.end {
	case "term":
		p.termOK(t)
	case "exit0":
		if code := p.wait(t, 20*time.Second); code != 0 {
			t.Errorf("exit status %d, want 0 (%v)", code, p.err)
		}
	case "dies":
		p.wait(t, 30*time.Second)
	}
	ran := time.Since(start)
	// A guardian that took over has finished when the interpreter's
	// stderr closed (p.done): the state is final now. (The fault may
	// have restarted tor: *cref is a connection to it as it is now.)
	c := *cref
	after := suiteState(t, c)
	var restored []string
	if after.leave != before.leave {
		t.Errorf("%s=%s after the fault, want %s", leaveKey, after.leave, before.leave)
	} else {
		restored = append(restored, leaveKey+"="+after.leave)
	}
	if after.maps != before.maps {
		t.Errorf("address-mappings/control = %q after the fault, want %q", after.maps, before.maps)
	} else {
		restored = append(restored, "mappings")
	}
	if after.dirtiness != before.dirtiness {
		t.Errorf("MaxCircuitDirtiness=%s after the fault, want %s", after.dirtiness, before.dirtiness)
	} else {
		restored = append(restored, "MaxCircuitDirtiness")
	}
	if ws, err := waitingStreams(testCtx(t, 10*time.Second), c); err != nil || len(ws) > 0 {
		t.Errorf("streams still waiting for a controller: %v %v", ws, err)
	}
	row.restored = strings.Join(restored, ", ")
	row.logBytes = len(p.stderr.String())
	if perMinute := float64(row.logBytes) / ran.Minutes(); perMinute > 1<<20 && row.logBytes > 64<<10 {
		t.Errorf("wrote %d bytes of log in %v: over 1 MB a minute", row.logBytes, ran.Round(time.Millisecond))
	}
	return row
}

// suiteTwoPolicies: a second policy on the same tor refuses to start and
// names the holder, with no fight; --take-over replaces the first
// cleanly.
func suiteTwoPolicies(t *testing.T, c *ctl.Conn, port int) suiteRow {
	ctx := testCtx(t, 2*time.Minute)
	before := suiteState(t, c)
	first := suiteStart(ctx, t, suitePreamble+"tor.policy(lambda s: None)\n")
	first.waitStarted(t)
	second := suiteStart(ctx, t, "tor.policy(lambda s: None)\n")
	if code := second.wait(t, 30*time.Second); code != 1 {
		t.Errorf("second policy: exit status %d, want 1", code)
	}
	if want := fmt.Sprintf("held by torscript pid %d", first.pid()); !strings.Contains(second.stderr.String(), want) {
		t.Errorf("second policy's error does not name the holder (%q):\n%s", want, second.stderr.String())
	}
	r := <-faultCurl(ctx, t, port)
	faultCurlOK(t, r, "suite page")
	if n := strings.Count(first.stderr.String(), "\n"); n > 5 {
		t.Errorf("the first policy logged %d lines while the second tried: a fight?\n%s", n, first.stderr.String())
	}
	at := time.Now()
	third := suiteStart(ctx, t, "tor.policy(lambda s: None)\n", "--take-over")
	third.waitStarted(t)
	if code := first.wait(t, 15*time.Second); code != 0 {
		t.Errorf("the replaced torscript: exit status %d, want 0", code)
	}
	took := time.Since(at)
	faultCurlOK(t, <-faultCurl(ctx, t, port), "suite page")
	third.termOK(t)
	after := suiteState(t, c)
	if after != before {
		t.Errorf("after: %+v, want %+v", after, before)
	}
	return suiteRow{fault: "two policies (refused, then --take-over)", recovered: took, restored: "all", logBytes: len(first.stderr.String()) + len(second.stderr.String()) + len(third.stderr.String())}
}
