package e2e

// Stdlib tests: scripts that load @stdlib/circuits.star and
// @stdlib/isolate.star run in the real torscript binary against the
// shared network's client. The test's own control connection closes a
// pool's circuit and watches the pool build another, and real curls
// through the SocksPort show, from STREAM SUCCEEDED events, which circuit
// each destination rode.

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
	"github.com/torscript/torscript/ctl"
)

// stdStart writes src to a script of its own and runs it as exStart runs
// an example, with args after "--".
func stdStart(ctx context.Context, t *testing.T, c *ctl.Conn, src string, args ...string) *exProc {
	t.Helper()
	return runPath(ctx, t, c, nil, writeScript(t, t.TempDir(), "script.star", src), args...)
}

// stdExitNames are the nicknames of the network's exits: the only relays
// whose exit policy lets streams reach 127.0.0.0/8 (every relay of the
// private network has the Exit flag).
func stdExitNames(n *testnet.Network) []string {
	var names []string
	for _, x := range n.Exits() {
		names = append(names, x.Name)
	}
	return names
}

// stdPoolScript keeps a pool of 2 through the exits named in argv and
// prints its built circuits whenever they change.
const stdPoolScript = `
load("@stdlib/circuits.star", "circuits")

pool = circuits.pool(size = 2, fingerprints = argv[1:])
last = [None]

def show(_ = None):
    line = "pool built: " + " ".join(pool.built())
    if line != last[0]:
        last[0] = line
        print(line)

tor.on("circ", show)
show()
`

// poolBuilt waits for a line "pool built: A B" of two circuits, neither
// of them in not, and returns them.
func poolBuilt(t *testing.T, p *exProc, not map[string]bool, d time.Duration) []string {
	t.Helper()
	re := regexp.MustCompile(`^pool built: (\d+) (\d+)$`)
	deadline := time.Now().Add(d)
	for {
		for _, l := range strings.Split(p.stdout.String(), "\n") {
			if m := re.FindStringSubmatch(l); m != nil && !not[m[1]] && !not[m[2]] {
				return m[1:]
			}
		}
		if p.exited() {
			t.Fatalf("torscript exited (%v) before its pool had 2 circuits built", p.err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pool did not have 2 circuits built (other than %v) within %v", not, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStdlibPoolRefillsAfterClose: a pool of 2 builds two circuits through
// the chosen exits; when the test closes one with CLOSECIRCUIT from its
// own connection, the pool builds another and has 2 again.
func TestStdlibPoolRefillsAfterClose(t *testing.T) {
	n := testnet.Shared(t)
	ctx, c, ev := exBegin(t, 3*time.Minute)
	p := stdStart(ctx, t, c, stdPoolScript, stdExitNames(n)...)

	first := poolBuilt(t, p, nil, 60*time.Second)
	for _, id := range first {
		path := ev.path(t, c, id)
		t.Logf("pool circuit %s built: %s", id, exPathString(path))
		if len(path) != 3 || !exIsExit(n, path[2]) {
			t.Errorf("pool circuit %s has path %s, want 3 hops ending at an exit", id, exPathString(path))
		}
	}

	closed := first[0]
	if err := c.CloseCircuit(testCtx(t, 10*time.Second), closed, false); err != nil {
		t.Fatalf("CLOSECIRCUIT %s: %v", closed, err)
	}
	ev.wait(t, 10*time.Second, "CIRC CLOSED "+closed, func(e ctl.Event) bool {
		ce, ok := e.(*ctl.CircEvent)
		return ok && ce.ID == closed && ce.Status == ctl.CircClosed
	})
	again := poolBuilt(t, p, map[string]bool{closed: true}, 60*time.Second)
	t.Logf("after CLOSECIRCUIT %s the pool has %v built", closed, again)
	var fresh string
	for _, id := range again {
		if id != first[1] {
			fresh = id
		}
	}
	if fresh == "" || (again[0] != first[1] && again[1] != first[1]) {
		t.Fatalf("after CLOSECIRCUIT %s the pool has %v, want %s and a new circuit", closed, again, first[1])
	}
	// The new circuit was launched after the close, and tor built it.
	launched := ev.wait(t, time.Second, "CIRC LAUNCHED "+fresh, func(e ctl.Event) bool {
		ce, ok := e.(*ctl.CircEvent)
		return ok && ce.ID == fresh && ce.Status == ctl.CircLaunched
	})
	closedEv := ev.all(func(e ctl.Event) bool {
		ce, ok := e.(*ctl.CircEvent)
		return ok && ce.ID == closed && ce.Status == ctl.CircClosed
	})[0]
	if order := ev.all(func(e ctl.Event) bool { return e == closedEv || e == launched }); order[0] != closedEv {
		t.Errorf("circuit %s was launched before %s closed: not a refill", fresh, closed)
	}
	if path := ev.path(t, c, fresh); len(path) != 3 || !exIsExit(n, path[2]) {
		t.Errorf("new pool circuit %s has path %s, want 3 hops ending at an exit", fresh, exPathString(path))
	} else {
		t.Logf("new pool circuit %s built: %s", fresh, exPathString(path))
	}

	p.finish(t)
}

// stdIsolateScript isolates streams by domain with circuits from a pool
// through the exits named in argv, printing each decision.
const stdIsolateScript = `
load("@stdlib/circuits.star", "circuits")
load("@stdlib/isolate.star", "isolate")

pool = circuits.pool(size = 2, fingerprints = argv[1:])
iso = isolate.by_domain(pool)

def route(stream):
    c = iso.policy(stream)
    print("stream %s to %s -> circuit %s" % (stream.id, stream.target, c))
    return c

tor.policy(route)
`

// TestStdlibIsolateByDomain: isolate.by_domain puts two destinations (two
// IP addresses, each its own key) on two circuits of the pool, and a
// second stream to the first on the first's circuit, as STREAM SUCCEEDED
// events show.
func TestStdlibIsolateByDomain(t *testing.T) {
	n := testnet.Shared(t)
	ctx, c, ev := exBegin(t, 3*time.Minute)
	port := exServer(t, "0.0.0.0:0", "isolate")
	p := stdStart(ctx, t, c, stdIsolateScript, stdExitNames(n)...)
	p.waitStarted(t)

	seen := map[string]bool{}
	var circs []string
	for _, h := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.1"} {
		exCurlOK(ctx, t, fmt.Sprintf("http://%s:%d/", h, port), "isolate "+h)
		id := ev.newStream(t, h, port, seen)
		circ := ev.succeeded(t, id)
		if d := p.decision(t, id); d != circ {
			t.Errorf("stream %s to %s: the policy chose circuit %s, tor says it SUCCEEDED on %s", id, h, d, circ)
		}
		path := ev.path(t, c, circ)
		t.Logf("stream %s to %s:%d SUCCEEDED on circuit %s (%s)", id, h, port, circ, exPathString(path))
		if len(path) != 3 || !exIsExit(n, path[2]) {
			t.Errorf("circuit %s has path %s, want 3 hops ending at an exit", circ, exPathString(path))
		}
		circs = append(circs, circ)
	}
	if circs[0] == circs[1] {
		t.Errorf("127.0.0.1 and 127.0.0.2 share circuit %s", circs[0])
	}
	if circs[2] != circs[0] {
		t.Errorf("the streams to 127.0.0.1 rode circuits %s and %s, want one", circs[0], circs[2])
	}

	p.finish(t)
}
