package runtime

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"go.starlark.net/starlark"
)

// TestReload: a new version whose top level runs cleanly takes over: its
// policy decides the next streams and the stream the old one holds, its
// handlers replace the old ones. A version that fails keeps the old one
// running, with nothing of the new one left behind.
func TestReload(t *testing.T) {
	t.Parallel()
	old := `
tor.on("circ", lambda c: print("old handler", c.id))
tor.policy(lambda s: tor.hold() if s.target_port == 80 else "5")
`
	f, r := startWithCircuits(t, circ5Built, old, Options{})
	r.waitLog("policy started")
	f.Event(stream7New) // port 80: held by the old policy
	f.Event(stream8New) // 443: circuit 5
	r.waitLog("stream=8")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A version that fails at its top level changes nothing.
	bad := `
tor.on("circ", lambda c: print("bad handler", c.id))
tor.policy(lambda s: tor.close())
fail("not today")
`
	if err := r.rt.Reload(ctx, "x.star", []byte(bad)); err == nil || !strings.Contains(err.Error(), "not today") {
		t.Fatalf("Reload of a failing version: %v", err)
	}
	if err := r.rt.Reload(ctx, "x.star", []byte("tor.policy(\n")); err == nil {
		t.Fatalf("Reload of a version that does not parse: no error")
	}
	f.Event("CIRC 9 LAUNCHED BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL")
	r.waitOut("old handler 9")

	// A good version takes over, and is asked about the held stream.
	good := `
tor.on("circ", lambda c: print("new handler", c.id))
tor.policy(lambda s: tor.close("EXITPOLICY"))
`
	if err := r.rt.Reload(ctx, "x.star", []byte(good)); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	r.waitLog("policy reloaded")
	f.Event("CIRC 10 LAUNCHED BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL")
	r.waitOut("new handler 10")
	f.Event("STREAM 11 NEW 0 example.net:22 SOURCE_ADDR=127.0.0.1:5002 PURPOSE=USER")
	r.waitLog("stream=11")

	// A version with no policy removes the running one, as :policy off
	// does: __LeaveStreamsUnattached goes back.
	if err := r.rt.Reload(ctx, "x.star", []byte("print(\"no policy now\")\n")); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	r.waitLog("the reloaded script sets no policy: policy removed")
	if l := f.Lines("SETCONF", "RESETCONF"); len(l) == 0 || !strings.Contains(l[len(l)-1], "__LeaveStreamsUnattached") || strings.HasSuffix(l[len(l)-1], "=1") {
		t.Errorf("after a reload without a policy, the last config command is %q, want __LeaveStreamsUnattached given back", l)
	}
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
	out := r.out.String()
	if strings.Contains(out, "bad handler") || strings.Contains(out, "old handler 10") {
		t.Errorf("a handler that should be gone ran:\n%s", out)
	}
	checkLines(t, "stream commands", f.Lines(streamCommands...), []string{
		"ATTACHSTREAM 8 5",
		"CLOSESTREAM 7 4",  // the held stream, asked of the new policy
		"CLOSESTREAM 11 4", // a new one
	})
}

// TestSessionReload: a file loaded into a session and reloaded has its
// handlers replaced (not those typed at the prompt) and its globals bound
// again; a version that fails leaves the loaded one in place.
func TestSessionReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := dir + "/lib.star"
	write := func(src string) {
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := New(Options{Stdout: io.Discard})
	s, err := r.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	count := func(typ string) int {
		var n int
		s.Do(func(*starlark.Thread, starlark.StringDict) error { n = len(r.handlers.get(typ)); return nil })
		return n
	}
	write("x = 1\ntor.on(\"circ\", lambda c: None)\n")
	if err := s.Do(func(t *starlark.Thread, g starlark.StringDict) error {
		if _, err := s.Load(t, path); err != nil {
			return err
		}
		_, err := starlark.ExecFileOptions(FileOptions(), t, "<prompt>", "tor.on(\"circ\", print)\n", g)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n := count("CIRC"); n != 2 {
		t.Fatalf("%d CIRC handlers after :load and one typed, want 2", n)
	}
	write("x = 2\nfail(\"broken\")\n")
	if err := s.Do(func(t *starlark.Thread, _ starlark.StringDict) error { _, err := s.Reload(t, path); return err }); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("Reload of a failing version: %v", err)
	}
	if n := count("CIRC"); n != 2 {
		t.Errorf("%d CIRC handlers after a failed reload, want 2 (nothing changed)", n)
	}
	write("x = 2\ntor.on(\"stream\", lambda s: None)\n")
	var x starlark.Value
	if err := s.Do(func(t *starlark.Thread, g starlark.StringDict) error {
		if _, err := s.Reload(t, path); err != nil {
			return err
		}
		x = g["x"]
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n, m := count("CIRC"), count("STREAM"); n != 1 || m != 1 {
		t.Errorf("after the reload: %d CIRC handlers (want the typed one), %d STREAM (want 1)", n, m)
	}
	if x != starlark.MakeInt(2) {
		t.Errorf("x = %v after the reload, want 2", x)
	}
}
