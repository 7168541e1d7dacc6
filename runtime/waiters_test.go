package runtime

import (
	"strings"
	"testing"
)

// TestWaitersCircuit: extend_circuit's on_built and on_failed are called
// once, on the loop, from the circuit's CIRC events or its timeout, and
// subscribe to CIRC for as long as they wait.
func TestWaitersCircuit(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	r := startScript(t, f, `
def built(c):
    print("built", c.id, c.status, len(c.path))
def failed(id, reason):
    print("failed", id, reason)
tor.extend_circuit(on_built = built, on_failed = failed)
tor.extend_circuit(on_built = built, on_failed = failed)
tor.extend_circuit(on_failed = failed, timeout = 0.05)
tor.extend_circuit(on_built = lambda c: fail("the callback fails"))
`, Options{})
	f.WaitCommand("SETEVENTS CIRC")
	path := fpA + "," + fpB + "," + fpC
	f.Event("CIRC 12 EXTENDED "+fpA, "CIRC 12 BUILT "+path, "CIRC 12 CLOSED "+path+" REASON=FINISHED",
		"CIRC 13 FAILED REASON=TIMEOUT REMOTE_REASON=OR_CONN_CLOSED", "CIRC 13 BUILT "+path, "CIRC 15 BUILT "+path)
	r.waitOut("built 12 BUILT 3")
	r.waitOut("failed 13 TIMEOUT OR_CONN_CLOSED")
	r.waitOut("failed 14 TIMEOUT_WAITING")
	r.waitLog("the callback fails")
	f.WaitCommand("SETEVENTS") // every wait over: unsubscribed
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
	if n := strings.Count(r.out.String(), "\n"); n != 3 {
		t.Errorf("%d callbacks, want 3 (each once):\n%s", n, r.out.String())
	}
	if got := f.Lines("SETEVENTS"); len(got) < 2 || got[len(got)-1] != "SETEVENTS" {
		t.Errorf("SETEVENTS %q: want CIRC while waiting, nothing after", got)
	}
}

// TestWaitersOnion: add_onion's on_published is called at the first
// HS_DESC UPLOADED of the service; on_failed at the timeout, with the
// FAILED reasons seen.
func TestWaitersOnion(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	ids := []string{"aaaa", "bbbb"}
	f.Answer(func(line string) (string, bool) {
		if !strings.HasPrefix(line, "ADD_ONION ") || len(ids) == 0 {
			return "", false
		}
		id := ids[0]
		ids = ids[1:]
		return "250-ServiceID=" + id + "\n250 OK", true
	})
	r := startScript(t, f, `
def up(svc):
    print("published", svc.service_id)
def down(id, reason):
    print("failed", id, reason)
tor.add_onion({80: 8080}, on_published = up, on_failed = down)
tor.add_onion({80: 8080}, on_published = up, on_failed = down, timeout = 0.2)
`, Options{})
	f.WaitCommand("SETEVENTS HS_DESC")
	f.Event("HS_DESC UPLOAD aaaa UNKNOWN "+fpA+" DESCID",
		"HS_DESC FAILED bbbb NO_AUTH "+fpA+" REASON=UPLOAD_REJECTED",
		"HS_DESC UPLOADED aaaa UNKNOWN "+fpA,
		"HS_DESC UPLOADED aaaa UNKNOWN "+fpB)
	r.waitOut("published aaaa")
	r.waitOut("failed bbbb UPLOAD_REJECTED")
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
	if n := strings.Count(r.out.String(), "published"); n != 1 {
		t.Errorf("on_published called %d times, want once:\n%s", n, r.out.String())
	}
}
