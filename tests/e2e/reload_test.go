package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestReloadOnSIGHUP: a running policy (no terminal: SIGHUP reloads)
// keeps deciding when a new version fails its tests or does not parse, and
// the log says why; a new version whose tests pass takes over, and the
// next stream is decided by it, as tor's STREAM events show. No stream is
// left waiting at any point (exStart's checks at the end).
func TestReloadOnSIGHUP(t *testing.T) {
	ctx, c, ev := exBegin(t, 3*time.Minute)
	port := httpServer(t, "reload page")
	dir := t.TempDir()
	script := filepath.Join(dir, "policy.star")
	test := filepath.Join(dir, "policy_test.star")
	write := func(path, src string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The old version: tor chooses.
	write(script, "tor.policy(lambda s: None)\n")
	write(test, `
def test_port_refused():
    sim.run("policy.star")
    s = sim.stream_new(target = "a.example:`+fmt.Sprint(port)+`")
    sim.expect_close(s, "EXITPOLICY")
`)
	p := runPath(ctx, t, c, nil, script)
	p.waitStarted(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	seen := map[string]bool{}
	reached := func(want bool) {
		t.Helper()
		r := exCurl(ctx, t, url)
		id := ev.newStream(t, "127.0.0.1", port, seen)
		end := ev.end(t, id)
		if got := r.err == nil && r.code == 200; got != want {
			t.Fatalf("curl reached the page: %v, want %v (%v; stream %s)", got, want, r, end.Raw.Raw)
		}
	}
	hup := func(logLine string) {
		t.Helper()
		syscall.Kill(p.cmd.Process.Pid, syscall.SIGHUP)
		p.waitLog(t, logLine, 60*time.Second)
	}
	reached(true)

	// The old version's test fails (it routes to tor): refused, the old
	// policy goes on.
	hup("reload refused: its tests fail")
	reached(true)

	// A new version that does not parse: refused.
	write(script, "tor.policy(lambda s:\n")
	hup("reload refused: the new version does not check")
	reached(true)

	// A new version whose test passes: it takes over.
	write(script, "tor.policy(lambda s: tor.close(\"EXITPOLICY\") if s.target_port == "+fmt.Sprint(port)+" else None)\n")
	hup("script reloaded")
	reached(false)
	p.finish(t)
}
