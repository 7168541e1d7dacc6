package runtime

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGrantsFor(t *testing.T) {
	for line, want := range map[string][]string{
		"SAVECONF":                             {"SAVECONF"},
		"SAVECONF FORCE":                       {"SAVECONF"},
		"+LOADCONF":                            {"LOADCONF"},
		"SIGNAL HALT":                          {"SIGNAL:HALT"},
		"signal term":                          {"SIGNAL:HALT"},
		"SIGNAL INT":                           {"SIGNAL:SHUTDOWN"},
		"SIGNAL USR1":                          {"SIGNAL:DUMP"},
		"SIGNAL NEWNYM":                        nil,
		"ADD_ONION NEW:BEST Port=80":           nil,
		"ADD_ONION ED25519-V3:abc= Port=80":    {"ADD_ONION:KEY"},
		"SETCONF ExitNodes={de} StrictNodes=1": {"SETCONF:ExitNodes", "SETCONF:StrictNodes"},
		"RESETCONF ExitNodes":                  {"SETCONF:ExitNodes"},
		"TAKEOWNERSHIP":                        {"TAKEOWNERSHIP"},
		"DROPGUARDS":                           {"DROPGUARDS"},
		"DROPTIMEOUTS":                         {"DROPTIMEOUTS"},
		"+POSTDESCRIPTOR purpose=general":      {"POSTDESCRIPTOR"},
		"GETINFO version":                      nil,
		"ATTACHSTREAM 1 2":                     nil,
		"MAPADDRESS a=b":                       nil,
		// Read as tor reads them (ctl.ParseCommandLine): the keyword ends
		// at any white space, kvline keys may follow a closing quote.
		"SAVECONF\t":                   {"SAVECONF"},
		"saveconf\tFORCE":              {"SAVECONF"},
		"SIGNAL\tHALT":                 {"SIGNAL:HALT"},
		"TAKEOWNERSHIP\t":              {"TAKEOWNERSHIP"},
		"+LOADCONF\tx":                 {"LOADCONF"},
		"SETCONF\tNewCircuitPeriod=77": {"SETCONF:NewCircuitPeriod"},
		`SETCONF MaxCircuitDirtiness="604"NewCircuitPeriod=77`: {"SETCONF:MaxCircuitDirtiness", "SETCONF:NewCircuitPeriod"},
		`SETCONF Log="notice file /tmp/x"`:                     {"SETCONF:Log"},
		"ADD_ONION\tED25519-V3:abc= Port=80":                   {"ADD_ONION:KEY"},
		"ADD_ONION new:BEST Port=80":                           nil,
	} {
		got, err := grantsFor(line)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("grantsFor(%q) = %q, %v; want %q", line, got, err, want)
		}
	}
	// What the check cannot read as tor will is an error (refused).
	for _, line := range []string{
		"", " SAVECONF", "SAVECONF\x00", "SETCONF A=1\vB=2", "SETCONF A=1\fB=2", "SIGNAL\rHALT",
		"SAVECONF\nSAVECONF", `SETCONF A="open`, `SETCONF "A"`, "+SETCONF A=1", "LOADCONF", "SIGNAL",
		"SIGNAL HALT NEWNYM",
	} {
		if got, err := grantsFor(line); err == nil {
			t.Errorf("grantsFor(%q) = %q, want an error", line, got)
		}
	}
}

func TestRuntimeCommand(t *testing.T) {
	for line, owned := range map[string]bool{
		"SETEVENTS CIRC": true, "SETEVENTS\tCIRC": true, "setevents": true, "QUIT\t": true,
		"AUTHENTICATE\t00": true, "AUTHCHALLENGE SAFECOOKIE": true, "+SETEVENTS": true,
		"GETINFO version": false, "SETEVENTSX": false,
	} {
		why, err := RuntimeCommand(line)
		if err != nil || (why != "") != owned {
			t.Errorf("RuntimeCommand(%q) = %q, %v; want owned %v", line, why, err, owned)
		}
	}
}

func TestGrantsNeeds(t *testing.T) {
	g, err := newGrants([]string{"SAVECONF,signal:halt", "SETCONF:StrictNodes"})
	if err != nil {
		t.Fatal(err)
	}
	g.declared["EXITNODES"] = true
	for line, want := range map[string][]string{
		"SAVECONF":                             nil,
		"SIGNAL TERM":                          nil,
		"SIGNAL DUMP":                          {"SIGNAL:DUMP"},
		"SETCONF ExitNodes={de} StrictNodes=1": nil,
		"SETCONF UseBridges=1 Bridge=x":        {"SETCONF:UseBridges", "SETCONF:Bridge"},
		"DROPGUARDS":                           {"DROPGUARDS"},
	} {
		if got, err := g.needs(line); err != nil || !slices.Equal(got, want) {
			t.Errorf("needs(%q) = %q, want %q", line, got, want)
		}
	}
	all, _ := newGrants([]string{"all"})
	if got, _ := all.needs("SIGNAL HALT"); got != nil {
		t.Errorf("all: needs %q", got)
	}
	anyConf, _ := newGrants([]string{"SETCONF"})
	if got, _ := anyConf.needs("SETCONF A=1 B=2"); got != nil {
		t.Errorf("SETCONF: needs %q", got)
	}
	if _, err := newGrants([]string{"SAVECONF", "HALT"}); err == nil || !strings.Contains(err.Error(), "--allow HALT: unknown grant; grants are SAVECONF") {
		t.Errorf("unknown grant: %v", err)
	}
}

// TestGrantsEnforced: what a script may not do is refused before it is
// sent, by its builtin or by tor.raw; with the grant, or a declared config
// key, it is sent; the runtime's own commands are not held to the
// script's grants; tor.require stops a script that lacks a grant before
// it does anything.
func TestGrantsEnforced(t *testing.T) {
	t.Parallel()
	refused := func(kw, grant string) string {
		return "refused, nothing sent: " + kw + " changes tor for everyone and this script was not allowed to (run it with --allow " + grant + ")"
	}
	for _, tc := range []struct {
		src   string
		allow []string
		err   string // "" for none
		sent  string // a command the fake must have got; "" for none
	}{
		{`tor.save_conf()`, nil, refused("SAVECONF", "SAVECONF"), ""},
		{`tor.save_conf()`, []string{"SAVECONF"}, "", "SAVECONF"},
		{`tor.signal("halt")`, nil, refused("SIGNAL", "SIGNAL:HALT"), ""},
		{`tor.raw("SIGNAL TERM")`, nil, refused("SIGNAL", "SIGNAL:HALT"), ""},
		{`tor.raw("SIGNAL TERM")`, []string{"SIGNAL:HALT"}, "", "SIGNAL TERM"},
		{`tor.signal("NEWNYM")`, nil, "", "SIGNAL NEWNYM"},
		{`tor.set_conf(ExitNodes="{de}")`, nil, refused("SETCONF", "SETCONF:ExitNodes"), ""},
		{`tor.require(config=["ExitNodes"])` + "\n" + `tor.set_conf(ExitNodes="{de}")`, nil, "", "SETCONF ExitNodes={de}"},
		{`tor.reset_conf("ExitNodes")`, []string{"SETCONF"}, "", "RESETCONF ExitNodes"},
		{`tor.drop_guards()`, nil, refused("DROPGUARDS", "DROPGUARDS"), ""},
		{`tor.require(commands=["SAVECONF", "DROPGUARDS"])` + "\n" + `tor.signal("NEWNYM")`, []string{"SAVECONF"}, "this script needs grants it was not given: run it with --allow DROPGUARDS", ""},
		{`tor.policy(lambda s: None)` + "\ntor.after(0.01, lambda: exit(0))", nil, "", "SETCONF __LeaveStreamsUnattached=1"},
		// The line is read as tor reads it (ctl.ParseCommandLine).
		{`tor.raw("SAVECONF\t")`, nil, refused("SAVECONF", "SAVECONF"), ""},
		{`tor.raw("signal\tHALT")`, nil, refused("SIGNAL", "SIGNAL:HALT"), ""},
		{`tor.raw("SETEVENTS\tCIRC")`, nil, "refused, nothing sent: SETEVENTS is not for scripts", ""},
		{`tor.require(config=["MaxCircuitDirtiness"])` + "\n" + `tor.raw('SETCONF MaxCircuitDirtiness="604"NewCircuitPeriod=77')`, nil, refused("SETCONF", "SETCONF:NewCircuitPeriod"), ""},
		{`tor.raw("SETCONF ExitNodes=1\vB=2")`, nil, "refused, nothing sent: tor could read this command otherwise", ""},
		{`tor.raw('SETCONF ExitNodes="{de}')`, nil, "refused, nothing sent: tor could read this command otherwise: SETCONF arguments: an unterminated quoted value", ""},
		{`tor.raw('SETCONF Log="notice file /tmp/x"')`, nil, refused("SETCONF", "SETCONF:Log"), ""},
		{`tor.require(config=["Log"])` + "\n" + `tor.raw('SETCONF Log="notice file /tmp/x"')`, nil, "", `SETCONF Log="notice file /tmp/x"`},
	} {
		f := newFakeControlPort(t)
		r := startScript(t, f, tc.src, Options{Allow: tc.allow})
		_, err := r.wait(10 * time.Second)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s (--allow %v): %v", tc.src, tc.allow, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s (--allow %v): error %v, want %q", tc.src, tc.allow, err, tc.err)
		}
		var sent []string
		for _, c := range f.Commands() {
			sent = append(sent, c.Line)
		}
		for _, l := range sent {
			for _, kw := range []string{"SAVECONF", "SIGNAL HALT", "SIGNAL TERM", "DROPGUARDS", "SETCONF ExitNodes", "SIGNAL\tHALT", "SETEVENTS\t", "SETCONF Max", "SETCONF Log"} {
				if strings.HasPrefix(strings.ToUpper(l), strings.ToUpper(kw)) && l != tc.sent {
					t.Errorf("%s (--allow %v): %q was sent", tc.src, tc.allow, l)
				}
			}
		}
		if tc.sent != "" && !slices.Contains(sent, tc.sent) {
			t.Errorf("%s (--allow %v): %q was not sent; sent %q", tc.src, tc.allow, tc.sent, sent)
		}
	}
}

// TestLoadOutsideRefused: load() reads no file outside the script's
// directory (a symbolic link out included) unless --allow load.
func TestLoadOutsideRefused(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	for _, d := range []string{tree, filepath.Join(tree, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "outside.star"), "x = 1\n")
	write(filepath.Join(tree, "sub", "inside.star"), "y = 2\n")
	if err := os.Symlink(filepath.Join(dir, "outside.star"), filepath.Join(tree, "link.star")); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(tree, "main.star")
	for _, tc := range []struct {
		src   string
		allow []string
		want  string
	}{
		{`load("sub/inside.star", "y")` + "\nprint(y)\n", nil, "2\n"},
		{`load("../outside.star", "x")` + "\nprint(x)\n", nil, "refused: " + filepath.Join(dir, "outside.star") + " is outside the script's directory " + tree + " (run with --allow load to let it read there)"},
		{`load("link.star", "x")` + "\nprint(x)\n", nil, "is outside the script's directory"},
		{`load("../outside.star", "x")` + "\nprint(x)\n", []string{"load"}, "1\n"},
		{`load("@stdlib/README.star", "x")` + "\n", nil, "README.star"},
	} {
		write(main, tc.src)
		var out syncBuffer
		r := New(Options{Stdout: &out, Logger: discardLogger(), Allow: tc.allow})
		_, err := r.Run(t.Context(), main, []byte(tc.src))
		got := out.String()
		if err != nil {
			got = FormatError(err)
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("%q with --allow %v: got %q, want %q", tc.src, tc.allow, got, tc.want)
		}
	}
}

func TestReadRequirements(t *testing.T) {
	src := `
tor.require(commands=["SAVECONF", "SIGNAL:HALT"], config=["ExitNodes"])
def f():
    tor.save_conf()
    tor.signal("NEWNYM")
    tor.signal("HALT")
    tor.set_conf(ExitNodes="{de}")
    tor.set_conf(UseBridges=1)
    tor.raw("GETINFO version")
    tor.get_info("version")
`
	f, err := FileOptions().Parse("x.star", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	req := ReadRequirements(f)
	if !slices.Equal(req.Commands, []string{"SAVECONF", "SIGNAL:HALT"}) || !slices.Equal(req.Config, []string{"ExitNodes"}) {
		t.Errorf("declared: %+v", req)
	}
	want := []string{"tor.raw: as the command sent", "tor.save_conf: SAVECONF", "tor.set_conf: SETCONF:UseBridges", "tor.signal: SIGNAL:HALT"}
	if !slices.Equal(req.Uses, want) {
		t.Errorf("uses:\n%q\nwant\n%q", req.Uses, want)
	}
}
