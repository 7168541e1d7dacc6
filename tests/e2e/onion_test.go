package e2e

// Onion tests: the private network's onion service (testnet OnionURL) is
// reached through the client's SocksPort with no policy, then under every
// shipped example that runs alongside tor's routing and under every stdlib
// policy, one after another: whatever circuit a policy returns, an onion
// stream rides the rendezvous circuit tor builds (any other circuit fails
// with 551). A policy that closes onion streams closes them at once.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
	"github.com/torscript/torscript/ctl"
)

// onionFetch fetches the network's onion page with curl and checks, from
// the STREAM and CIRC events in ev, that the stream SUCCEEDED on one of
// tor's rendezvous circuits.
func onionFetch(ctx context.Context, t *testing.T, c *ctl.Conn, ev *eventLog, seen map[string]bool) {
	t.Helper()
	n := testnet.Shared(t)
	r := exCurlOK(ctx, t, n.OnionURL(), testnet.OnionPage)
	id := ev.newStream(t, n.OnionAddr(), 80, seen)
	circ := ev.succeeded(t, id)
	if p := onionPurpose(t, c, ev, circ); p != "HS_CLIENT_REND" {
		t.Fatalf("stream %s to %s SUCCEEDED on circuit %s of purpose %q, want HS_CLIENT_REND", id, n.OnionAddr(), circ, p)
	}
	t.Logf("stream %s SUCCEEDED on rendezvous circuit %s in %v", id, circ, r.took.Round(time.Millisecond))
}

// onionNetwork returns the shared network, which must have an onion
// service.
func onionNetwork(t *testing.T) *testnet.Network {
	t.Helper()
	n := testnet.Shared(t)
	if n.OnionAddr() == "" {
		t.Fatal("the shared network has no onion service")
	}
	return n
}

// onionPurpose returns the purpose of circuit id: from its CIRC events,
// or from GETINFO circuit-status.
func onionPurpose(t *testing.T, c *ctl.Conn, ev *eventLog, id string) string {
	t.Helper()
	if evs := ev.all(func(e ctl.Event) bool {
		ce, ok := e.(*ctl.CircEvent)
		return ok && ce.ID == id && ce.Purpose != ""
	}); len(evs) > 0 {
		return evs[len(evs)-1].(*ctl.CircEvent).Purpose
	}
	ci, _ := circuitStatus(t, c, id) // "" when tor does not list it
	return ci.Purpose
}

// onionCase is a script run while the onion is fetched: an example (file)
// or a script of the test's own (src), with arguments after "--". It is
// ready once it logged "policy started", or printed out if out is set.
type onionCase struct {
	name, file, src string
	args            []string
	out             string
}

func onionCases(n *testnet.Network) []onionCase {
	onion, exit := n.OnionAddr(), n.Exits()[0].Name
	pool := "load(\"@stdlib/circuits.star\", \"circuits\")\npool = circuits.pool(size = 2)\n"
	iso := "load(\"@stdlib/isolate.star\", \"isolate\")\n"
	routes := "load(\"@stdlib/routes.star\", \"routes\")\n"
	return []onionCase{
		{name: "per_domain", file: "per_domain.star"},
		{name: "pin_exit", file: "pin_exit.star", args: []string{onion, exit}},
		{name: "isolate_by_port", file: "isolate_by_port.star"},
		{name: "redirect_blocked", file: "redirect_blocked.star", args: []string{"blocked.example=127.0.0.1:1"}},
		{name: "virtual_names", file: "virtual_names.star"},
		{name: "refuse_ports", file: "refuse_ports.star"},
		{name: "first_policy", file: "first_policy.star", args: []string{onion, exit}},
		// NEWNYM makes tor forget the onion's descriptor and circuits:
		// the fetch after it starts over.
		{name: "newnym_timer", file: "newnym_timer.star", args: []string{"2s"}, out: "NEWNYM 1 sent"},
		{name: "monitor", file: "monitor.star", out: "built circuits:"},
		{name: "pool.pick", src: pool + "tor.policy(pool.pick)\n"},
		{name: "by_domain_pool", src: pool + iso + "tor.policy(isolate.by_domain(pool).policy)\n"},
		{name: "by_domain", src: iso + "tor.policy(isolate.by_domain().policy)\n"},
		{name: "by_source", src: iso + "tor.policy(isolate.by_source().policy)\n"},
		{name: "by_socks_auth", src: pool + iso + "tor.policy(isolate.by_socks_auth(pool).policy)\n"},
		{name: "by_purpose", src: iso + "tor.policy(isolate.by_purpose().policy)\n"},
		{name: "routes_default", src: routes + "tor.policy(routes.table([], default = routes.exit(argv[1])))\n", args: []string{exit}},
		{name: "routes_rules", src: pool + iso + routes + `tor.policy(routes.table([
    routes.rule(port = 25, then = routes.close("EXITPOLICY")),
    routes.rule(onion = True, then = routes.exit(argv[1])),
    routes.rule(host = "*.onion", then = routes.use(isolate.by_domain(pool).policy)),
], default = routes.use(pool.pick)))
`, args: []string{exit}},
	}
}

// TestOnionEveryPolicy: the onion is reached with no policy, then under
// each shipped policy in turn; each run ends cleanly and leaves no stream
// waiting.
func TestOnionEveryPolicy(t *testing.T) {
	n := onionNetwork(t)
	ctx, c, ev := exBegin(t, 8*time.Minute)
	seen := map[string]bool{}

	onionFetch(ctx, t, c, ev, seen) // no policy: tor routes it
	for _, tc := range onionCases(n) {
		t.Run(tc.name, func(t *testing.T) {
			var p *exProc
			if tc.file != "" {
				p = exStart(ctx, t, c, nil, tc.file, tc.args...)
			} else {
				p = stdStart(ctx, t, c, tc.src, tc.args...)
			}
			if tc.out != "" {
				p.waitOut(t, tc.out, 1, 30*time.Second)
			} else {
				p.waitStarted(t)
			}
			onionFetch(ctx, t, c, ev, seen)
			onionFetch(ctx, t, c, ev, seen) // a second stream, on what the first left
			p.finish(t)
		})
	}
}

// TestOnionClosed: a policy that answers tor.close("EXITPOLICY") for
// onion streams closes them at once; curl gets a SOCKS error.
func TestOnionClosed(t *testing.T) {
	n := onionNetwork(t)
	ctx, c, ev := exBegin(t, 2*time.Minute)
	p := stdStart(ctx, t, c, `
def route(stream):
    if stream.target_host.endswith(".onion"):
        print("closing stream %s to %s" % (stream.id, stream.target))
        return tor.close("EXITPOLICY")
    return None

tor.policy(route)
`)
	p.waitStarted(t)
	r := exCurl(ctx, t, n.OnionURL())
	if r.err == nil || r.code == 200 || r.took > 5*time.Second {
		t.Fatalf("%v; want curl to fail at once", r)
	}
	id := ev.newStream(t, n.OnionAddr(), 80, map[string]bool{})
	end := ev.end(t, id)
	if end.Status == ctl.StreamSucceeded || end.Reason != "EXITPOLICY" {
		t.Errorf("stream %s: %s; want it closed with reason EXITPOLICY", id, strings.TrimSpace(end.Raw.Raw))
	}
	p.waitOut(t, "closing stream "+id+" ", 1, 5*time.Second)
	t.Logf("%v; tor: %s", r, strings.TrimSpace(end.Raw.Raw))
	p.finish(t)
}
