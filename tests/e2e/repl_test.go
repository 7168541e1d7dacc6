package e2e

// The REPL in a terminal (tmux), against the shared network's client: the
// prompts, completion, events printed above the line being typed, Ctrl-C,
// Ctrl-D and the history, as a user meets them.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
	"github.com/torscript/torscript/ctl"
)

// replWait bounds each wait for the REPL: the machines the tests run on
// can be slow.
const replWait = 30 * time.Second

// replTerm is `torscript repl` in a terminal.
type replTerm struct{ *term }

// startREPL runs `torscript repl` connected to the network's client, with
// its history under state (XDG_STATE_HOME), and waits for its prompt.
func startREPL(t *testing.T, state string) *replTerm {
	t.Helper()
	n := testnet.Shared(t)
	tm := startTerm(t, []string{"XDG_STATE_HOME=" + state},
		torscript(t), "repl", "--control", n.ControlAddr(), "--cookie", n.CookiePath())
	tm.name = "torscript repl"
	r := &replTerm{tm}
	r.waitLastLine(">>> ", replWait)
	return r
}

// eval types line and Enter, waits for the next prompt and returns what
// was printed between the line and the prompt. The line must not be on
// the screen already, with a prompt after it.
func (r *replTerm) eval(line string) string {
	r.t.Helper()
	r.send(line)
	return r.submit(line)
}

// submit is eval of a line already typed (or completed): it presses Enter.
func (r *replTerm) submit(line string) string {
	r.t.Helper()
	r.waitLastLine(">>> "+line, replWait)
	r.send("Enter")
	echo := ">>> " + line
	var out string
	r.waitFor(fmt.Sprintf("%q followed by a new prompt", echo), replWait, func(s string) bool {
		s = "\n" + s
		i := strings.LastIndex(s, "\n"+echo+"\n")
		if i < 0 {
			return false
		}
		rest := s[i+len(echo)+2:]
		if lastLine(rest) != ">>>" {
			return false
		}
		out = strings.TrimSuffix(strings.TrimSuffix(rest, ">>>"), "\n")
		return true
	})
	return out
}

// evalWant evaluates line and wants it to print want.
func (r *replTerm) evalWant(line, want string) {
	r.t.Helper()
	if got := r.eval(line); got != want {
		r.t.Errorf("%s printed:\n%s\nwant:\n%s\nscreen:\n%s", line, framed(got), framed(want), framed(r.screen()))
	}
}

// quit presses Ctrl-D at an empty prompt and wants the REPL to exit with
// status 0.
func (r *replTerm) quit() {
	r.t.Helper()
	r.waitLastLine(">>> ", replWait)
	r.send("C-d")
	if code := r.waitExit(replWait); code != 0 {
		r.t.Fatalf("after Ctrl-D the REPL exited with status %d, want 0; the terminal shows:\n%s", code, framed(r.screen()))
	}
}

// TestREPLCompleteAttr: Tab after tor.att completes to tor.attach, the
// prefix attach and attach_stream share; a second Tab lists both.
func TestREPLCompleteAttr(t *testing.T) {
	r := startREPL(t, t.TempDir())
	r.send("tor.att", "Tab")
	r.waitLastLine(">>> tor.attach", replWait)
	if x, _ := r.cursor(); x != len(">>> tor.attach") {
		t.Errorf("after completion the cursor is at column %d, want %d (the end of the line)", x, len(">>> tor.attach"))
	}
	r.send("Tab")
	r.waitMatch(regexp.MustCompile(`(?m)^>>> tor\.attach\n(attach\s+attach_stream|attach_stream\s+attach)$`), replWait)
	// What was completed is what runs.
	r.send("C-g", "_stream", "Enter")
	r.waitMatch(regexp.MustCompile(`(?m)^>>> tor\.attach_stream\n<built-in function tor\.attach_stream>\n>>>$`), replWait)
}

// torVersion returns the version of the network's client (GETINFO
// version).
func torVersion(t *testing.T, c *ctl.Conn) string {
	t.Helper()
	version, err := c.GetInfoOne(testCtx(t, 10*time.Second), "version")
	if err != nil {
		t.Fatal(err)
	}
	return version
}

// TestREPLCompleteGetInfo: GETINFO keys complete inside tor.get_info("…
// and after a raw GETINFO; config, event and signal names where they are
// expected.
func TestREPLCompleteGetInfo(t *testing.T) {
	version := torVersion(t, dial(t))
	r := startREPL(t, t.TempDir())
	r.send(`tor.get_info("vers`, "Tab")
	r.waitLastLine(`>>> tor.get_info("version`, replWait)
	r.send(`")`)
	if got := r.submit(`tor.get_info("version")`); got != `"`+version+`"` {
		t.Errorf("tor.get_info(\"version\") printed:\n%s\nwant %q", framed(got), version)
	}

	// Config, event and signal names, from the same tor.
	for _, tc := range []struct{ typed, completed string }{
		{`tor.get_conf("MaxCircuitDirt`, `tor.get_conf("MaxCircuitDirtiness`},
		{`tor.on("circ_m`, `tor.on("circ_minor`},
		{`tor.signal("NEWN`, `tor.signal("NEWNYM`},
	} {
		r.send(tc.typed, "Tab")
		r.waitLastLine(">>> "+tc.completed, replWait)
		r.send("C-u")
		r.waitLastLine(">>> ", replWait)
	}

	r.send("GETINFO config-fi", "Tab")
	r.waitLastLine(">>> GETINFO config-file", replWait)
	out := r.submit("GETINFO config-file")
	if !regexp.MustCompile(`^250-config-file=\S+\n250 OK$`).MatchString(out) {
		t.Errorf("GETINFO config-file printed:\n%s", framed(out))
	}
}

// TestREPLCompleteCircuitID: where a circuit id is expected, Tab completes
// the ids of live circuits: in tor.circuit( and after a raw CLOSECIRCUIT.
func TestREPLCompleteCircuitID(t *testing.T) {
	c := dial(t)
	r := startREPL(t, t.TempDir())
	id, _ := buildCircuit(t, c)
	t.Cleanup(func() { c.CloseCircuit(testCtx(t, 10*time.Second), id, false) })
	live := liveCircuits(t, c)

	complete := func(before string) {
		t.Helper()
		if p := uniquePrefix(id, live); p != "" {
			// A prefix only this circuit's id has completes to the id.
			r.send(before+p, "Tab")
			r.waitLastLine(">>> "+before+id, replWait)
			return
		}
		// Every prefix of id is another's too: Tab inserts what the ids
		// share, a second Tab lists them (or the id was the only one).
		r.send(before, "Tab", "Tab")
		prompt := ">>> " + strings.TrimSpace(before)
		var listed []string
		r.waitFor(fmt.Sprintf("circuit %s listed under %q", id, prompt), replWait, func(s string) bool {
			s = "\n" + s
			i := strings.LastIndex(s, "\n"+prompt)
			if i < 0 {
				return false
			}
			lines := strings.Split(s[i+1:], "\n")
			if lines[0] == ">>> "+before+id && len(lines) == 1 {
				return true
			}
			listed = strings.Fields(strings.Join(lines[1:], " "))
			return slices.Contains(listed, id)
		})
		// What is listed are circuits tor has (or had a moment ago).
		known := append(liveCircuits(t, c), live...)
		for _, l := range listed {
			if !slices.Contains(known, l) {
				t.Errorf("completion after %q lists %q, not a live circuit (live: %v)", before, l, known)
			}
		}
		r.send("C-g", "C-u", before+id)
	}
	t.Logf("circuit %s; live circuits %v", id, live)
	complete("tor.circuit(")
	r.send(")")
	out := r.submit("tor.circuit(" + id + ")")
	if !strings.Contains(out, id) || !strings.Contains(out, "BUILT") {
		t.Errorf("tor.circuit(%s) printed:\n%s", id, framed(out))
	}

	complete("CLOSECIRCUIT ")
	if got := r.submit("CLOSECIRCUIT " + id); got != "250 OK" {
		t.Errorf("CLOSECIRCUIT %s printed:\n%s", id, framed(got))
	}
	ctx := testCtx(t, replWait)
	for {
		circs, err := c.Circuits(ctx)
		if err != nil {
			t.Fatal(err)
		}
		open := false
		for _, ci := range circs {
			open = open || ci.ID == id && ci.Status != ctl.CircClosed
		}
		if !open {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("circuit %s still open after CLOSECIRCUIT %s", id, id)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// liveCircuits returns the ids of the circuits tor has that are not
// closed or failed.
func liveCircuits(t *testing.T, c *ctl.Conn) []string {
	t.Helper()
	circs, err := c.Circuits(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var live []string
	for _, ci := range circs {
		if ci.Status != ctl.CircClosed && ci.Status != ctl.CircFailed {
			live = append(live, ci.ID)
		}
	}
	return live
}

// uniquePrefix returns the shortest proper prefix of id that no other of
// ids has, or "".
func uniquePrefix(id string, ids []string) string {
	for n := 1; n < len(id); n++ {
		p, shared := id[:n], false
		for _, o := range ids {
			shared = shared || o != id && strings.HasPrefix(o, p)
		}
		if !shared {
			return p
		}
	}
	return ""
}

// TestREPLMultiline: a def and an open bracket take continuation lines,
// with the "... " prompt, until the statement is complete.
func TestREPLMultiline(t *testing.T) {
	r := startREPL(t, t.TempDir())
	r.send("def twice(x):", "Enter")
	r.waitLastLine("... ", replWait)
	r.send("    y = 2 * x", "Enter")
	r.waitMatch(regexp.MustCompile(`(?m)^>>> def twice\(x\):\n\.\.\.     y = 2 \* x\n\.\.\.$`), replWait)
	r.send("    return y", "Enter")
	r.waitMatch(regexp.MustCompile(`(?m)^\.\.\.     return y\n\.\.\.$`), replWait)
	r.send("Enter")
	r.waitMatch(regexp.MustCompile(`(?m)^\.\.\.     return y\n\.\.\.\n>>>$`), replWait)
	r.evalWant("twice(21)", "42")
	// The value is bound to _.
	r.evalWant("_ + 1", "43")

	r.send("[twice(1),", "Enter")
	r.waitMatch(regexp.MustCompile(`(?m)^>>> \[twice\(1\),\n\.\.\.$`), replWait)
	r.send("twice(2)]", "Enter")
	r.waitMatch(regexp.MustCompile(`(?m)^>>> \[twice\(1\),\n\.\.\. twice\(2\)\]\n\[2, 4\]\n>>>$`), replWait)
}

// TestREPLEventAboveLine: what a handler prints appears above the prompt,
// and the half-typed line stays as it was, cursor included.
func TestREPLEventAboveLine(t *testing.T) {
	c := dial(t)
	r := startREPL(t, t.TempDir())
	r.evalWant(`tor.on("circ", lambda c: print("EV", c.id, c.status))`, "<handler circ lambda>")
	r.send("40 +")
	r.waitLastLine(">>> 40 +", replWait)

	n := testnet.Shared(t)
	path := []string{"$" + n.Relays()[0].Fingerprint, "$" + n.Relays()[1].Fingerprint, "$" + n.Exits()[0].Fingerprint}
	id, err := c.ExtendCircuit(testCtx(t, replWait), "0", path, "")
	if err != nil {
		t.Fatalf("EXTENDCIRCUIT: %v", err)
	}
	t.Cleanup(func() { c.CloseCircuit(testCtx(t, 10*time.Second), id, false) })
	s := r.waitScreen("EV "+id+" BUILT\n", replWait)
	if !strings.Contains(s, "EV "+id+" LAUNCHED\n") {
		t.Errorf("the screen shows BUILT for circuit %s but not LAUNCHED:\n%s", id, framed(s))
	}
	if last := lastLine(s); last != ">>> 40 +" {
		t.Fatalf("after the events the last line is %q, want %q; screen:\n%s", last, ">>> 40 +", framed(s))
	}
	x, y := r.cursor()
	if rows := strings.Count(s, "\n"); x != len(">>> 40 +") || y != rows {
		t.Errorf("cursor at column %d row %d, want the end of the last line: column %d row %d", x, y, len(">>> 40 +"), rows)
	}
	// The line typed before the events is the one that runs.
	r.send("2", "Enter")
	r.waitMatch(regexp.MustCompile(`(?m)^>>> 40 \+2\n(EV .*\n)*42$`), replWait)
}

// TestREPLInterrupt: Ctrl-C stops an endless loop, says so, and the REPL
// goes on.
func TestREPLInterrupt(t *testing.T) {
	r := startREPL(t, t.TempDir())
	r.send("while True: pass", "Enter")
	r.waitLastLine("... ", replWait)
	r.send("Enter")
	// The loop runs: no prompt comes back.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if s := r.screen(); lastLine(s) != "..." {
			t.Fatalf("while True: pass did not keep running; the terminal shows:\n%s", framed(s))
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.send("C-c")
	m := r.waitMatch(regexp.MustCompile(`(?m)^\.\.\.\n((?:.*\n)*)>>>$`), replWait)
	if !strings.Contains(m[1], "interrupted") {
		t.Errorf("after Ctrl-C the REPL printed:\n%s\nwant an error saying the evaluation was interrupted", framed(m[1]))
	}
	r.evalWant("1+1", "2")
}

// TestREPLLoadPolicyQuit: :load runs a script into the session and its
// policy takes the streams; :policy off gives them back; Ctrl-D leaves
// with status 0 and undoes what the policy changed.
func TestREPLLoadPolicyQuit(t *testing.T) {
	c := dial(t)
	restoreLeave(t, "0")
	script := writeScript(t, t.TempDir(), "policy.star", "def route(stream):\n    return None\n\ntor.policy(route)\nloaded = 'policy.star ran'\n")
	r := startREPL(t, t.TempDir())
	r.eval(":load " + script)
	r.evalWant("loaded", `"policy.star ran"`)
	if got := leaveValue(t, c); got != "1" {
		t.Errorf("after :load of a policy %s=%s, want 1", leaveKey, got)
	}
	r.eval(":policy off")
	if got := leaveValue(t, c); got != "0" {
		t.Errorf("after :policy off %s=%s, want 0", leaveKey, got)
	}
	r.eval(":load  " + script) // not the same line as before, for eval
	if got := leaveValue(t, c); got != "1" {
		t.Errorf("after a second :load %s=%s, want 1", leaveKey, got)
	}
	r.quit()
	checkLeftBehind(t, c, "0")
}

// TestREPLHistory: lines typed in one session are there, with Up, in the
// next; a line that sets a password is not saved.
func TestREPLHistory(t *testing.T) {
	c := dial(t)
	t.Cleanup(func() {
		if err := c.ResetConf(testCtx(t, 10*time.Second), ctl.ConfEntry{Key: "HashedControlPassword"}); err != nil {
			t.Errorf("restoring HashedControlPassword: %v", err)
		}
	})
	state := t.TempDir()
	const marker = `history_marker = "kept across sessions"`
	const secret = `tor.set_conf(HashedControlPassword="16:ABC")`

	r := startREPL(t, state)
	r.evalWant(marker, "")
	r.eval(secret) // refused (by tor, or by torscript without --allow): what matters is the history
	r.quit()

	b, err := os.ReadFile(filepath.Join(state, "torscript", "history"))
	if err != nil {
		t.Fatalf("history file: %v", err)
	}
	if !strings.Contains(string(b), marker) {
		t.Errorf("history file lacks %q:\n%s", marker, b)
	}
	if strings.Contains(string(b), "HashedControlPassword") || strings.Contains(string(b), "16:ABC") {
		t.Errorf("history file keeps the line that sets a password:\n%s", b)
	}

	r = startREPL(t, state)
	r.send("Up")
	r.waitLastLine(">>> "+marker, replWait)
	r.send("Enter")
	r.evalWant("history_marker", `"kept across sessions"`)
	r.quit()
}

// TestREPLRaw: a line that starts with a control keyword goes to tor as
// typed, and tor's reply is printed as tor sent it.
func TestREPLRaw(t *testing.T) {
	version := torVersion(t, dial(t))
	r := startREPL(t, t.TempDir())
	r.evalWant("GETINFO version", "250-version="+version+"\n250 OK")
	r.evalWant("GETINFO no-such-key", `552 Unrecognized key "no-such-key"`)
}

// TestREPLHelpOptionInTerminal: :help SocksPort in a terminal shows what
// tor's manual says of the option, as paragraphs, then its value now.
func TestREPLHelpOptionInTerminal(t *testing.T) {
	if _, err := os.Stat("/usr/share/man/man1/tor.1.gz"); err != nil {
		t.Skip("tor's manual page is not installed")
	}
	r := startREPL(t, t.TempDir())
	n := testnet.Shared(t)
	r.send(":help SocksPort", "Enter")
	r.waitFor("the next prompt after :help", replWait, func(string) bool {
		h := r.history()
		return lastLine(h) == ">>>" && strings.Count(h, "\n>>>") >= 1 && strings.Contains(h, "its value now")
	})
	h := r.history()
	for _, want := range []string{
		"SocksPort [address:]port|unix:path|auto [flags] [isolation flags]\n",
		"  Open this port to listen for connections from SOCKS-speaking applications.\n",
		"  IsolateDestAddr\n    Don't share circuits with streams targeting a different destination\n    address.\n",
		"its value now (Dependent):\n250 SocksPort=" + n.SocksAddr() + "\n",
	} {
		if !strings.Contains(h, want) {
			t.Errorf("the terminal lacks %q:\n%s", want, framed(h))
		}
	}
	r.quit()
}
