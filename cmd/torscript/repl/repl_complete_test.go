package repl

import (
	"slices"
	"testing"

	"github.com/torscript/torscript/builtins"
)

// complete runs the completer on line and returns the candidates' rest,
// sorted, and the length of the word they complete.
func complete(c *completer, line string) ([]string, int) {
	got, n := c.Do([]rune(line), len([]rune(line)))
	var s []string
	for _, r := range got {
		s = append(s, string(r))
	}
	slices.Sort(s)
	return s, n
}

// TestCompleteAliases: an alias completes as its target does, from the
// builtins' table: tor.resetconf("Socks once completed nothing while
// tor.reset_conf("Socks did.
func TestCompleteAliases(t *testing.T) {
	rp, _, _ := offlineREPL(t, "")
	rp.loop()
	c := rp.comp
	c.names = parseTorNames(map[string]string{
		"info/names":   "version -- v\nns/id/* -- by id",
		"config/names": "SocksPort LineList\nSocksPolicy LineList\nExitNodes RouterList",
		"events/names": "CIRC STREAM CIRC_MINOR",
		"signal/names": "NEWNYM RELOAD",
	})
	for _, tc := range []struct {
		alias, target, args string
		want                []string
		n                   int
	}{
		{"resetconf", "reset_conf", `("Socks`, []string{"Policy", "Port"}, 5},
		{"resetconf", "reset_conf", `("ExitNodes", "Socks`, []string{"Policy", "Port"}, 5},
		{"resetconf", "reset_conf", `(SocksP`, []string{"olicy=", "ort="}, 6},
		{"setconf", "set_conf", `(SocksP`, []string{"olicy=", "ort="}, 6},
		{"setconf", "set_conf", `({"Socks`, []string{"Policy", "Port"}, 5},
		{"getconf", "get_conf", `("Socks`, []string{"Policy", "Port"}, 5},
		{"getinfo", "get_info", `("ver`, []string{"sion"}, 3},
	} {
		for _, name := range []string{tc.alias, tc.target} {
			line := "tor." + name + tc.args
			if got, n := complete(c, line); !slices.Equal(got, tc.want) || n != tc.n {
				t.Errorf("%q: %q (%d), want %q (%d)", line, got, n, tc.want, tc.n)
			}
		}
	}
	// Where an argument takes no names, nothing is offered.
	for _, line := range []string{`tor.on(f, "circ`, `tor.get_conf(SocksP`, `tor.save_conf("`} {
		if got, _ := complete(c, line); got != nil {
			t.Errorf("%q: %q, want nothing", line, got)
		}
	}
}

// TestArgIndex: the argument being typed is counted by the commas outside
// brackets.
func TestArgIndex(t *testing.T) {
	for before, want := range map[string]int{"": 0, "x, ": 1, "[1, 2], ": 1, "{1: 2, 3: 4}, 5, ": 2, "[": 0, `"a,b", `: 1, `'x"y', ["p, q"], `: 2} {
		if got := argIndex(before); got != want {
			t.Errorf("argIndex(%q) = %d, want %d", before, got, want)
		}
	}
	// The table's completion, as the REPL reads it.
	if a := argCompletion("attach_stream"); a.Arg(0) != builtins.ArgStream || a.Arg(1) != builtins.ArgCircuit {
		t.Errorf("attach_stream: %+v", a)
	}
	if a := argCompletion("nonesuch"); a.Arg(0) != 0 || a.Keywords != 0 {
		t.Errorf("nonesuch: %+v, want no completion", a)
	}
}
