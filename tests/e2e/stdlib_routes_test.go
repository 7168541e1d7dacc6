package e2e

// A script built from @stdlib/routes.star, @stdlib/reasons.star and
// @stdlib/monitor.star, against the shared network's client: a refused
// port is closed at once with the reason from the reasons table, a pinned
// host leaves through the chosen exit, and the monitor counts what it
// saw, as STREAM events and its table at exit show.

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/tests/testnet"
)

const stdRoutesScript = `
load("@stdlib/reasons.star", "reasons")
load("@stdlib/routes.star", "routes")
load("@stdlib/monitor.star", "monitor")

REFUSED, EXIT = int(argv[1]), argv[2]

m = monitor.start(every = "200ms")
tor.policy(routes.table([
    routes.rule(port = REFUSED, then = routes.close(reasons.RELAY_END["EXITPOLICY"])),
    routes.rule(host = "127.0.0.2", then = routes.exit(EXIT)),
]))
`

func TestStdlibRoutesReasonsMonitor(t *testing.T) {
	n := testnet.Shared(t)
	ctx := testCtx(t, 3*time.Minute)
	c := dial(t)
	ev := exWatch(t, c)
	refused := httpServer(t, "never served")
	port := exServer(t, "0.0.0.0:0", "routes")
	exit := n.Exits()[len(n.Exits())-1]
	p := stdStart(ctx, t, c, stdRoutesScript, strconv.Itoa(refused), exit.Name)
	p.waitLog(t, "policy started", 30*time.Second)
	seen := map[string]bool{}

	// The refused port: closed at once, with REASON=EXITPOLICY.
	r := exCurl(ctx, t, fmt.Sprintf("http://127.0.0.1:%d/", refused))
	if r.exit == 0 || r.took >= time.Second {
		t.Errorf("%v; want curl to fail at once", r)
	}
	id := ev.newStream(t, "127.0.0.1", refused, seen)
	if end := ev.end(t, id); end.Reason != "EXITPOLICY" {
		t.Errorf("stream %s to the refused port: %s, want REASON=EXITPOLICY", id, strings.TrimSpace(end.Raw.Raw))
	}

	// The pinned host: through the chosen exit, twice on one circuit.
	var circs []string
	for range 2 {
		exCurlOK(ctx, t, fmt.Sprintf("http://127.0.0.2:%d/", port), "routes 127.0.0.2")
		id := ev.newStream(t, "127.0.0.2", port, seen)
		circ := ev.succeeded(t, id)
		path := ev.path(t, c, circ)
		t.Logf("stream %s to 127.0.0.2 SUCCEEDED on circuit %s (%s)", id, circ, exPathString(path))
		if len(path) != 3 || path[2].Fingerprint != exit.Fingerprint {
			t.Errorf("stream %s left through %s, want 3 hops ending at %s", id, exPathString(path), exit.Name)
		}
		circs = append(circs, circ)
	}
	if circs[0] != circs[1] {
		t.Errorf("the pinned streams rode circuits %s and %s, want one", circs[0], circs[1])
	}

	// The monitor prints its table on its timer and when the script ends.
	p.waitOut(t, "streams    2 succeeded", 1, 10*time.Second)
	p.termOK(t)
	out := p.stdout.String()
	for _, want := range []string{"bootstrap  100% done (Done)", "streams    2 succeeded; ended: "} {
		if !strings.Contains(out, want) {
			t.Errorf("the monitor's table lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "EXITPOLICY 1") || strings.Contains(out, "EXITPOLICY 2") {
		t.Errorf("the monitor did not count the refused stream by its reason:\n%s", out)
	}
	p.afterExit(t, c)
}
