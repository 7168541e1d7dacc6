package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTestCommand is a test of the tester: torscript test passes a file
// whose expectations hold, and fails, with the place of the wrong
// expectation, one whose expectation is wrong.
func TestTestCommand(t *testing.T) {
	dir := t.TempDir()
	policy := "tor.policy(lambda s: tor.close(\"EXITPOLICY\") if s.target_port == 25 else None)\n"
	good := "def test_ports():\n    sim.run(\"p.star\")\n    s = sim.stream_new(target=\"mail.example:25\")\n    sim.expect_close(s, \"EXITPOLICY\")\n"
	bad := strings.Replace(good, `"EXITPOLICY")`+"\n", `"DONE")`+"\n", 1)
	forgot := strings.Replace(good, "    sim.run(\"p.star\")\n", "", 1)
	for name, body := range map[string]string{"p.star": policy, "good_test.star": good, "bad_test.star": bad, "forgot_test.star": forgot, "none_test.star": "x = 1\n"} {
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
	want := "FAIL test_ports (" + badPath + ")\n    " + badPath + ":4:21: sim.expect_close: want CLOSESTREAM 1 6 (DONE); CLOSESTREAM commands not expected yet: CLOSESTREAM 1 4 (EXITPOLICY)\n"
	if !strings.HasPrefix(out, want) || !strings.HasSuffix(out, "FAIL: 1 failed, 1 passed\n") {
		t.Errorf("bad: output:\n%s\nwant it to start:\n%s", out, want)
	}
	// Forgetting sim.run is named; a file without tests is reported, not
	// failed.
	if code, out := run("test", filepath.Join(dir, "forgot_test.star")); code != exitError || !strings.Contains(out, "sim.run was not called") {
		t.Errorf("forgot sim.run: status %d, output:\n%s", code, out)
	}
	nonePath := filepath.Join(dir, "none_test.star")
	if code, out := run("test", nonePath, goodPath); code != 0 || !strings.Contains(out, nonePath+": no test_ functions, nothing run\n") || !strings.HasSuffix(out, "ok: 1 passed\n") {
		t.Errorf("no tests: status %d, output:\n%s", code, out)
	}
}

// runTestCmd runs `torscript test` with args in this process.
func runTestCmd(ctx context.Context, args ...string) (exitCodeT, string) {
	var out, errOut bytes.Buffer
	f := newFactory(strings.NewReader(""), &out, &errOut)
	root := newCmdRoot(f)
	root.SetArgs(append([]string{"test"}, args...))
	err := root.ExecuteContext(ctx)
	return exitCode(err), out.String() + errOut.String()
}

// TestTestCommandOverrun: a test that never ends fails at --timeout,
// naming the line where it was stopped, and the next test runs; a test
// over --max-steps fails too.
func TestTestCommandOverrun(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "loop_test.star")
	src := "def test_loops():\n    x = 1\n    while True:\n        pass\n\ndef test_passes():\n    assert.eq(1, 1)\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, out := runTestCmd(context.Background(), "-v", "--timeout", "300ms", "--max-steps", "1000000000000", path)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v with --timeout 300ms", took)
	}
	if code != exitError {
		t.Errorf("status %d", code)
	}
	for _, want := range []string{
		"FAIL test_loops (" + path + ")\n    " + path + ":4:9: Starlark computation cancelled: test test_loops ran longer than the test timeout (300ms)\n",
		"PASS test_passes (" + path + ")\n",
		"FAIL: 1 failed, 1 passed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out = runTestCmd(context.Background(), "--max-steps", "10000", path)
	if code != exitError || !strings.Contains(out, "test test_loops took more than 10000 steps (--max-steps)") || !strings.Contains(out, "FAIL: 1 failed, 1 passed") {
		t.Errorf("--max-steps: status %d, output:\n%s", code, out)
	}
}

// TestTestCommandInterrupted: a cancelled context (SIGINT, SIGTERM) stops
// a test that loops, and the run, at once.
func TestTestCommandInterrupted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "loop_test.star")
	if err := os.WriteFile(path, []byte("def test_a():\n    while True:\n        pass\n\ndef test_b():\n    pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	code, out := runTestCmd(ctx, "--timeout", "1h", "--max-steps", "1000000000000", path)
	if took := time.Since(start); took > time.Second {
		t.Errorf("returned %v after an interrupt at 200ms", took)
	}
	if code != exitError || !strings.HasSuffix(out, "FAIL: interrupted (0 failed, 0 passed)\n") {
		t.Errorf("status %d, output:\n%s", code, out)
	}
}

// TestHelperTorscript is torscript itself when the tests run this binary
// as a child (TORSCRIPT_TEST_MAIN=1, arguments after "--").
func TestHelperTorscript(t *testing.T) {
	if os.Getenv("TORSCRIPT_TEST_MAIN") != "1" {
		t.Skip("runs only as a child torscript")
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Args = append([]string{"torscript"}, args...)
	tune()
	os.Exit(int(mainRun()))
}

// TestTestCommandSIGTERM: a real torscript test process running a test
// that loops forever exits within 2 s of SIGTERM (and of SIGINT), with
// status 1, even when the test is blocked where cancellation cannot reach.
func TestTestCommandSIGTERM(t *testing.T) {
	dir := t.TempDir()
	loop := filepath.Join(dir, "loop_test.star")
	if err := os.WriteFile(loop, []byte("def test_forever():\n    while True:\n        pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A comparison of two nested lists (30^8 leaves) is one long Go
	// operation: nothing cancels it.
	blocked := filepath.Join(dir, "blocked_test.star")
	if err := os.WriteFile(blocked, []byte(`def test_blocked():
    a, b = [], []
    for i in range(8):
        a, b = [a] * 30, [b] * 30
    while True:
        a == b
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		file string
		sig  syscall.Signal
	}{
		{"SIGTERM", loop, syscall.SIGTERM},
		{"SIGINT", loop, syscall.SIGINT},
		{"SIGTERM blocked", blocked, syscall.SIGTERM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperTorscript$", "--", "test", "--timeout", "1h", "--max-steps", "1000000000000000", tc.file)
			cmd.Env = append(os.Environ(), "TORSCRIPT_TEST_MAIN=1")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			// Let it get into the test.
			select {
			case err := <-done:
				t.Fatalf("exited before the signal: %v\n%s", err, out.String())
			case <-time.After(time.Second):
			}
			sent := time.Now()
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("still running 2s after %v\n%s", tc.sig, out.String())
			}
			if code := cmd.ProcessState.ExitCode(); code != 1 {
				t.Errorf("exit status %d, want 1\n%s", code, out.String())
			}
			if !strings.Contains(out.String(), "FAIL: interrupted") {
				t.Errorf("output:\n%s", out.String())
			}
			t.Logf("exited %v after %v", cmd.ProcessState, time.Since(sent))
		})
	}
}
