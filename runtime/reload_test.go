package runtime

import (
	"context"
	"strings"
	"testing"
	"time"
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
