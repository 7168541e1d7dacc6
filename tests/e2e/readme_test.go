package e2e

// The README's examples, run as a new user runs them: its REPL session is
// typed into `torscript repl` in a terminal, line by line, and what the
// terminal shows is compared with what the README prints, with ids,
// fingerprints, times and relay paths masked.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
)

// readmeBlock returns the lines of the README's fenced block that begins
// with the line first.
func readmeBlock(t *testing.T, first string) (lines []string, root string) {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n"+first+"\n")
	if i < 0 || !strings.HasPrefix(s[strings.LastIndex(s[:i], "\n")+1:], "```") {
		t.Fatalf("README.md has no block beginning %q", first)
	}
	s = s[i+1:]
	return strings.Split(s[:strings.Index(s, "```\n")], "\n"), root
}

// readmeMasks turn what differs from one run to the next into fixed words.
var readmeMasks = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\$[0-9A-F]{40}`), "$FP"},
	// Stable comes after a relay has run a while.
	{regexp.MustCompile(`^(  flags +).*`), "${1}FLAGS"},
	{regexp.MustCompile(`\b(auth|relay|exit)\d+(,(auth|relay|exit)\d+)*`), "PATH"},
	{regexp.MustCompile(`\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\b`), "DATE"},
	{regexp.MustCompile(`\b\d\d:\d\d:\d\d\b`), "TIME"},
	{regexp.MustCompile(`\b(\d+h)?(\d+m)?\d+(\.\d+)?s\b`), "DURATION"},
	{regexp.MustCompile(`\d+`), "N"},
}

func readmeMask(line string) string {
	for _, m := range readmeMasks {
		line = m.re.ReplaceAllString(line, m.with)
	}
	return line
}

// TestREADMERepl types the README's REPL session into `torscript repl` in
// a terminal, in the repository's directory (it :loads an example), and
// wants the terminal to show what the README shows. Lines the session's
// handler prints while it is set ("circuit 12 BUILT") are left out: they
// come when tor sends events.
func TestREADMERepl(t *testing.T) {
	block, root := readmeBlock(t, "$ ./torscript repl")
	n := testnet.Shared(t)
	tm := startTermIn(t, root, []string{"XDG_STATE_HOME=" + t.TempDir()},
		torscript(t), "repl", "--control", n.ControlAddr(), "--cookie", n.CookiePath())
	tm.name = "torscript repl"
	tm.waitLastLine(">>> ", replWait)

	want := block[1:]
	// Type each input: a ">>> " line and the "... " lines after it.
	prompts := 1
	for i := 0; i < len(want); i++ {
		line, ok := strings.CutPrefix(want[i], ">>> ")
		if !ok {
			continue
		}
		tm.send(line, "Enter")
		for i+1 < len(want) && strings.HasPrefix(want[i+1], "...") {
			i++
			tm.waitLastLine("...", replWait)
			tm.send(strings.TrimPrefix(strings.TrimPrefix(want[i], "..."), " "), "Enter")
		}
		prompts++
		tm.waitFor("the next prompt", replWait, func(string) bool {
			h := tm.history()
			return lastLine(h) == ">>>" && strings.Count("\n"+h, "\n>>>") == prompts
		})
	}

	handler := regexp.MustCompile(`^circuit \d+ [A-Z]+$`)
	var got []string
	for _, l := range strings.Split(tm.history(), "\n") {
		if !handler.MatchString(l) {
			got = append(got, l)
		}
	}
	got = got[:len(got)-1] // the last prompt
	for i := 0; i < max(len(got), len(want)); i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if readmeMask(g) != readmeMask(strings.TrimRight(w, " ")) {
			t.Errorf("line %d of the session:\n  the terminal: %q\n  the README:   %q", i+1, g, w)
		}
	}
	if t.Failed() {
		t.Logf("the terminal:\n%s", framed(strings.Join(got, "\n")))
	}
}

// TestREADMECLI runs the README's CLI block in bash, line by line, in the
// repository's directory, as a new user would: it builds ./torscript,
// starts a network of its own (under a TMPDIR of the test's), and ends
// with `testnet down`. A line whose comment says "until Ctrl-C" gets
// SIGINT after a few seconds; every line must exit 0, and some must print
// what their comment promises.
func TestREADMECLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a network of its own")
	}
	testnet.SkipWithoutTor(t)
	block, root := readmeBlock(t, "go build -o torscript ./cmd/torscript")
	tmp := t.TempDir()
	t.Cleanup(func() {
		// Whatever happened, no tor of this test's network stays.
		exec.Command(filepath.Join(root, "torscript"), "testnet", "down", "--dir", filepath.Join(tmp, "torscript-testnet")).Run()
	})
	// Each line runs in the one shell (eval sets what later lines use);
	// its output goes to files named by its number.
	var sh strings.Builder
	sh.WriteString("set -m\ncd " + shellQuote(root) + "\nexport TMPDIR=" + shellQuote(tmp) + "\n")
	var lines []string
	for _, l := range block {
		cmd, _, _ := strings.Cut(l, "   #")
		if cmd = strings.TrimSpace(cmd); cmd == "" {
			continue
		}
		i := len(lines)
		lines = append(lines, l)
		out := fmt.Sprintf("%s/%d", tmp, i)
		if strings.Contains(l, "until Ctrl-C") {
			fmt.Fprintf(&sh, "( exec %s ) >%s.out 2>%s.err </dev/null & p=$!; sleep 4; kill -INT $p; wait $p; echo $? >%s.rc\n", cmd, out, out, out)
		} else {
			fmt.Fprintf(&sh, "%s >%s.out 2>%s.err </dev/null; echo $? >%s.rc\n", cmd, out, out, out)
		}
	}
	ctx := testCtx(t, 5*time.Minute)
	if out, err := exec.CommandContext(ctx, "bash", "-c", sh.String()).CombinedOutput(); err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	// What a line prints that shows it did its job.
	promise := map[string]string{
		`curl --socks5-hostname "$TORSCRIPT_SOCKS" "$TORSCRIPT_ONION_URL"`: "onion",
		`curl --socks5-hostname "$TORSCRIPT_SOCKS" "$TORSCRIPT_WEB_URL"`:   "torscript testnet",
		`examples/exit_probe.star`:                                         "2 ok, 0 failed",
		`eval 'tor.get_info("version")'`:                                   `"0.4.9`,
		`eval 'tor.circuits(status="BUILT")'`:                              "<circuit ",
		`eval 'tor.on("circ", print)'`:                                     "<handler circ print>",
		`raw 'GETINFO version'`:                                            "250-version=",
		`raw --json 'GETINFO version'`:                                     `"status":250`,
		`eval --json`:                                                      `"value":[{`,
		`testnet status --json`:                                            `"up":true`,
	}
	for i, l := range lines {
		read := func(ext string) string {
			b, _ := os.ReadFile(fmt.Sprintf("%s/%d.%s", tmp, i, ext))
			return string(b)
		}
		stdout, stderr := read("out"), read("err")
		if rc := strings.TrimSpace(read("rc")); rc != "0" {
			t.Errorf("%s\n  exited %s\n  stdout: %s\n  stderr: %s", l, rc, stdout, stderr)
			continue
		}
		for sub, want := range promise {
			if strings.Contains(l, sub) && !strings.Contains(stdout, want) {
				t.Errorf("%s\n  printed no %q\n  stdout: %s\n  stderr: %s", l, want, stdout, stderr)
			}
		}
	}
}

// shellQuote quotes s for bash.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
