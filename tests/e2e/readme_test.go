package e2e

// The README's examples, run as a new user runs them: its REPL session is
// typed into `torscript repl` in a terminal, line by line, and what the
// terminal shows is compared with what the README prints, with ids,
// fingerprints, times and relay paths masked.

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
	i := strings.Index(s, "```\n"+first+"\n")
	if i < 0 {
		t.Fatalf("README.md has no block beginning %q", first)
	}
	s = s[i+4:]
	return strings.Split(s[:strings.Index(s, "```\n")], "\n"), root
}

// readmeMasks turn what differs from one run to the next into fixed words.
var readmeMasks = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\$[0-9A-F]{40}`), "$FP"},
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
