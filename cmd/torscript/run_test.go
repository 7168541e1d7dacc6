package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunFlags(t *testing.T) {
	got, _, err := parseFlags(t, newCmdRun, []string{"run", "--dry-run", "--max-steps", "5", "--handler-timeout", "250ms", "--no-wait", "p.star", "--", "a", "--b"})
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || got.file != "p.star" || strings.Join(got.args, " ") != "a --b" {
		t.Fatalf("options %+v", got)
	}
	if !got.sf.dryRun || got.sf.maxSteps != 5 || got.sf.handlerTimeout != 250*time.Millisecond || !got.sf.noWait {
		t.Errorf("script flags %+v", got.sf)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.star")
	lib := filepath.Join(dir, "lib.star")
	bad := filepath.Join(dir, "bad.star")
	undefined := filepath.Join(dir, "undefined.star")
	os.WriteFile(lib, []byte("def f(s):\n    return None\n"), 0o644)
	os.WriteFile(good, []byte("load(\"lib.star\", \"f\")\ntor.policy(f)\n"), 0o644)
	os.WriteFile(bad, []byte("def f(:\n"), 0o644)
	os.WriteFile(undefined, []byte("x = 1\ny = nope + x\n"), 0o644)
	simTest := filepath.Join(dir, "sim_test.star")
	os.WriteFile(simTest, []byte("def test_x():\n    sim.expect_atach(1)\n"), 0o644)
	assertTest := filepath.Join(dir, "assert_test.star")
	os.WriteFile(assertTest, []byte("def test_x():\n    assert.eq(1, 1)\n    assert.tru(1)\n"), 0o644)

	var out, errOut bytes.Buffer
	f := newFactory(strings.NewReader(""), &out, &errOut)
	if err := checkRun(&checkOptions{f: f, files: []string{good}}); err != nil {
		t.Fatalf("good file: %v; %s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "good.star: ok") {
		t.Errorf("stdout %q", out.String())
	}
	for file, want := range map[string]string{
		bad:        "bad.star:1:8: got ':', want ')'",
		undefined:  "undefined.star:2:5: undefined: nope",
		simTest:    `sim_test.star:2:9: sim has no attribute "expect_atach" (did you mean "expect_attach"?)`,
		assertTest: `assert_test.star:3:12: assert has no attribute "tru" (did you mean "true"?)`,
	} {
		errOut.Reset()
		err := checkRun(&checkOptions{f: f, files: []string{file}})
		if exitCode(err) != exitError {
			t.Errorf("%s: exit %d, want %d", file, exitCode(err), exitError)
		}
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("%s: stderr %q, want %q", file, errOut.String(), want)
		}
	}
}

// TestCheckTellsTheTruth: check reports a load cycle and a missing loaded
// name as errors at their place, lists what loaded modules reach, and says
// plainly when a script reaches tor dynamically.
func TestCheckTellsTheTruth(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("a.star", "load(\"b.star\", \"b\")\na = 1\n")
	write("b.star", "load(\"a.star\", \"a\")\nb = 1\n")
	write("lib.star", "def save():\n    tor.save_conf()\n")
	for file, want := range map[string]string{
		write("cycle.star", "load(\"a.star\", \"a\")\n"):         filepath.Join(dir, "b.star") + `:1:6: load "a.star": cycle in load graph: `,
		write("nosuch.star", "load(\"lib.star\", \"nosuch\")\n"): filepath.Join(dir, "nosuch.star") + `:1:19: load "lib.star": `,
	} {
		var out, errOut bytes.Buffer
		f := newFactory(strings.NewReader(""), &out, &errOut)
		err := checkRun(&checkOptions{f: f, files: []string{file}})
		if exitCode(err) != exitError || !strings.HasPrefix(errOut.String(), want) || out.Len() != 0 {
			t.Errorf("%s: exit %d, stdout %q, stderr %q, want %q...", file, exitCode(err), out.String(), errOut.String(), want)
		}
	}
	for src, want := range map[string][]string{
		"load(\"lib.star\", \"save\")\nsave()\n": {"  calls tor.save_conf: SAVECONF (in "},
		"f = getattr(tor, \"save_\" + \"conf\")\nf()\n": {
			"  reaches tor's builtins in ways check cannot follow, so it may need any grant; run will refuse what it was not allowed, there:\n",
			"dyn.star:1:13: tor used as a value",
		},
		"tor.raw(\"SAVECONF\\t\")\n": {"  calls tor.raw: SAVECONF"},
	} {
		file := write("dyn.star", src)
		var out, errOut bytes.Buffer
		f := newFactory(strings.NewReader(""), &out, &errOut)
		if err := checkRun(&checkOptions{f: f, files: []string{file}}); err != nil {
			t.Fatalf("%q: %v; %s", src, err, errOut.String())
		}
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%q: check printed\n%s\nwant %q", src, out.String(), w)
			}
		}
		if strings.Contains(out.String(), "asks for nothing") {
			t.Errorf("%q: check says it asks for nothing:\n%s", src, out.String())
		}
	}
}
