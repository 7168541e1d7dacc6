package e2e

// A script built from @stdlib/routes.star, @stdlib/reasons.star and
// @stdlib/monitor.star, against the shared network's client: a refused
// port is closed at once with the reason from the reasons table, a pinned
// host leaves through the chosen exit, a HOST.RELAY.exit name leaves
// through RELAY, other streams are left to tor, and the monitor counts
// what it saw, as STREAM events, the policy's logged decisions and the
// monitor's table at exit show.

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
	"github.com/torscript/torscript/ctl"
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

// routesStart is stdStart with torscript's debug log, which has a line
// for every policy decision.
func routesStart(ctx context.Context, t *testing.T, c *ctl.Conn, src string, args ...string) *exProc {
	t.Helper()
	return runPath(ctx, t, c, []string{"--log-level", "debug"}, writeScript(t, t.TempDir(), "script.star", src), args...)
}

// routesDecision returns the decision torscript logged for a stream.
func routesDecision(t *testing.T, p *exProc, stream string) string {
	t.Helper()
	re := regexp.MustCompile(`msg=decision stream=` + regexp.QuoteMeta(stream) + ` .*decision=("(?:[^"\\]|\\.)*"|\S+)`)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if m := re.FindStringSubmatch(p.stderr.String()); m != nil {
			if s, err := strconv.Unquote(m[1]); err == nil {
				return s
			}
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("torscript logged no decision for stream %s", stream)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// routesPinned checks that stream id SUCCEEDED on a 3-hop circuit ending
// at exit, and returns the circuit.
func routesPinned(t *testing.T, c *ctl.Conn, ev *eventLog, id string, exit *testnet.Node) string {
	t.Helper()
	circ := ev.succeeded(t, id)
	path := ev.path(t, c, circ)
	t.Logf("stream %s SUCCEEDED on circuit %s (%s)", id, circ, exPathString(path))
	if len(path) != 3 || path[2].Fingerprint != exit.Fingerprint {
		t.Errorf("stream %s left through %s, want 3 hops ending at %s", id, exPathString(path), exit.Name)
	}
	return circ
}

func TestStdlibRoutesReasonsMonitor(t *testing.T) {
	n := testnet.Shared(t)
	ctx, c, ev := exBegin(t, 3*time.Minute)
	refused := httpServer(t, "never served")
	port := exServer(t, "0.0.0.0:0", "routes")
	exits := n.Exits()
	if len(exits) < 2 {
		t.Fatalf("the network has %d exits, want 2", len(exits))
	}
	exit, dotExit := exits[len(exits)-1], exits[0]
	p := routesStart(ctx, t, c, stdRoutesScript, strconv.Itoa(refused), exit.Name)
	p.waitStarted(t)
	seen := map[string]bool{}

	// (1) The refused port: closed at once, with REASON=EXITPOLICY.
	r := exCurl(ctx, t, fmt.Sprintf("http://127.0.0.1:%d/", refused))
	if r.exit == 0 || r.took >= time.Second {
		t.Errorf("%v; want curl to fail at once", r)
	}
	id := ev.newStream(t, "127.0.0.1", refused, seen)
	if end := ev.end(t, id); end.Reason != "EXITPOLICY" {
		t.Errorf("stream %s to the refused port: %s, want REASON=EXITPOLICY", id, strings.TrimSpace(end.Raw.Raw))
	}
	if d := routesDecision(t, p, id); d != `tor.close("EXITPOLICY")` {
		t.Errorf("stream %s to the refused port: decision %s, want tor.close(\"EXITPOLICY\")", id, d)
	}

	// (2) The pinned host: through the chosen exit, twice on one circuit.
	var circs []string
	for range 2 {
		exCurlOK(ctx, t, fmt.Sprintf("http://127.0.0.2:%d/", port), "routes 127.0.0.2")
		circs = append(circs, routesPinned(t, c, ev, ev.newStream(t, "127.0.0.2", port, seen), exit))
	}
	if circs[0] != circs[1] {
		t.Errorf("the pinned streams rode circuits %s and %s, want one", circs[0], circs[1])
	}

	// (3) Anything else: tor chooses.
	exCurlOK(ctx, t, fmt.Sprintf("http://127.0.0.1:%d/", port), "routes 127.0.0.1")
	id = ev.newStream(t, "127.0.0.1", port, seen)
	circ := ev.succeeded(t, id)
	if d := routesDecision(t, p, id); d != "tor.attach(None)" {
		t.Errorf("stream %s to 127.0.0.1: decision %s, want tor.attach(None) (tor chooses)", id, d)
	}
	t.Logf("stream %s to 127.0.0.1 SUCCEEDED on circuit %s (%s), tor's choice", id, circ, exPathString(ev.path(t, c, circ)))

	// (4) A .exit name: redirected to its host, through the exit it names.
	dotHost := "127.0.0.3." + dotExit.Name + ".exit"
	exCurlOK(ctx, t, fmt.Sprintf("http://%s:%d/", dotHost, port), "routes 127.0.0.3")
	id = ev.newStream(t, dotHost, port, seen)
	routesPinned(t, c, ev, id, dotExit)

	// The monitor prints its table on its timer and when the script ends.
	// It counts every stream of this tor, tor's own directory fetches
	// (PURPOSE=DIR_FETCH) too, which come when tor fetches a consensus:
	// at least the four curls' (CI once saw 5).
	atLeast4 := regexp.MustCompile(`^streams succeeded +([4-9]|\d\d+)$`)
	p.waitLine(t, atLeast4, 10*time.Second)
	p.termOK(t)
	out := p.stdout.String()
	tables := strings.Split(out, "bootstrap ")
	last := "bootstrap " + tables[len(tables)-1]
	t.Logf("the monitor's last table:\n%s", last)
	for _, want := range []string{
		`^bootstrap +100%  done \(Done\)$`,
		`^circuits built +\d+  median \d+\.\d\ds, p90 \d+\.\d\ds, max \d+\.\d\ds`,
		`^streams succeeded +([4-9]|\d\d+)$`,
		// The policy closed it (routes.close("EXITPOLICY")): not the exit.
		`^  EXITPOLICY +1  closed here, not by the exit \(reason EXITPOLICY: a controller's policy or tor itself\)$`,
	} {
		if !regexp.MustCompile(`(?m)` + want).MatchString(last) {
			t.Errorf("the monitor's last table has no line matching %s", want)
		}
	}
	p.afterExit(t)
}

// TestRoutesPinFailsAtStart: a pin to a relay tor does not know stops the
// script at start, naming the relay, before it takes any stream.
func TestRoutesPinFailsAtStart(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	c := dial(t)
	src := `load("@stdlib/routes.star", "routes")
tor.policy(routes.table([routes.rule(port = 80, then = routes.exit("nosuchrelay"))]))
`
	path := writeScript(t, t.TempDir(), "pin.star", src)
	out, err := cli(ctx, t, "run", path).CombinedOutput()
	if code := exitStatus(err); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	if !strings.Contains(string(out), `routes.exit: no relay "nosuchrelay" in the consensus`) {
		t.Errorf("the error does not name the relay:\n%s", out)
	}
	if strings.Contains(string(out), "policy started") {
		t.Errorf("the policy started:\n%s", out)
	}
	checkLeftBehind(t, c, "0")
}
