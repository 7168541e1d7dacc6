package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// replayTrace is a transcript of three streams, to a.example:443,
// a.example:80 and b.example:80, each given to tor.
const replayTrace = `C: SETEVENTS CIRC STREAM
S: 250 OK
S: 650 STREAM 20 NEW 0 a.example:443 SOURCE_ADDR=127.0.0.1:5000 PURPOSE=USER
C: ATTACHSTREAM 20 0
S: 250 OK
S: 650 STREAM 20 SUCCEEDED 31 a.example:443
S: 650 STREAM 21 NEW 0 a.example:80 SOURCE_ADDR=127.0.0.1:5001 PURPOSE=USER
C: ATTACHSTREAM 21 0
S: 250 OK
S: 650 STREAM 21 DETACHED 31 a.example:80 REASON=END REMOTE_REASON=MISC
C: ATTACHSTREAM 21 0
S: 250 OK
S: 650 STREAM 22 NEW 0 b.example:80 SOURCE_ADDR=127.0.0.1:5002 PURPOSE=USER
C: ATTACHSTREAM 22 0
S: 250 OK
`

// TestReplayDiff: replay --diff prints exactly the streams two policies
// decide differently at first (here the two to port 80, which the new one
// closes), and exits 1; the same policy twice prints none and exits 0.
// replay alone prints every stream's decisions.
func TestReplayDiff(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	trace := write("run.trace", replayTrace)
	old := write("old.star", "tor.policy(lambda s: None)\n")
	new := write("new.star", "tor.policy(lambda s: tor.close(\"EXITPOLICY\") if s.target_port == 80 else None)\n")
	run := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		root := newCmdRoot(newFactory(strings.NewReader(""), &out, &errOut))
		root.SetArgs(args)
		err := root.ExecuteContext(context.Background())
		return out.String(), errOut.String(), err
	}

	out, errOut, err := run("replay", "--diff", old, new, trace)
	want := "stream 21 to a.example:80\n  " + old + ": ATTACHSTREAM 21 0\n  " + new + ": CLOSESTREAM 21 4 (EXITPOLICY)\n" +
		"stream 22 to b.example:80\n  " + old + ": ATTACHSTREAM 22 0\n  " + new + ": CLOSESTREAM 22 4 (EXITPOLICY)\n"
	if out != want || exitCode(err) != exitError || !strings.Contains(errOut, "2 of 3 streams decided differently") {
		t.Errorf("replay --diff: exit %d, stdout:\n%s\nwant:\n%s\nstderr:\n%s", exitCode(err), out, want, errOut)
	}

	out, errOut, err = run("replay", "--diff", old, old, trace)
	if out != "" || err != nil || !strings.Contains(errOut, "0 of 3 streams decided differently") {
		t.Errorf("replay --diff of one script: %v, stdout %q, stderr %q", err, out, errOut)
	}

	out, _, err = run("replay", old, trace)
	want = "stream 20 to a.example:443: ATTACHSTREAM 20 0\nstream 21 to a.example:80: ATTACHSTREAM 21 0; ATTACHSTREAM 21 0\nstream 22 to b.example:80: ATTACHSTREAM 22 0\n"
	if err != nil || out != want {
		t.Errorf("replay: %v, stdout:\n%s\nwant:\n%s", err, out, want)
	}

	if _, _, err := run("replay", "--diff", old, trace); exitCode(err) != exitUsage {
		t.Errorf("replay --diff with two files: exit %d, want %d", exitCode(err), exitUsage)
	}
}
