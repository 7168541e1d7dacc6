package runtime

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl/ctltest"
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
		f := newTestTor(t)
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
		var out ctltest.SyncBuffer
		r := New(Options{Stdout: &out, Logger: discardLogger(), Allow: tc.allow})
		err := r.Run(t.Context(), main, []byte(tc.src))
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
	want := []string{"tor.save_conf: SAVECONF", "tor.set_conf: SETCONF:UseBridges", "tor.signal: SIGNAL:HALT"}
	if !slices.Equal(req.Uses, want) || req.Dynamic != nil {
		t.Errorf("uses:\n%q\nwant\n%q\ndynamic %q", req.Uses, want, req.Dynamic)
	}
}

// TestReadRequirementsDynamic: what check cannot follow is said, with
// its place; a literal tor.raw line is read as run reads it; a keyword
// argument or a local named tor is not tor.
func TestReadRequirementsDynamic(t *testing.T) {
	src := `
def f(x):
    tor = x
    return tor.save_conf
f(tor = 1)
getattr(tor, "save_conf")()
g = tor.raw
tor.raw(" ".join(["SAVE", "CONF"]))
tor.raw("SAVECONF\t")
tor.raw("SETCONF\tExitNodes=1")
tor.raw("SETEVENTS\tCIRC")
tor.raw("GETINFO version")
s = tor.save_conf
`
	f, err := FileOptions().Parse("x.star", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	req := ReadRequirements(f)
	wantUses := []string{
		"tor.raw: SAVECONF (SETCONF keys the script declares need none)",
		"tor.raw: SETCONF:ExitNodes (SETCONF keys the script declares need none)",
		`tor.raw("SETEVENTS\tCIRC"): refused at run (the runtime's own command)`,
		"tor.raw: as the command sent",
		"tor.save_conf: SAVECONF",
	}
	slices.Sort(wantUses)
	got := slices.Clone(req.Uses)
	slices.Sort(got)
	if !slices.Equal(got, wantUses) {
		t.Errorf("uses:\n%q\nwant\n%q", got, wantUses)
	}
	wantDyn := []string{
		"x.star:6:9: tor used as a value (getattr, passed to a function, assigned); run will decide which grants it needs",
		"x.star:7:5: tor.raw used other than by a call; run will decide which grants its calls need",
		"x.star:8:1: tor.raw with a command built at run time; run will decide which grants it needs",
	}
	if !slices.Equal(req.Dynamic, wantDyn) {
		t.Errorf("dynamic:\n%q\nwant\n%q", req.Dynamic, wantDyn)
	}
}

// TestCheckRequirements: check follows loads (a module's uses count, a
// cycle and a missing name are errors at their place) and says what the
// script could reach through them.
func TestCheckRequirements(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("lib.star", "tor.require(config=[\"ExitNodes\"])\ndef save():\n    tor.save_conf()\ndef set():\n    tor.set_conf(ExitNodes=\"{de}\", UseBridges=1)\n")
	write("dyn.star", "def call(name):\n    return getattr(tor, name)()\n")
	main := write("main.star", "load(\"lib.star\", \"save\")\nload(\"dyn.star\", \"call\")\nsave()\n")
	req, err := CheckRequirements(main, mustRead(t, main), Options{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	wantUses := []string{"tor.save_conf: SAVECONF (in " + displayName(filepath.Join(dir, "lib.star")) + ")", "tor.set_conf: SETCONF:UseBridges (in " + displayName(filepath.Join(dir, "lib.star")) + ")"}
	if !slices.Equal(req.Uses, wantUses) || !slices.Equal(req.Config, []string{"ExitNodes"}) {
		t.Errorf("uses %q, config %q; want uses %q", req.Uses, req.Config, wantUses)
	}
	if len(req.Dynamic) != 1 || !strings.HasPrefix(req.Dynamic[0], filepath.Join(dir, "dyn.star")+":2:20: tor used as a value") {
		t.Errorf("dynamic %q", req.Dynamic)
	}

	write("a.star", "load(\"b.star\", \"b\")\na = 1\n")
	write("b.star", "x = 1\nload(\"a.star\", \"a\")\nb = 2\n")
	cyc := write("cyc.star", "load(\"a.star\", \"a\")\n")
	_, err = CheckRequirements(cyc, mustRead(t, cyc), Options{Logger: discardLogger()})
	want := filepath.Join(dir, "b.star") + `:2:6: load "a.star": cycle in load graph: `
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "a.star loads "+displayName(filepath.Join(dir, "b.star"))+" loads "+displayName(filepath.Join(dir, "a.star"))) {
		t.Errorf("cycle: %v, want %s...", err, want)
	}
	self := write("self.star", "load(\"self.star\", \"x\")\nx = 1\n")
	if _, err := CheckRequirements(self, mustRead(t, self), Options{Logger: discardLogger()}); err == nil || !strings.Contains(err.Error(), "self.star:1:6: load \"self.star\": cycle in load graph") {
		t.Errorf("self-load: %v", err)
	}
	missing := write("missing.star", "load(\"lib.star\", \"save\", \"nosuch\")\n")
	_, err = CheckRequirements(missing, mustRead(t, missing), Options{Logger: discardLogger()})
	if err == nil || err.Error() != filepath.Join(dir, "missing.star")+`:1:27: load "lib.star": `+displayName(filepath.Join(dir, "lib.star"))+` defines no global "nosuch"` {
		t.Errorf("missing name: %v", err)
	}
	// What a module loads is file-local to it: not a global to load.
	write("reexport.star", "load(\"lib.star\", \"save\")\n")
	re := write("re.star", "load(\"reexport.star\", \"save\")\n")
	if _, err := CheckRequirements(re, mustRead(t, re), Options{Logger: discardLogger()}); err == nil || !strings.Contains(err.Error(), `defines no global "save"`) {
		t.Errorf("a loaded name re-exported: %v", err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGrantsConfigNames: tor takes abbreviations of config keys ("l" is
// Log), so a key tor reads as another name is refused: a grant or a
// declaration names the option itself. The runtime's own options need the
// user's grant even when declared.
func TestGrantsConfigNames(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	f.ReplyLine("GETCONF l", "250 Log=notice stdout")
	r := startScript(t, f, `tor.require(config=["l"])`+"\n"+`tor.raw('SETCONF l="notice file /tmp/x"')`, Options{})
	_, err := r.wait(10 * time.Second)
	if err == nil || !strings.Contains(err.Error(), `tor reads the config key "l" as Log; write Log`) {
		t.Errorf("abbreviated key: %v", err)
	}
	if got := f.Lines("SETCONF"); len(got) != 0 {
		t.Errorf("sent %q", got)
	}

	for _, tc := range []struct {
		allow []string
		sent  bool
	}{{nil, false}, {[]string{"SETCONF:__LeaveStreamsUnattached"}, true}} {
		f := newTestTor(t)
		r := startScript(t, f, `tor.require(config=["__LeaveStreamsUnattached"])`+"\n"+`tor.set_conf(__LeaveStreamsUnattached="1")`, Options{Allow: tc.allow})
		_, err := r.wait(10 * time.Second)
		sent := len(f.Lines("SETCONF __LeaveStreamsUnattached=1")) > 0
		if sent != tc.sent || (err == nil) != tc.sent {
			t.Errorf("declared __LeaveStreamsUnattached, --allow %v: sent %v, err %v", tc.allow, sent, err)
		}
		if !tc.sent && !strings.Contains(err.Error(), "--allow SETCONF:__LeaveStreamsUnattached") {
			t.Errorf("hint: %v", err)
		}
	}
}
