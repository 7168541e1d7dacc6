package e2e

// A terminal for the tests of interactive commands: a tmux session on a
// server of its own (a private socket), typed into with send-keys and read
// with capture-pane.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The terminal's size.
const termCols, termRows = 120, 40

// tmuxNotInstalled is the message of a test skipped for want of tmux.
const tmuxNotInstalled = "tmux not installed: apt-get install -y tmux"

// requireTmux skips t when tmux is not installed, or fails it when
// CI=true, as a missing tor is treated.
func requireTmux(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(tmuxNotInstalled + " (CI=true: failing)")
	}
	t.Skip(tmuxNotInstalled)
}

// term is a command running in a terminal of termCols x termRows.
type term struct {
	t      *testing.T
	sock   string // the tmux server's socket
	name   string // what the command runs, for messages
	pid    int    // the command's process
	server int    // the tmux server's process
}

// tmuxConf is the private server's configuration: no status line (the
// pane is the whole terminal), and a pane whose command exited stays, so
// that its exit status can be read.
const tmuxConf = `set -g status off
set -g remain-on-exit on
set -g history-limit 10000
set -sg escape-time 0
`

// startTerm runs args in a new terminal with env added to the
// environment. When the test ends the tmux server is killed, and with it
// the command if it still runs; if the test failed, the last screen is
// logged.
func startTerm(t *testing.T, env []string, args ...string) *term {
	t.Helper()
	return startTermIn(t, "", env, args...)
}

// startTermIn is startTerm with the command's working directory dir (the
// test's when "").
func startTermIn(t *testing.T, dir string, env []string, args ...string) *term {
	t.Helper()
	requireTmux(t)
	// Short: socket paths are limited to 108 bytes.
	tmp, err := os.MkdirTemp("", "ts-tmux-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	conf := filepath.Join(tmp, "tmux.conf")
	if err := os.WriteFile(conf, []byte(tmuxConf), 0o600); err != nil {
		t.Fatal(err)
	}
	tm := &term{t: t, sock: filepath.Join(tmp, "sock"), name: filepath.Base(args[0])}
	newSession := []string{"-f", conf, "new-session", "-d", "-s", "test",
		"-x", strconv.Itoa(termCols), "-y", strconv.Itoa(termRows)}
	if dir != "" {
		newSession = append(newSession, "-c", dir)
	}
	for _, e := range env {
		newSession = append(newSession, "-e", e)
	}
	newSession = append(newSession, "--")
	if _, err := tm.tmux(append(newSession, args...)...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tm.stop)
	pids := tm.display("#{pane_pid} #{pid}")
	if _, err := fmt.Sscan(pids, &tm.pid, &tm.server); err != nil {
		t.Fatalf("tmux pane_pid and pid %q: %v", pids, err)
	}
	return tm
}

// tmux runs a tmux command on the terminal's server.
func (tm *term) tmux(args ...string) (string, error) {
	cmd := exec.Command("tmux", append([]string{"-S", tm.sock}, args...)...)
	// Not a client of the tmux the tests may run in.
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "TMUX=") && !strings.HasPrefix(e, "TMUX_PANE=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			err = fmt.Errorf("%v: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("tmux %s: %v", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// display returns what tmux says of the terminal in format
// (display-message).
func (tm *term) display(format string) string {
	tm.t.Helper()
	s, err := tm.tmux("display-message", "-p", "-t", "test", format)
	if err != nil {
		tm.t.Fatal(err)
	}
	return s
}

// stop kills the tmux server and waits for the command to be gone.
func (tm *term) stop() {
	if tm.t.Failed() {
		if s, err := tm.tmux("capture-pane", "-p", "-t", "test", "-S", "-", "-E", "-"); err == nil {
			blanks := regexp.MustCompile(`\n{4,}`)
			s = blanks.ReplaceAllStringFunc(trimScreen(s), func(b string) string {
				return fmt.Sprintf("\n(%d empty lines)\n", len(b)-1)
			})
			tm.t.Logf("%s's terminal when the test ended, with what scrolled off:\n%s", tm.name, framed(s))
		}
	}
	tm.tmux("kill-server")
	deadline := time.Now().Add(10 * time.Second)
	for running(tm.pid) || running(tm.server) {
		if time.Now().After(deadline) {
			tm.t.Errorf("%s (pid %d) or its tmux server (pid %d) still runs 10s after kill-server; killing them", tm.name, tm.pid, tm.server)
			syscall.Kill(tm.pid, syscall.SIGKILL)
			syscall.Kill(tm.server, syscall.SIGKILL)
			return
		}
		tm.nudge()
		time.Sleep(50 * time.Millisecond)
	}
}

// nudge sends the tmux server a SIGCHLD. Debian's tmux is built with
// libutempter, whose own SIGCHLD handler can swallow the signal of a
// command that exits while tmux updates utmp for its closed terminal: the
// command stays a zombie, tmux never learns its exit status, and
// kill-server waits for it (tmux/tmux#311, #4559). Seen here about once
// in ten exits.
func (tm *term) nudge() {
	if running(tm.server) {
		syscall.Kill(tm.server, syscall.SIGCHLD)
	}
}

// running reports whether process pid runs. A zombie has exited: in a
// container whose init does not reap orphans it stays one.
func running(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no /proc: kill said it exists
	}
	// "pid (comm) S …": the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// namedKeys are the keys send presses by name; anything else is typed as
// it is.
var namedKeys = regexp.MustCompile(`^(Enter|Tab|BTab|Escape|BSpace|Up|Down|Left|Right|Home|End|C-[a-z])$`)

// send types each of keys in turn: a key name (Enter, Tab, Up, C-c, C-d,
// …) presses that key; any other string is typed literally.
func (tm *term) send(keys ...string) {
	tm.t.Helper()
	for _, k := range keys {
		args := []string{"send-keys", "-t", "test"}
		if !namedKeys.MatchString(k) {
			args = append(args, "-l")
		}
		if _, err := tm.tmux(append(args, k)...); err != nil {
			tm.t.Fatal(err)
		}
	}
}

// screen returns what the terminal shows, as plain text: one line per
// row without trailing spaces, and no empty rows at the end.
func (tm *term) screen() string {
	tm.t.Helper()
	s, err := tm.tmux("capture-pane", "-p", "-t", "test")
	if err != nil {
		tm.t.Fatal(err)
	}
	return trimScreen(s)
}

func trimScreen(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

// lastLine returns the last line of a screen.
func lastLine(screen string) string {
	return screen[strings.LastIndex(screen, "\n")+1:]
}

// framed marks where each line of a screen begins and ends, for messages.
func framed(screen string) string {
	var b strings.Builder
	for _, l := range strings.Split(screen, "\n") {
		fmt.Fprintf(&b, "  |%s|\n", l)
	}
	return b.String()
}

// waitFor polls the screen every 50 ms until ok accepts it, and returns
// it; after d it fails the test, saying what it waited for and showing the
// screen.
func (tm *term) waitFor(what string, d time.Duration, ok func(screen string) bool) string {
	tm.t.Helper()
	deadline := time.Now().Add(d)
	for {
		s := tm.screen()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("%s: after %v the terminal does not show %s; it shows:\n%s", tm.name, d, what, framed(s))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitScreen waits until the screen shows sub.
func (tm *term) waitScreen(sub string, d time.Duration) string {
	tm.t.Helper()
	return tm.waitFor(fmt.Sprintf("%q", sub), d, func(s string) bool { return strings.Contains(s, sub) })
}

// waitMatch waits until re matches the screen and returns the match and
// its submatches.
func (tm *term) waitMatch(re *regexp.Regexp, d time.Duration) []string {
	tm.t.Helper()
	var m []string
	tm.waitFor("a match for `"+re.String()+"`", d, func(s string) bool {
		m = re.FindStringSubmatch(s)
		return m != nil
	})
	return m
}

// waitLastLine waits until the screen's last line is line.
func (tm *term) waitLastLine(line string, d time.Duration) string {
	tm.t.Helper()
	line = strings.TrimRight(line, " ")
	return tm.waitFor(fmt.Sprintf("%q on its last line", line), d, func(s string) bool { return lastLine(s) == line })
}

// cursor returns the cursor's column and row, from 0.
func (tm *term) cursor() (x, y int) {
	tm.t.Helper()
	s := tm.display("#{cursor_x} #{cursor_y}")
	if _, err := fmt.Sscan(s, &x, &y); err != nil {
		tm.t.Fatalf("tmux cursor %q: %v", s, err)
	}
	return x, y
}

// waitCommand waits until the terminal's foreground process is name.
func (tm *term) waitCommand(name string, d time.Duration) {
	tm.t.Helper()
	deadline := time.Now().Add(d)
	for {
		s := tm.display("#{pane_current_command}")
		if strings.TrimSpace(s) == name {
			return
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("%s: after %v the terminal runs %q, not %s", tm.name, d, strings.TrimSpace(s), name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitExit waits until the command has exited and returns its exit
// status; it fails the test if a signal killed the command.
func (tm *term) waitExit(d time.Duration) int {
	tm.t.Helper()
	deadline := time.Now().Add(d)
	for {
		// tmux marks the pane dead when the terminal closes, and knows
		// the status only once it has reaped the process: wait for both.
		s := tm.display("#{pane_dead}:#{pane_dead_status}:#{pane_dead_signal}")
		f := strings.Split(strings.TrimSpace(s), ":")
		if len(f) == 3 && f[0] == "1" {
			if f[1] == "" && f[2] == "" {
				tm.nudge() // in case tmux missed the exit
			}
			if f[2] != "" {
				tm.t.Fatalf("%s was killed by signal %s; the terminal shows:\n%s", tm.name, f[2], framed(tm.screen()))
			}
			if f[1] != "" {
				code, err := strconv.Atoi(f[1])
				if err != nil {
					tm.t.Fatalf("tmux pane_dead_status %q: %v", f[1], err)
				}
				return code
			}
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("%s did not exit within %v (tmux: %q); the terminal shows:\n%s", tm.name, d, strings.TrimSpace(s), framed(tm.screen()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTerm checks the terminal against a plain command, cat: what is
// typed is shown, keys are pressed, the screen has the terminal's size,
// and the exit status is read.
func TestTerm(t *testing.T) {
	tm := startTerm(t, []string{"TERM_TEST_VAR=from the test"}, "bash", "--norc", "--noprofile")
	tm.send(`PS1='$ '`, "Enter")
	tm.waitLastLine("$", 10*time.Second)
	tm.send(`echo "[$TERM_TEST_VAR]"`, "Enter")
	tm.waitScreen("\n[from the test]\n", 10*time.Second)
	tm.send("stty size", "Enter")
	tm.waitMatch(regexp.MustCompile(`(?m)^40 120\n\$$`), 10*time.Second)

	tm.send("cat", "Enter")
	// Typed before cat runs, text can reach bash's line editor instead.
	tm.waitCommand("cat", 10*time.Second)
	tm.send("typed text")
	tm.waitLastLine("typed text", 10*time.Second)
	if x, _ := tm.cursor(); x != len("typed text") {
		t.Errorf("cursor at column %d, want %d", x, len("typed text"))
	}
	tm.send("Enter")
	// cat echoes the line once the terminal hands it over.
	tm.waitMatch(regexp.MustCompile(`(?m)^typed text\ntyped text$`), 10*time.Second)
	tm.send("C-d")
	tm.waitLastLine("$", 10*time.Second)
	tm.send("exit 3", "Enter")
	if code := tm.waitExit(10 * time.Second); code != 3 {
		t.Errorf("exit status %d, want 3", code)
	}
}

// history returns all the terminal printed, what scrolled off included,
// trimmed as screen trims it.
func (tm *term) history() string {
	tm.t.Helper()
	s, err := tm.tmux("capture-pane", "-p", "-t", "test", "-S", "-", "-E", "-")
	if err != nil {
		tm.t.Fatal(err)
	}
	return trimScreen(s)
}
