package repl

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/torscript/torscript/ctl/ctltest"
	"go.starlark.net/starlark"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime"
)

// offlineREPL is a REPL over a session with no tor: what needs no control
// connection (Starlark, the REPL's commands, completion of names and
// attributes) works as with one.
func offlineREPL(t *testing.T, input string) (*repl, *ctltest.SyncBuffer, *ctltest.SyncBuffer) {
	t.Helper()
	out, errOut := &ctltest.SyncBuffer{}, &ctltest.SyncBuffer{}
	rp := &repl{out: out, errOut: errOut}
	rp.comp = &completer{rp: rp}
	r := runtime.New(runtime.Options{Stdout: out, OnEvent: rp.onEvent})
	s, err := r.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rp.s = s
	in := newPipeReader(strings.NewReader(input))
	rp.in = in
	t.Cleanup(func() {
		in.close()
		s.Close()
	})
	return rp, out, errOut
}

func TestREPLOffline(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "lib.star")
	if err := os.WriteFile(script, []byte("def double(x):\n    return 2 * x\nloaded = True\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	input := strings.Join([]string{
		"1 + 2",
		"_ * 10",
		"def f(x):",
		"    if x > 1:",
		"        return x * f(x - 1)",
		"    return 1",
		"",
		"f(5)",
		"xs = [",
		"  1,",
		"  2]",
		"xs",
		"None",
		`print("printed")`,
		"SIGNAL = 3",
		"SIGNAL + 1",
		"nonesuch",
		"fail(\"boom\")",
		":load " + script,
		"double(21), loaded",
		":policy",
		":nonesuch",
		`"multi\nline"`,
		"tor.get_info(\"version\")",
		"exit(0)",
		"after_exit",
	}, "\n") + "\n"
	rp, out, errOut := offlineREPL(t, input)
	rp.loop()
	wantOut := strings.Join([]string{
		"3",
		"30",
		"120",
		"[1, 2]",
		"printed",
		"4",
		"loaded " + script + ": double, loaded",
		"(42, True)",
		"no stream policy",
		"multi",
		"line",
		"",
	}, "\n")
	if got := out.String(); got != wantOut {
		t.Errorf("output:\n%s\nwant:\n%s", got, wantOut)
	}
	e := errOut.String()
	for _, want := range []string{
		"<stdin>:1:1: undefined: nonesuch",
		"Error in fail: boom",
		"unknown command :nonesuch; :help lists the commands",
		"not connected",
	} {
		if !strings.Contains(e, want) {
			t.Errorf("errors lack %q:\n%s", want, e)
		}
	}
	if strings.Contains(e+out.String(), "after_exit") {
		t.Errorf("input after exit() ran")
	}
	// Run ends a piped session with these counted (exit status 1).
	if rp.failed != 4 || (&InputsFailed{N: rp.failed}).Error() != "4 inputs failed" {
		t.Errorf("%d inputs counted as failed, want 4", rp.failed)
	}
	if strings.Contains(e+out.String(), "\x1b") {
		t.Errorf("escape codes in the output of piped input")
	}
}

func TestREPLWatchesOffline(t *testing.T) {
	rp, out, errOut := offlineREPL(t, ":watch\n:watch stream where stream.target_port == 443\n:watch circ\n:watch\n:unwatch 1\n:watch\n:unwatch 7\n:watch nonesuch\n:watch stream where (\n:unwatch all\n:unwatch all\n:events clear\n")
	rp.loop()
	want := "no watches; :watch TYPE [where EXPR]\nwatch 1: stream where stream.target_port == 443\nwatch 2: circ\nwatch 1: stream where stream.target_port == 443\nwatch 2: circ\nremoved watch 1\nwatch 2: circ\nremoved watch 2\nno watches\n0 events cleared\n"
	if got := out.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	for _, w := range []string{"no watch 7", `unknown event "nonesuch"`, "<watch>:"} {
		if !strings.Contains(errOut.String(), w) {
			t.Errorf("errors lack %q:\n%s", w, errOut.String())
		}
	}
}

func TestIsRawCommand(t *testing.T) {
	for line, want := range map[string]bool{
		"GETINFO version":       true,
		"SIGNAL NEWNYM":         true,
		"QUIT":                  true,
		"SETEVENTS CIRC STREAM": true,
		"SIGNAL == 3":           false,
		"SIGNAL + 1":            false,
		"SIGNAL = 3":            false,
		"SIGNAL=3":              false,
		"GETINFO.x":             false,
		"getinfo version":       false,
		"GETINFOS x":            false,
		"tor.get_info(\"x\")":   false,
		"MAX = 3":               false,
	} {
		if got := isRawCommand(line); got != want {
			t.Errorf("isRawCommand(%q) = %v", line, got)
		}
	}
}

func TestSecretLine(t *testing.T) {
	for line, want := range map[string]bool{
		`tor.set_conf(HashedControlPassword="16:AB")`: true,
		`SETCONF HashedControlPassword=16:AB`:         true,
		`AUTHENTICATE "x"`:                            true,
		`tor.add_onion(key="ED25519-V3:abc")`:         true,
		`tor.onion_client_auth_add("x", "x25519:k")`:  true,
		`tor.get_info("version")`:                     false,
		`GETCONF SocksPort`:                           false,
	} {
		if got := secretLine(line); got != want {
			t.Errorf("secretLine(%q) = %v", line, got)
		}
	}
}

func TestPretty(t *testing.T) {
	long := starlark.NewList(nil)
	for i := range 120 {
		long.Append(starlark.MakeInt(i * 1000))
	}
	got := pretty(long)
	lines := strings.Split(got, "\n")
	if lines[0] != "[" || lines[1] != "  0," || lines[50] != "  49000," || lines[51] != "  … 70 more (120 in all)" || lines[52] != "]" || len(lines) != 53 {
		t.Errorf("long list:\n%s", got)
	}
	if got := pretty(starlark.NewList([]starlark.Value{starlark.MakeInt(1)})); got != "[1]" {
		t.Errorf("short list: %s", got)
	}
	if got := pretty(starlark.String("a\"b")); got != `"a\"b"` {
		t.Errorf("one-line string: %s", got)
	}
	text := strings.Repeat("line\n", 250)
	got = pretty(starlark.String(text))
	lines = strings.Split(got, "\n")
	if len(lines) != 201 || lines[200] != "… 50 more lines (250 in all; _ holds the whole string)" {
		t.Errorf("long string: %d lines, last %q", len(lines), lines[len(lines)-1])
	}
	d := starlark.NewDict(3)
	for i := range 60 {
		d.SetKey(starlark.String(strings.Repeat("k", 3)+string(rune('A'+i%26))+strings.Repeat("x", i)), starlark.MakeInt(i))
	}
	if got := pretty(d); !strings.HasPrefix(got, "{\n  \"kkkA\": 0,\n") || !strings.HasSuffix(got, "  … 10 more (60 in all)\n}") {
		t.Errorf("dict:\n%s", got)
	}
}

func TestParseTorNames(t *testing.T) {
	tn := parseTorNames(map[string]string{
		"info/names":   "version -- The current version of Tor.\nns/id/* -- Brief summary of router status by ID.\nns/name/* -- By nickname.\nconfig/names -- List of configuration options.",
		"config/names": "SocksPort LineList\nExitNodes RouterList",
		"events/names": "CIRC STREAM ORCONN",
		"signal/names": "RELOAD NEWNYM\nHALT",
	})
	eq := func(what string, got, want []string) {
		if !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", what, got, want)
		}
	}
	eq("info", tn.info, []string{"config/names", "ns/id/", "ns/name/", "version"})
	eq("config", tn.config, []string{"ExitNodes", "SocksPort"})
	eq("events", tn.events, []string{"CIRC", "ORCONN", "STREAM"})
	eq("signals", tn.signals, []string{"HALT", "NEWNYM", "RELOAD"})
}

// TestCompleteOffline checks completion of what needs no tor: names,
// attributes, keywords, the REPL's commands and control keywords.
func TestCompleteOffline(t *testing.T) {
	rp, _, _ := offlineREPL(t, "point = struct(x_pos=1, x_neg=2)\n")
	rp.loop()
	c := rp.comp
	cases := []struct {
		line string
		want []string
		n    int
	}{
		{"tor.att", []string{"ach", "ach_stream"}, 3},
		{"tor.get_i", []string{"nfo"}, 5},
		{"poi", []string{"nt"}, 3},
		{"point.x_", []string{"neg", "pos"}, 2},
		{"x = poi", []string{"nt"}, 3},
		{"lam", []string{"bda"}, 3},
		{"le", []string{"n"}, 2},
		{":wa", []string{"tch"}, 3},
		{"GETI", []string{"NFO"}, 4},
		{"SETCIRCUITP", []string{"URPOSE"}, 11},
		{"nonesuch.", nil, 0},
	}
	// Tor's names, as if fetched from a tor.
	c.names = parseTorNames(map[string]string{
		"info/names":   "version -- v\nns/id/* -- by id",
		"config/names": "SocksPort LineList\nSocksPolicy LineList\nExitNodes RouterList",
		"events/names": "CIRC STREAM CIRC_MINOR",
		"signal/names": "NEWNYM RELOAD",
	})
	cases = append(cases, []struct {
		line string
		want []string
		n    int
	}{
		{`tor.get_info("ver`, []string{"sion"}, 3},
		{`tor.get_info("ns/i`, []string{"d/"}, 4},
		{`GETINFO ver`, []string{"sion"}, 3},
		{`tor.get_conf("Socks`, []string{"Policy", "Port"}, 5},
		{`tor.set_conf(SocksP`, []string{"olicy=", "ort="}, 6},
		{`tor.set_conf(ExitNodes="{de}", Socks`, []string{"Policy=", "Port="}, 5},
		{`SETCONF Ex`, []string{"itNodes"}, 2},
		{`tor.on("circ`, []string{"", "_minor"}, 4},
		{`SETEVENTS CIRC ST`, []string{"REAM"}, 2},
		{`tor.signal("NEW`, []string{"NYM"}, 3},
		{`SIGNAL RE`, []string{"LOAD"}, 2},
	}...)
	for _, tc := range cases {
		got, n := c.Do([]rune(tc.line), len([]rune(tc.line)))
		var s []string
		for _, r := range got {
			s = append(s, string(r))
		}
		slices.Sort(s)
		if !slices.Equal(s, tc.want) || n != tc.n {
			t.Errorf("%q: %q (%d), want %q (%d)", tc.line, s, n, tc.want, tc.n)
		}
	}
}

func TestNewLineScanner(t *testing.T) {
	next := newLineScanner(strings.NewReader("a\r\nb\n\nlast"))
	var got []string
	for {
		l, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, l)
	}
	if !slices.Equal(got, []string{"a", "b", "", "last"}) {
		t.Errorf("%q", got)
	}
}

func TestEventRing(t *testing.T) {
	var r eventRing
	for i := range maxEvents + 10 {
		r.add(&ctl.SignalEvent{Signal: ctl.Signal(strconv.Itoa(i))})
	}
	all := r.all()
	if len(all) != maxEvents || all[0].(*ctl.SignalEvent).Signal != "10" || all[maxEvents-1].(*ctl.SignalEvent).Signal != ctl.Signal(strconv.Itoa(maxEvents+9)) {
		t.Errorf("%d events, first %v, last %v", len(all), all[0], all[len(all)-1])
	}
}

// TestPrivateHistory: the history file is the user's alone, new or old.
func TestPrivateHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "torscript", "history")
	if err := privateHistory(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new history: %v, %v; want mode 0600", fi.Mode(), err)
	}
	os.Chmod(path, 0o644)
	if err := privateHistory(path); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("old history: mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestFormatWhole: torscript eval prints long values as the REPL does,
// one element a line, but whole.
func TestFormatWhole(t *testing.T) {
	var items []starlark.Value
	for i := range 120 {
		items = append(items, starlark.MakeInt(i))
	}
	got := Format(starlark.NewList(items))
	lines := strings.Split(got, "\n")
	if len(lines) != 122 || lines[0] != "[" || lines[120] != "  119," || lines[121] != "]" || strings.Contains(got, "more") {
		t.Errorf("Format of 120 ints: %d lines:\n%s", len(lines), got)
	}
	if got := Format(starlark.String("a\nb\n")); got != "a\nb" {
		t.Errorf("Format of a text: %q", got)
	}
	if got := Format(starlark.String("one line")); got != `"one line"` {
		t.Errorf("Format of a short string: %q", got)
	}
}

// TestREPLLoadArgs: :load FILE -- ARGS gives the script its argv; the
// session's own argv stays.
func TestREPLLoadArgs(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "args.star")
	if err := os.WriteFile(script, []byte("got = argv[1:]\nname = argv[0].split(\"/\")[-1]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rp, out, errOut := offlineREPL(t, ":load "+script+" -- exit1 127.0.0.2\ngot, name\n:load "+script+"\ngot\nargv\n")
	rp.loop()
	loaded := "loaded " + script + ": got, name\n"
	want := loaded + "([\"exit1\", \"127.0.0.2\"], \"args.star\")\n" + loaded + "[]\n[\"<repl>\"]\n"
	if got := out.String(); got != want {
		t.Errorf("output %q, want %q; errors:\n%s", got, want, errOut.String())
	}
}

// TestManualEntry: an option's text from tor's manual page, as roff
// written by asciidoc has it; the next option is not part of it.
func TestManualEntry(t *testing.T) {
	roff := ".PP\n\\fBSocksPolicy\\fR \\fIpolicy\\fR\n.RS 4\nSet an entrance policy\\&.\n.RE\n.PP\n" +
		"\\fBSocksPort\\fR [\\fIaddress\\fR\\fB:\\fR]\\fIport\\fR|\\fBauto\\fR\n.RS 4\nOpen this port to listen for connections from SOCKS\\-speaking applications\\&. Set this to 0 if you don\\(cqt want to allow application connections via SOCKS\\&.\n.PP\n\\fBIsolateClientAddr\\fR\n.RS 4\nDon\\(cqt share circuits\\&.\n.RE\n.RE\n.PP\n\\fBSocksTimeout\\fR \\fINUM\\fR\n.RS 4\nLet a socket wait\\&.\n.RE\n"
	got := manualFind(strings.NewReader(roff), "socksport")
	want := "SocksPort [address:]port|auto\n" +
		"  Open this port to listen for connections from SOCKS-speaking applications.\n" +
		"  Set this to 0 if you don't want to allow application connections via SOCKS.\n" +
		"\n" +
		"  IsolateClientAddr\n" +
		"    Don't share circuits.\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	// The manual puts an emphasized word on a line of its own; the
	// paragraph is one text again.
	roff = ".PP\n\\fBMaxCircuitDirtiness\\fR \\fINUM\\fR\n.RS 4\nFor hidden services, this applies to the\n\\fIlast\\fR\ntime a circuit was used\\&.\n.RE\n"
	if got, want := manualFind(strings.NewReader(roff), "MaxCircuitDirtiness"), "MaxCircuitDirtiness NUM\n  For hidden services, this applies to the last time a circuit was used.\n"; got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if got := manualFind(strings.NewReader(roff), "NoSuchOption"); got != "" {
		t.Errorf("an unknown option: %q", got)
	}
	if _, err := os.Stat("/usr/share/man/man1/tor.1.gz"); err == nil {
		if got := manualEntry("SocksPort"); !strings.HasPrefix(got, "SocksPort ") || !strings.Contains(got, "SOCKS") {
			t.Errorf("Debian's manual: %q", got)
		}
	}
}
