package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTestCommand is a test of the tester: torscript test passes a file
// whose expectations hold, and fails, with the place of the wrong
// expectation, one whose expectation is wrong.
func TestTestCommand(t *testing.T) {
	dir := t.TempDir()
	policy := "tor.policy(lambda s: tor.close(\"EXITPOLICY\") if s.target_port == 25 else None)\n"
	good := "def test_ports():\n    sim.run(\"p.star\")\n    s = sim.stream_new(target=\"mail.example:25\")\n    sim.expect_close(s, \"EXITPOLICY\")\n"
	bad := strings.Replace(good, `"EXITPOLICY")`+"\n", `"DONE")`+"\n", 1)
	for name, body := range map[string]string{"p.star": policy, "good_test.star": good, "bad_test.star": bad} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (exitCodeT, string) {
		var out, errOut bytes.Buffer
		f := newFactory(strings.NewReader(""), &out, &errOut)
		root := newCmdRoot(f)
		root.SetArgs(args)
		err := root.ExecuteContext(context.Background())
		return exitCode(err), out.String() + errOut.String()
	}
	goodPath, badPath := filepath.Join(dir, "good_test.star"), filepath.Join(dir, "bad_test.star")
	if code, out := run("test", "-v", goodPath); code != 0 || out != "PASS test_ports ("+goodPath+")\nok: 1 passed\n" {
		t.Errorf("good: status %d, output:\n%s", code, out)
	}
	code, out := run("test", goodPath, badPath)
	if code != exitError {
		t.Errorf("bad: status %d", code)
	}
	want := "FAIL test_ports (" + badPath + ")\n    " + badPath + ":4:21: sim.expect_close: want CLOSESTREAM 1 6 (DONE); CLOSESTREAM commands not expected yet: CLOSESTREAM 1 4\n"
	if !strings.HasPrefix(out, want) || !strings.HasSuffix(out, "FAIL: 1 failed, 1 passed\n") {
		t.Errorf("bad: output:\n%s\nwant it to start:\n%s", out, want)
	}
}
