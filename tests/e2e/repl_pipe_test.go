package e2e

// The REPL with piped input, against the shared network's client: the same
// results as typed input, no prompts, no escape codes.

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
	"github.com/torscript/torscript/ctl/ctltest"
)

// TestREPLPiped feeds a session on standard input and checks its whole
// output, byte for byte: values, raw replies, a policy loaded and removed.
func TestREPLPiped(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	c := dial(t)
	version, err := c.GetInfoOne(ctx, "version")
	if err != nil {
		t.Fatal(err)
	}
	restoreLeave(t, "0")
	t.Cleanup(func() { c.Do(testCtx(t, 10*time.Second), "RESETCONF MaxCircuitDirtiness") })
	policy := writeScript(t, t.TempDir(), "policy.star", "def route(s):\n    return None\n\ntor.policy(route)\nloaded = 'yes'\n")
	input := strings.Join([]string{
		`tor.getinfo("version")`,
		`GETINFO version`,
		`tor.set_conf(MaxCircuitDirtiness="601")`,
		`tor.get_conf("MaxCircuitDirtiness")`,
		`GETCONF MaxCircuitDirtiness`,
		`def built(cs):`,
		`    return [c for c in cs if c.status == "BUILT"]`,
		``,
		`len(built(tor.circuits())) > 0`,
		`all([type(c) == "tor.circuit" for c in tor.circuits()])`,
		`:load ` + policy,
		`loaded`,
		`:policy`,
		`GETCONF __LeaveStreamsUnattached`,
		`:policy off`,
		`GETCONF __LeaveStreamsUnattached`,
		`GETINFO no-such-key`,
	}, "\n") + "\n"
	cmd := cli(ctx, t, "repl", "--log-level", "warn")
	cmd.Stdin = strings.NewReader(input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("torscript repl: %v\nstderr:\n%s", err, stderr.String())
	}
	want := strings.Join([]string{
		`"` + version + `"`,
		`250-version=` + version,
		`250 OK`,
		`"601"`,
		`250 MaxCircuitDirtiness=601`,
		`True`,
		`True`,
		`loaded ` + policy + `: loaded, route`,
		`"yes"`,
		`a stream policy is active; :policy off removes it`,
		`250 __LeaveStreamsUnattached=1`,
		`policy removed; streams go to tor again`,
		`250 __LeaveStreamsUnattached=0`,
		`552 Unrecognized key "no-such-key"`,
	}, "\n") + "\n"
	if got := stdout.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s\nstderr:\n%s", got, want, stderr.String())
	}
	if bytes.ContainsRune(stdout.Bytes(), 0x1b) || bytes.ContainsRune(stderr.Bytes(), 0x1b) {
		t.Errorf("escape codes in the output of piped input: %q", stdout.String())
	}
	checkLeftBehind(t, c, "0")
}

// TestREPLPipedGrants: typed input has every grant; with --allow the
// session has those grants alone.
func TestREPLPipedGrants(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	c := dial(t)
	t.Cleanup(func() { c.Do(testCtx(t, 10*time.Second), "RESETCONF MaxCircuitDirtiness") })
	for _, tc := range []struct {
		flags  []string
		want   string
		status int // 1 when inputs failed
	}{
		{nil, "\"602\"\n250 OK\n", 0},
		{[]string{"--allow", "SAVECONF"}, "\"600\"\n", 1},
	} {
		c.Do(ctx, "RESETCONF MaxCircuitDirtiness")
		cmd := cli(ctx, t, append([]string{"repl", "--log-level", "warn"}, tc.flags...)...)
		cmd.Stdin = strings.NewReader("tor.set_conf(MaxCircuitDirtiness=\"602\")\ntor.get_conf(\"MaxCircuitDirtiness\")\nSETCONF MaxCircuitDirtiness=603\n")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); exitStatus(err) != tc.status {
			t.Fatalf("%v: %v, want exit status %d\n%s", tc.flags, err, tc.status, stderr.String())
		}
		if stdout.String() != tc.want {
			t.Errorf("%v: output %q, want %q; stderr:\n%s", tc.flags, stdout.String(), tc.want, stderr.String())
		}
		if tc.flags != nil && !strings.Contains(stderr.String(), "--allow SETCONF:MaxCircuitDirtiness") {
			t.Errorf("%v: stderr does not name the grant:\n%s", tc.flags, stderr.String())
		}
	}
}

// TestREPLPipedExit: exit(3) ends the session with status 3, and what the
// session's policy changed is undone.
func TestREPLPipedExit(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	c := dial(t)
	restoreLeave(t, "0")
	cmd := cli(ctx, t, "repl", "--log-level", "warn")
	cmd.Stdin = strings.NewReader("tor.policy(lambda s: None)\nGETCONF __LeaveStreamsUnattached\nexit(3)\n1 + 1\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if code := exitStatus(err); code != 3 {
		t.Fatalf("exit status %d (%v), want 3\nstderr:\n%s", code, err, stderr.String())
	}
	if got, want := stdout.String(), "250 __LeaveStreamsUnattached=1\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
	checkLeftBehind(t, c, "0")
}

// TestREPLTypedEqualsPiped: the same lines typed in a terminal and piped
// in print the same results, byte for byte (the terminal's prompts and
// echo aside).
func TestREPLTypedEqualsPiped(t *testing.T) {
	lines := []string{
		`1 + 2`,
		`"multi\nline"`,
		`[x * x for x in range(4)]`,
		`{"a": 1, "b": (2, 3)}`,
		`tor.getinfo("version")`,
		`GETINFO version`,
		`GETINFO no-such-key`,
		`help(tor.getinfo)`,
		`print("printed", 42)`,
		`:policy`,
		`len(tor.circuits()) >= 0`,
	}
	ctx := testCtx(t, 2*time.Minute)
	cmd := cli(ctx, t, "repl", "--log-level", "warn")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("piped: %v\n%s", err, stderr.String())
	}

	r := startREPL(t, t.TempDir())
	var typed strings.Builder
	for _, l := range lines {
		if out := r.eval(l); out != "" {
			typed.WriteString(out + "\n")
		}
	}
	r.quit()
	if typed.String() != stdout.String() {
		t.Errorf("typed:\n%s\npiped:\n%s", framed(typed.String()), framed(stdout.String()))
	}
}

// TestREPLInfo: :info RELAY shows the relay from its descriptor: its full
// exit policy (not only the summary), platform and contact, by nickname,
// fingerprint or a fingerprint's start.
func TestREPLInfo(t *testing.T) {
	n := testnet.Shared(t)
	ctx := testCtx(t, time.Minute)
	exit := n.Exits()[0]
	cmd := cli(ctx, t, "repl", "--log-level", "warn")
	cmd.Stdin = strings.NewReader(":info " + exit.Name + "\n:info $" + exit.Fingerprint[:10] + "\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		exit.Name + " $" + exit.Fingerprint + "\n",
		"exit policy  accept 127.0.0.0/8:*, reject 192.0.2.0/24:*, reject *:25, accept *:*\n",
		"summary      reject 25\n",
		"platform     Tor 0.4.9",
		"contact      torscript-testnet " + exit.Name,
	} {
		if strings.Count(out, want) != 2 {
			t.Errorf("output has %q %d times, want 2 (by nickname and by fingerprint):\n%s", want, strings.Count(out, want), out)
		}
	}
}

// TestREPLHelpOption: :help OPTION shows what tor's manual says of it
// (Debian's tor package ships the manual) and its value now.
func TestREPLHelpOption(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	cmd := cli(ctx, t, "repl", "--log-level", "warn")
	cmd.Stdin = strings.NewReader(":help socksport\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	out := stdout.String()
	want := []string{"its value now", "250 SocksPort=127.0.0.1:"}
	if _, err := os.Stat("/usr/share/man/man1/tor.1.gz"); err == nil {
		want = append(want, "SocksPort [address:]port|unix:path|auto", "  Open this port to listen for connections from SOCKS-speaking applications.")
	} else {
		want = append(want, "tor's manual page is not installed here")
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// TestREPLPolicyOffGivesUpTheLock: after :policy off the session no longer
// holds the tor's policy: torscript status says so and another torscript
// can start a policy while the session runs on; a later :load takes the
// lock again (and is refused while the other one holds it).
func TestREPLPolicyOffGivesUpTheLock(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	c := dial(t)
	restoreLeave(t, "0")
	policy := writeScript(t, t.TempDir(), "policy.star", "tor.policy(lambda s: None)\n")
	cmd := cli(ctx, t, "repl", "--log-level", "warn")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr ctltest.SyncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Wait() })
	waitOut := func(sub string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(stdout.String(), sub) {
			if time.Now().After(deadline) {
				t.Fatalf("the REPL did not print %q:\n%s\nstderr:\n%s", sub, stdout.String(), stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	status := func() string {
		t.Helper()
		out, _ := cli(ctx, t, "status").CombinedOutput()
		return string(out)
	}
	io.WriteString(in, ":load "+policy+"\n:policy\n")
	waitOut("a stream policy is active")
	if s := status(); !strings.Contains(s, "<repl>") {
		t.Errorf("with the policy loaded, status says:\n%s", s)
	}
	io.WriteString(in, ":policy off\n")
	waitOut("policy removed")
	if s := status(); !strings.Contains(s, "no torscript holds it") {
		t.Errorf("after :policy off, status says:\n%s", s)
	}

	// Another torscript takes the policy while the session runs.
	other := exec.CommandContext(ctx, torscript(t), "run", "--control", testnet.Shared(t).ControlAddr(),
		"--cookie", testnet.Shared(t).CookiePath(), policy)
	var otherErr ctltest.SyncBuffer
	other.Stderr = &otherErr
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(otherErr.String(), "policy started") {
		if time.Now().After(deadline) || other.ProcessState != nil {
			t.Fatalf("another torscript could not start its policy:\n%s", otherErr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	io.WriteString(in, ":load "+policy+"\n")
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "is held by torscript pid "+strconv.Itoa(other.Process.Pid)) {
		if time.Now().After(deadline) {
			t.Fatalf("a :load while another holds the policy:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	other.Process.Signal(syscall.SIGTERM)
	other.Wait()

	// The session takes it again.
	io.WriteString(in, ":load "+policy+"\n:policy\n")
	deadline = time.Now().Add(30 * time.Second)
	for strings.Count(stdout.String(), "a stream policy is active") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the session could not take the policy again:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	in.Close()
	if err := cmd.Wait(); exitStatus(err) != 1 { // the refused :load
		t.Errorf("the REPL exited %v, want 1 (one input failed)", err)
	}
	checkLeftBehind(t, c, "0")
}
