package runtime

import (
	"os"
	"strings"
	"testing"
)

// TestRouterTableKept: tor.routers() reads the relays from tor once,
// subscribes to the events that say they changed, and reads them again
// only after one of them (or a new connection).
func TestRouterTableKept(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	doc, err := os.ReadFile("../ctl/testdata/tor-0.4.9/getinfo-dir-status-vote-current-consensus.txt")
	if err != nil {
		t.Fatal(err)
	}
	f.SetInfo("dir/status-vote/current/consensus", string(doc))
	desc, err := os.ReadFile("../ctl/testdata/tor-0.4.9/getinfo-desc-all-recent.txt")
	if err != nil {
		t.Fatal(err)
	}
	f.SetInfo("desc/all-recent", string(desc))
	r := startScript(t, f, `
n = [0]
def show(_):
    n[0] += 1
    print("bw", n[0], len(tor.routers()), tor.router("exit1").nickname)
print("start", len(tor.routers()), len(tor.routers()), len(tor.exits_to("127.0.0.1", 80)))
tor.on("bw", show)
`, Options{})
	f.WaitCommand("SETEVENTS BW NEWCONSENSUS NEWDESC NS")
	r.waitOut("start 8 8 2")
	reads := func() int { return len(f.Lines("GETINFO dir/status-vote/current/consensus")) }
	if n := reads(); n != 1 {
		t.Fatalf("%d reads of the consensus for three calls, want 1", n)
	}
	f.Event("BW 1 2")
	r.waitOut("bw 1 8 exit1")
	if n := reads(); n != 1 {
		t.Errorf("%d reads of the consensus with nothing changed, want 1", n)
	}
	f.Event("NEWDESC $" + strings.Repeat("A", 40) + "~someone")
	f.Event("BW 1 2")
	r.waitOut("bw 2 8 exit1")
	if n := reads(); n != 2 {
		t.Errorf("%d reads of the consensus after NEWDESC, want 2", n)
	}
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
}
