package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/torscript/torscript/ctl/ctltest"
	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
)

// runFile runs src as filename without tor and returns its output.
func runFile(t *testing.T, filename, src string, opts Options) (string, int, error) {
	t.Helper()
	out := &ctltest.SyncBuffer{}
	opts.Stdout = out
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	code, err := exitOf(New(opts).Run(ctx, filename, []byte(src)))
	return out.String(), code, err
}

// TestLoadRelativeToScript: load paths are relative to the loading file,
// and a module loaded under several spellings runs once.
func TestLoadRelativeToScript(t *testing.T) {
	const want = "c runs\na runs\nABC C ABC {\"k\": 1} 0\n"
	main := "testdata/load/main.star"
	src, err := os.ReadFile(main)
	if err != nil {
		t.Fatal(err)
	}
	// Relative to the working directory, and absolute.
	abs, _ := filepath.Abs(main)
	for _, name := range []string{main, abs} {
		out, code, err := runFile(t, name, string(src), Options{})
		if code != 0 || err != nil {
			t.Fatalf("%s: Run = %d, %v", name, code, err)
		}
		if out != want {
			t.Errorf("%s: stdout %q, want %q", name, out, want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	ctltest.WriteFiles(t, dir, map[string]string{
		"cyc/a.star":   "load(\"b.star\", \"b\")\na = 1\n",
		"cyc/b.star":   "load(\"a.star\", \"a\")\nb = 1\n",
		"self.star":    "load(\"self.star\", \"x\")\nx = 1\n",
		"frozen.star":  "d = {\"k\": 1}\nl = [1]\n",
		"broken.star":  "x = \n",
		"failing.star": "x = 1 // 0\n",
	})
	for _, tc := range []struct {
		name, src, want string
	}{
		{"cycle", `load("cyc/a.star", "a")`, "cycle in load graph"},
		{"self", `load("self.star", "x")`, "cycle in load graph"},
		{"frozen dict", "load(\"frozen.star\", \"d\")\nd[\"x\"] = 2", "frozen"},
		{"frozen list", "load(\"frozen.star\", \"l\")\nl.append(2)", "frozen"},
		{"other repository", `load("@other/x.star", "x")`, `load "@other/x.star": unknown repository (only @stdlib/ is known)`},
		{"stdlib escape", `load("@stdlib/../x.star", "x")`, "not a standard library module"},
		{"stdlib missing", `load("@stdlib/nope.star", "x")`, "nope.star"},
		{"missing", `load("missing.star", "x")`, "missing.star"},
		{"missing name", `load("frozen.star", "nope")`, "nope"},
		{"syntax error in module", `load("broken.star", "x")`, "broken.star:1:5"},
		{"error in module", `load("failing.star", "x")`, "division by zero"},
		{"empty", `load("", "x")`, "empty module name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, code, err := runFile(t, filepath.Join(dir, "main.star"), tc.src, Options{})
			if code != 1 || err == nil {
				t.Fatalf("Run = %d, %v; want 1 and an error", code, err)
			}
			if msg := FormatError(err); !strings.Contains(msg, tc.want) {
				t.Errorf("error:\n%s\nwant it to contain %q", msg, tc.want)
			}
		})
	}
}

// TestLoadCycleMessage: the cycle error names the module still loading.
func TestLoadCycleMessage(t *testing.T) {
	dir := t.TempDir()
	ctltest.WriteFiles(t, dir, map[string]string{
		"a.star": "load(\"b.star\", \"b\")\na = 1\n",
		"b.star": "load(\"a.star\", \"a\")\nb = 1\n",
	})
	_, _, err := runFile(t, filepath.Join(dir, "main.star"), `load("a.star", "a")`, Options{})
	if err == nil {
		t.Fatal("no error")
	}
	msg := FormatError(err)
	if !strings.Contains(msg, `load "a.star": cycle in load graph`) || !strings.Contains(msg, "a.star is still loading") {
		t.Errorf("error:\n%s", msg)
	}
}

// TestLoadStdlib: @stdlib/ modules come from Options.Stdlib, and may only
// load each other.
func TestLoadStdlib(t *testing.T) {
	out, code, err := runFile(t, "x.star", "load(\"@stdlib/README.star\", \"version\")\nprint(version)", Options{})
	if code != 0 || err != nil || out != "0\n" {
		t.Errorf("embedded stdlib: %q, %d, %v", out, code, err)
	}
	lib := fstest.MapFS{
		"a.star":   {Data: []byte("load(\"@stdlib/b.star\", \"b\")\na = \"a\" + b\n")},
		"b.star":   {Data: []byte("b = \"b\"\n")},
		"bad.star": {Data: []byte("load(\"b.star\", \"b\")\n")},
	}
	out, code, err = runFile(t, "x.star", "load(\"@stdlib/a.star\", \"a\")\nprint(a)", Options{Stdlib: lib})
	if code != 0 || err != nil || out != "ab\n" {
		t.Errorf("custom stdlib: %q, %d, %v", out, code, err)
	}
	_, _, err = runFile(t, "x.star", `load("@stdlib/bad.star", "b")`, Options{Stdlib: lib})
	if err == nil || !strings.Contains(err.Error(), "can only load other @stdlib/ modules") {
		t.Errorf("relative load from the stdlib: %v", err)
	}
}

// TestCheck: Check reports syntax, resolve and load errors with their
// positions and runs nothing.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	ctltest.WriteFiles(t, dir, map[string]string{
		"ok.star":     "def f():\n    return 1\n",
		"broken.star": "x = (\n",
		"undef.star":  "x = nope\n",
		"mod.star":    "m = struct(alpha = 1)\n",
		"kw.star":     "m = struct(**{'a': 1})\n",
	})
	x := filepath.Join(dir, "x.star")
	for _, tc := range []struct {
		name, src string
		want      string // regexp; "" for no error
	}{
		{"ok", "def f():\n    return tor.get_info(\"version\")\nprint(f())\n", ""},
		{"ok with loads", "load(\"ok.star\", \"f\")\nload(\"@stdlib/README.star\", \"version\")\nprint(f(), version)\n", ""},
		{"syntax", "x = 1\ndef f(:\n", `^` + regexp.QuoteMeta(x) + `:2:\d+: `},
		{"undefined", "x = 1\nprint(y)\n", `^` + regexp.QuoteMeta(x) + `:2:7: undefined: y$`},
		{"two undefined", "a\nb\n", `^` + regexp.QuoteMeta(x) + `:1:1: undefined: a\n` + regexp.QuoteMeta(x) + `:2:1: undefined: b$`},
		{"missing load", "\nload(\"missing.star\", \"m\")\n", `^` + regexp.QuoteMeta(x) + `:2:\d+: load "missing.star": .*no such file`},
		{"bad repository", "load(\"@other/x.star\", \"m\")\n", `^` + regexp.QuoteMeta(x) + `:1:\d+: load "@other/x.star": unknown repository`},
		{"error in loaded file", "load(\"broken.star\", \"x\")\n", `^` + regexp.QuoteMeta(filepath.Join(dir, "broken.star")) + `:2:1: `},
		{"undefined in loaded file", "load(\"undef.star\", \"x\")\n", `^` + regexp.QuoteMeta(filepath.Join(dir, "undef.star")) + `:1:5: undefined: nope$`},
		// Attributes of modules known before the script runs.
		{"tor attribute", "def p(s):\n    return tor.atach(s)\n", `^` + regexp.QuoteMeta(x) + `:2:16: tor has no attribute "atach" \(did you mean "attach"\?\)$`},
		{"json attribute", "x = json.decod('1')\n", `:1:10: json has no attribute "decod" \(did you mean "decode"\?\)$`},
		{"stdlib attribute", "load(\"@stdlib/routes.star\", \"routes\")\nx = routes.exitt\n", `:2:12: routes has no attribute "exitt" \(did you mean "exit"\?\)$`},
		{"renamed load", "load(\"@stdlib/routes.star\", r = \"routes\")\nx = r.nothing_like_it\n", `:2:7: r has no attribute "nothing_like_it"$`},
		{"struct in a loaded file", "load(\"mod.star\", \"m\")\nx = m.alpa\n", `:2:7: m has no attribute "alpa" \(did you mean "alpha"\?\)$`},
		{"attributes that exist", "load(\"@stdlib/routes.star\", \"routes\")\nx = (routes.exit, tor.attach, json.encode, math.floor, time.now)\n", ""},
		{"a parameter named tor", "def f(tor):\n    return tor.anything\n", ""},
		{"a module of unknown keys", "load(\"kw.star\", \"m\")\nx = m.anything\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := &ctltest.SyncBuffer{}
			err := Check(x, []byte(tc.src), Options{Stdout: out})
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Check: %v", err)
			case tc.want != "" && err == nil:
				t.Errorf("Check: no error, want %s", tc.want)
			case tc.want != "" && !regexp.MustCompile(tc.want).MatchString(err.Error()):
				t.Errorf("Check:\n%v\nwant match for %s", err, tc.want)
			}
			if out.String() != "" {
				t.Errorf("Check ran the script: %q", out.String())
			}
		})
	}
	// The testdata script and everything it loads check.
	src, err := os.ReadFile("testdata/load/main.star")
	if err != nil {
		t.Fatal(err)
	}
	if err := Check("testdata/load/main.star", src, Options{}); err != nil {
		t.Errorf("Check(testdata/load/main.star): %v", err)
	}
}

// TestFormatError: each kind of error is printed once, with its position.
func TestFormatError(t *testing.T) {
	// A builtin's error names it once.
	_, code, err := runFile(t, "x.star", "def f():\n    tor.get_info(\"version\")\nf()\n", Options{})
	if code != 1 || err == nil {
		t.Fatalf("Run = %d, %v", code, err)
	}
	msg := FormatError(err)
	for _, want := range []string{
		"Traceback (most recent call last):",
		"x.star:3:2: in <toplevel>",
		"x.star:2:17: in f",
		"Error in tor.get_info: not connected to tor (no control connection in this mode)",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("FormatError lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "tor.get_info: tor.get_info") {
		t.Errorf("name repeated:\n%s", msg)
	}
	var evalErr *starlark.EvalError
	if !errors.As(err, &evalErr) {
		t.Errorf("Run's error is %T, want it to wrap *starlark.EvalError", err)
	}

	// A Starlark error without a builtin.
	_, _, err = runFile(t, "x.star", "x = {}\nx[1]\n", Options{})
	if msg := FormatError(err); !strings.HasSuffix(msg, "x.star:2:2: in <toplevel>\nError: key 1 not in dict") {
		t.Errorf("FormatError:\n%s", msg)
	}

	// Syntax and resolve errors, from Run.
	_, code, err = runFile(t, "x.star", "def (", Options{})
	if code != 1 || err == nil || !regexp.MustCompile(`^x\.star:1:\d+: `).MatchString(err.Error()) {
		t.Errorf("syntax error: Run = %d, %v", code, err)
	}
	_, _, err = runFile(t, "x.star", "nope()", Options{})
	if err == nil || err.Error() != "x.star:1:1: undefined: nope" {
		t.Errorf("resolve error: %v", err)
	}
	if got := FormatError(resolve.ErrorList{}); got != "" {
		t.Errorf("empty list: %q", got)
	}
	if got := FormatError(errors.New("plain")); got != "plain" {
		t.Errorf("plain error: %q", got)
	}
	// An error whose message merely starts like the builtin's name is left
	// alone.
	_, _, err = runFile(t, "x.star", `fail("fail: x")`, Options{})
	if msg := FormatError(err); !strings.HasSuffix(msg, "Error in fail: fail: x") {
		t.Errorf("fail(): %s", msg)
	}
}

// TestEval: an expression prints its value unless it is None; statements
// run.
func TestEval(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"1 + 2", "3\n"},
		{`"a" + "b"`, "\"ab\"\n"},
		{"None", ""},
		{"print('p')", "p\n"},
		{"x = 1\nprint(x + 1)", "2\n"},
		{"[x * 2 for x in range(3)]", "[0, 2, 4]\n"},
		{"tor.attach(5, hop=1)", "tor.attach(\"5\", hop=1)\n"},
		{"len(argv)", "1\n"},
	} {
		out := &ctltest.SyncBuffer{}
		code, err := exitOf(New(Options{Stdout: out, Logger: discardLogger()}).Eval(context.Background(), tc.src))
		if code != 0 || err != nil {
			t.Errorf("Eval(%q) = %d, %v", tc.src, code, err)
		}
		if out.String() != tc.want {
			t.Errorf("Eval(%q) printed %q, want %q", tc.src, out.String(), tc.want)
		}
	}
	code, err := exitOf(New(Options{Stdout: &ctltest.SyncBuffer{}, Logger: discardLogger()}).Eval(context.Background(), "1 // 0"))
	if code != 1 || err == nil || !strings.Contains(FormatError(err), "division by zero") {
		t.Errorf("Eval(1 // 0) = %d, %v", code, err)
	}
	code, err = exitOf(New(Options{Stdout: &ctltest.SyncBuffer{}, Logger: discardLogger()}).Eval(context.Background(), "x = ("))
	if code != 1 || err == nil || !strings.HasPrefix(err.Error(), "<eval>:1:") {
		t.Errorf("Eval(x = () = %d, %v", code, err)
	}
}

// TestEvalWithTor: an expression that asks tor prints tor's answer.
func TestEvalWithTor(t *testing.T) {
	f := newTestTor(t)
	f.ReplyLine("GETINFO version", "250-version=0.4.8.12\n250 OK")
	out := &ctltest.SyncBuffer{}
	code, err := exitOf(New(Options{Connect: f.Connect, Stdout: out, Logger: discardLogger()}).Eval(context.Background(), `tor.get_info("version")`))
	if code != 0 || err != nil || out.String() != "\"0.4.8.12\"\n" {
		t.Errorf("Eval = %d, %v, printed %q", code, err, out.String())
	}
}

// TestLoadModuleRegisters: a loaded module may register handlers and
// timers and end the script with exit().
func TestLoadModuleRegisters(t *testing.T) {
	dir := t.TempDir()
	ctltest.WriteFiles(t, dir, map[string]string{
		"exit.star":  "exit(3)\n",
		"timer.star": "def start():\n    tor.after(\"10ms\", lambda: exit(4))\nstart()\n",
	})
	_, code, err := runFile(t, filepath.Join(dir, "main.star"), `load("exit.star", "x")`, Options{})
	if code != 3 || err != nil {
		t.Errorf("exit(3) in a loaded module: Run = %d, %v", code, err)
	}
	_, code, err = runFile(t, filepath.Join(dir, "main.star"), `load("timer.star", "start")`, Options{})
	if code != 4 || err != nil {
		t.Errorf("timer from a loaded module: Run = %d, %v", code, err)
	}
}
