package e2e

// Example tests: each script of examples/ runs in the real torscript
// binary against the shared network's client, real curls go through the
// client's SocksPort to local HTTP servers on 127.0.0.0/8, and a control
// connection of the test's own (SETEVENTS STREAM CIRC) checks where tor
// really sent each stream: the circuit it SUCCEEDED on and that circuit's
// path. Each test ends torscript with SIGTERM, wants exit status 0, and
// checks that __LeaveStreamsUnattached has its earlier value again and
// that no stream is left waiting for a controller.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
	"github.com/torscript/torscript/ctl"
)

// exCurlMax bounds every curl (--max-time).
const exCurlMax = 30 * time.Second

// exProc is a running `torscript run examples/NAME.star`.
type exProc struct {
	*scriptProc
	c      *ctl.Conn // the test's own connection
	before string    // __LeaveStreamsUnattached before torscript started
	// waiting are the streams that waited before torscript started
	// (an earlier test's, which tor still tries to attach itself).
	waiting map[string]bool
}

// exScript returns the path of examples/name.
func exScript(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// exStart runs `torscript run --control ADDR --cookie PATH FLAGS
// examples/SCRIPT -- ARGS` against the network's client. It records
// __LeaveStreamsUnattached first (it must be 0: no earlier test may leave
// it set) and makes sure, when the test ends, that the process is gone,
// the setting restored and no stream left waiting.
func exStart(ctx context.Context, t *testing.T, c *ctl.Conn, flags []string, script string, args ...string) *exProc {
	t.Helper()
	return runPath(ctx, t, c, flags, exScript(t, script), args...)
}

// runPath is exStart for a script at any path.
func runPath(ctx context.Context, t *testing.T, c *ctl.Conn, flags []string, path string, args ...string) *exProc {
	t.Helper()
	n := testnet.Shared(t)
	p := &exProc{c: c, before: leaveValue(t, c), waiting: waitingIDs(t, c)}
	if p.before != "0" {
		t.Fatalf("%s is %q before torscript started; an earlier test left it set", leaveKey, p.before)
	}
	restoreLeave(t, p.before)
	argv := []string{"run", "--control", n.ControlAddr(), "--cookie", n.CookiePath()}
	argv = append(argv, flags...)
	argv = append(argv, path)
	if len(args) > 0 {
		argv = append(append(argv, "--"), args...)
	}
	p.scriptProc = startScript(t, exec.CommandContext(ctx, torscript(t), argv...))
	return p
}

// waitLine waits for a line of the script's output that re matches and
// returns its submatches.
func (p *exProc) waitLine(t *testing.T, re *regexp.Regexp, d time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, l := range strings.Split(p.stdout.String(), "\n") {
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		}
		if p.exited() {
			t.Fatalf("torscript exited (%v) before it printed a line matching %q", p.err, re)
		}
		if time.Now().After(deadline) {
			t.Fatalf("torscript printed no line matching %q within %v", re, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// decision returns the circuit the script printed for a stream, from its
// line "stream ID ... -> circuit C".
func (p *exProc) decision(t *testing.T, stream string) string {
	t.Helper()
	re := regexp.MustCompile(`^stream ` + regexp.QuoteMeta(stream) + ` .*-> circuit (\S+)`)
	return p.waitLine(t, re, 5*time.Second)[1]
}

// afterExit checks, once torscript has exited, that
// __LeaveStreamsUnattached has its earlier value and that no stream waits
// for a controller.
func (p *exProc) afterExit(t *testing.T) {
	t.Helper()
	if !p.exited() {
		t.Fatal("afterExit while torscript runs")
	}
	checkLeftBehindExcept(t, p.c, p.before, p.waiting)
}

// finish ends torscript with SIGTERM, wants exit status 0, and checks what
// it left behind (afterExit).
func (p *exProc) finish(t *testing.T) {
	t.Helper()
	p.termOK(t)
	p.afterExit(t)
}

// exBegin starts an example test: a deadline d away, a control connection
// of the test's own, and the STREAM and CIRC events on it.
func exBegin(t *testing.T, d time.Duration) (context.Context, *ctl.Conn, *eventLog) {
	t.Helper()
	ctx := testCtx(t, d)
	c := dial(t)
	return ctx, c, exWatch(t, c)
}

// exWatch subscribes c to STREAM and CIRC, and more if given, and records
// what arrives.
func exWatch(t *testing.T, c *ctl.Conn, more ...string) *eventLog {
	t.Helper()
	return watchEvents(t, c, append([]string{"STREAM", "CIRC"}, more...)...)
}

func (e *eventLog) streams(host string, port int) []string {
	var ids []string
	for _, ev := range e.all(func(ev ctl.Event) bool {
		s, ok := ev.(*ctl.StreamEvent)
		return ok && s.Status == ctl.StreamNew && s.TargetHost == host && s.TargetPort == port
	}) {
		ids = append(ids, ev.(*ctl.StreamEvent).ID)
	}
	return ids
}

// newStream returns the one stream to host:port that is not in seen,
// waiting for its NEW event, and adds it to seen.
func (e *eventLog) newStream(t *testing.T, host string, port int, seen map[string]bool) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var fresh []string
		for _, id := range e.streams(host, port) {
			if !seen[id] {
				fresh = append(fresh, id)
			}
		}
		switch {
		case len(fresh) == 1:
			seen[fresh[0]] = true
			return fresh[0]
		case len(fresh) > 1:
			t.Fatalf("streams %v to %s:%d, want one", fresh, host, port)
		case time.Now().After(deadline):
			t.Fatalf("no STREAM NEW to %s:%d", host, port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// succeeded returns the circuit stream id SUCCEEDED on; it fails the test
// when the stream ended otherwise.
func (e *eventLog) succeeded(t *testing.T, id string) string {
	t.Helper()
	end := e.end(t, id)
	if end.Status != ctl.StreamSucceeded || end.CircuitID == "0" || end.CircuitID == "" {
		t.Fatalf("stream %s ended %s, want SUCCEEDED on a circuit: %s", id, end.Status, strings.TrimSpace(end.Raw.Raw))
	}
	return end.CircuitID
}

// path returns the path of a built circuit: from its CIRC BUILT event, or
// from GETINFO circuit-status when the circuit was built before the test
// subscribed.
func (e *eventLog) path(t *testing.T, c *ctl.Conn, id string) []ctl.PathHop {
	t.Helper()
	if evs := e.all(func(ev ctl.Event) bool {
		ce, ok := ev.(*ctl.CircEvent)
		return ok && ce.ID == id && ce.Status == ctl.CircBuilt
	}); len(evs) > 0 {
		return evs[0].(*ctl.CircEvent).Path
	}
	if ci, ok := circuitStatus(t, c, id); ok {
		return ci.Path
	}
	t.Fatalf("circuit %s: no CIRC BUILT event and not in circuit-status", id)
	return nil
}

// circuitStatus returns circuit id as GETINFO circuit-status lists it;
// ok is false when tor does not list it.
func circuitStatus(t *testing.T, c *ctl.Conn, id string) (ci ctl.Circuit, ok bool) {
	t.Helper()
	circs, err := c.Circuits(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, ci := range circs {
		if ci.ID == id {
			return ci, true
		}
	}
	return ctl.Circuit{}, false
}

// exIsExit says whether h is one of the network's exits.
func exIsExit(n *testnet.Network, h ctl.PathHop) bool {
	for _, x := range n.Exits() {
		if x.Fingerprint == h.Fingerprint {
			return true
		}
	}
	return false
}

func exPathString(path []ctl.PathHop) string {
	var s []string
	for _, h := range path {
		s = append(s, h.Nickname)
	}
	return strings.Join(s, ",")
}

// exServer serves on addr ("0.0.0.0:0" answers on every 127.0.0.0/8
// address) and returns its port. Its body is name, then a space and the
// address the request came to: "NAME 127.0.0.2".
func exServer(t *testing.T, addr, name string) int {
	t.Helper()
	return serveHTTP(t, addr, func(w http.ResponseWriter, r *http.Request) {
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		host := ""
		if a, ok := local.(*net.TCPAddr); ok {
			host = a.IP.String()
		}
		fmt.Fprintf(w, "%s %s", name, host)
	})
}

// exCurl fetches url with a real curl through the network's SocksPort
// (the hostname resolved by tor), bounded by exCurlMax, and waits for it.
func exCurl(ctx context.Context, t *testing.T, url string) curlResult {
	t.Helper()
	return <-curlWithin(ctx, t, exCurlMax, url)
}

// exCurlOK fetches url and wants HTTP 200 with body.
func exCurlOK(ctx context.Context, t *testing.T, url, body string) curlResult {
	t.Helper()
	r := exCurl(ctx, t, url)
	if r.err != nil || r.code != 200 || r.body != body {
		t.Fatalf("%v; want HTTP 200 %q", r, body)
	}
	return r
}

// TestExamplePerDomain: per_domain.star gives each destination its own
// circuit, and every stream to a destination rides that circuit.
func TestExamplePerDomain(t *testing.T) {
	n := testnet.Shared(t)
	ctx, c, ev := exBegin(t, 3*time.Minute)
	port := exServer(t, "0.0.0.0:0", "per_domain")
	p := exStart(ctx, t, c, nil, "per_domain.star")
	p.waitStarted(t)

	hosts := []string{"127.0.0.1", "127.0.0.2", "127.0.0.1", "127.0.0.2", "127.0.0.3"}
	seen := map[string]bool{}
	circOf := map[string]string{} // host -> circuit
	for _, h := range hosts {
		exCurlOK(ctx, t, fmt.Sprintf("http://%s:%d/", h, port), "per_domain "+h)
		id := ev.newStream(t, h, port, seen)
		circ := ev.succeeded(t, id)
		if d := p.decision(t, id); d != circ {
			t.Errorf("stream %s to %s: the policy chose circuit %s, tor says it SUCCEEDED on %s", id, h, d, circ)
		}
		t.Logf("stream %s to %s:%d SUCCEEDED on circuit %s (%s)", id, h, port, circ, exPathString(ev.path(t, c, circ)))
		if prev, ok := circOf[h]; ok && prev != circ {
			t.Errorf("streams to %s rode circuits %s and %s, want one", h, prev, circ)
		}
		circOf[h] = circ
	}
	owner := map[string]string{} // circuit -> host
	for h, circ := range circOf {
		if o, ok := owner[circ]; ok {
			t.Errorf("%s and %s share circuit %s", o, h, circ)
		}
		owner[circ] = h
		if path := ev.path(t, c, circ); len(path) < 3 || !exIsExit(n, path[len(path)-1]) {
			t.Errorf("circuit %s of %s has path %v, want 3 hops or more ending at an exit", circ, h, path)
		}
	}

	p.finish(t)
}

// TestExamplePinExit: pin_exit.star sends the streams to one host through
// the chosen exit; other streams go where tor chooses. Run once for each
// exit of the network, so that tor's own choice cannot pass for the
// policy's.
func TestExamplePinExit(t *testing.T) {
	n := testnet.Shared(t)
	port := exServer(t, "0.0.0.0:0", "pin_exit")
	for _, exit := range n.Exits() {
		t.Run(exit.Name, func(t *testing.T) {
			ctx, c, ev := exBegin(t, 3*time.Minute)
			p := exStart(ctx, t, c, nil, "pin_exit.star", "127.0.0.2", exit.Name)
			p.waitStarted(t)

			seen := map[string]bool{}
			var pinned string
			for i := range 4 {
				exCurlOK(ctx, t, fmt.Sprintf("http://127.0.0.2:%d/", port), "pin_exit 127.0.0.2")
				id := ev.newStream(t, "127.0.0.2", port, seen)
				circ := ev.succeeded(t, id)
				if d := p.decision(t, id); d != circ {
					t.Errorf("stream %s: the policy chose circuit %s, tor says it SUCCEEDED on %s", id, d, circ)
				}
				path := ev.path(t, c, circ)
				t.Logf("curl %d: stream %s SUCCEEDED on circuit %s (%s)", i, id, circ, exPathString(path))
				if len(path) == 0 || path[len(path)-1].Fingerprint != exit.Fingerprint {
					t.Errorf("stream %s to 127.0.0.2 left through %v, want exit %s ($%s)", id, path, exit.Name, exit.Fingerprint)
				}
				if pinned != "" && circ != pinned {
					t.Logf("the pinned circuit changed from %s to %s", pinned, circ)
				}
				pinned = circ
			}

			// Another host: the policy leaves it to tor, and it works
			// (127.0.0.3 is no relay's address, so tor picks the exit
			// from the consensus, not as an exit enclave).
			exCurlOK(ctx, t, fmt.Sprintf("http://127.0.0.3:%d/", port), "pin_exit 127.0.0.3")
			id := ev.newStream(t, "127.0.0.3", port, seen)
			circ := ev.succeeded(t, id)
			t.Logf("stream %s to 127.0.0.3 SUCCEEDED on circuit %s (%s), chosen by tor", id, circ, exPathString(ev.path(t, c, circ)))
			if strings.Contains(p.stdout.String(), "stream "+id+" ") {
				t.Errorf("the policy routed stream %s to 127.0.0.3, which it should leave to tor", id)
			}

			p.finish(t)
		})
	}
}

// TestTorRoutesByItself: with no policy, and under --dry-run of the
// README's pin_exit line, tor routes streams to every target the README
// names by itself: 127.0.0.1 (every relay's own address, which tor treats
// as an exit enclave; the web page of testnet up is there), other
// 127.0.0.0/8 addresses (for which the client picks an exit from the
// consensus summaries) and the onion service. Before the exits' policy accepted *:* (bound to 127.0.0.1),
// 127.0.0.2 timed out with "All routers are down or won't exit".
func TestTorRoutesByItself(t *testing.T) {
	n := testnet.Shared(t)
	ctx, c, ev := exBegin(t, 3*time.Minute)
	port := exServer(t, "0.0.0.0:0", "by itself")
	if v, err := c.GetConf(ctx, "__LeaveStreamsUnattached"); err != nil || v.Values("__LeaveStreamsUnattached")[0] != "0" {
		t.Fatalf("__LeaveStreamsUnattached before the test: %v %v", v, err)
	}
	seen := map[string]bool{}
	reach := func(host string) {
		t.Helper()
		exCurlOK(ctx, t, fmt.Sprintf("http://%s:%d/", host, port), "by itself "+host)
		id := ev.newStream(t, host, port, seen)
		hops := ev.path(t, c, ev.succeeded(t, id))
		if len(hops) == 0 || !exIsExit(n, hops[len(hops)-1]) {
			t.Errorf("stream %s to %s left through %s, want one of the exits", id, host, exPathString(hops))
		}
	}
	for _, h := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		reach(h)
	}
	if r := exCurl(ctx, t, n.OnionURL()); r.err != nil || r.code != 200 {
		t.Errorf("the onion service: %v", r)
	}

	// circuits.pool() without fingerprints: tor picks each circuit's
	// exit, and each is one of the exits (only they have the Exit flag).
	pool := stdStart(ctx, t, c, `
load("@stdlib/circuits.star", "circuits")
pool = circuits.pool(size = 3)
def show(_ = None):
    built = pool.built()
    if len(built) == 3:
        print("pool exits", " ".join([tor.circuit(id).exit.nickname for id in built]))
tor.on("circ", show)
show()
`)
	exits := pool.waitLine(t, regexp.MustCompile(`pool exits (.*)`), time.Minute)
	for _, name := range strings.Fields(exits[1]) {
		if n.Node(name) == nil || n.Node(name).Role != testnet.RoleExit {
			t.Errorf("a pool circuit ends at %s, which is not an exit (%s)", name, exits[0])
		}
	}
	pool.termOK(t)

	// The README's dry run: the policy is asked, tor attaches.
	p := exStart(ctx, t, c, []string{"--dry-run"}, "pin_exit.star", "127.0.0.2", n.Exits()[0].Name)
	p.waitStarted(t)
	reach("127.0.0.2")
	reach("127.0.0.4")
	p.finish(t)
}

// TestExampleIsolateByPort: isolate_by_port.star gives each client source
// port its own circuit; sequential curls (each its own connection, from
// its own port) each ride a different circuit.
func TestExampleIsolateByPort(t *testing.T) {
	ctx, c, ev := exBegin(t, 3*time.Minute)
	port := httpServer(t, "isolate_by_port")
	p := exStart(ctx, t, c, nil, "isolate_by_port.star")
	p.waitStarted(t)

	seen := map[string]bool{}
	byCirc := map[string]string{}   // circuit -> stream
	srcPorts := map[string]string{} // source address -> stream
	for range 4 {
		exCurlOK(ctx, t, fmt.Sprintf("http://127.0.0.1:%d/", port), "isolate_by_port")
		id := ev.newStream(t, "127.0.0.1", port, seen)
		circ := ev.succeeded(t, id)
		if d := p.decision(t, id); d != circ {
			t.Errorf("stream %s: the policy chose circuit %s, tor says it SUCCEEDED on %s", id, d, circ)
		}
		newEv := ev.wait(t, time.Second, "STREAM NEW "+id, streamID(id, ctl.StreamNew)).(*ctl.StreamEvent)
		t.Logf("stream %s from %s SUCCEEDED on circuit %s (%s)", id, newEv.SourceAddr, circ, exPathString(ev.path(t, c, circ)))
		if other, ok := byCirc[circ]; ok {
			t.Errorf("streams %s and %s share circuit %s", other, id, circ)
		}
		byCirc[circ] = id
		if other, ok := srcPorts[newEv.SourceAddr]; ok {
			t.Errorf("streams %s and %s both came from %s", other, id, newEv.SourceAddr)
		}
		srcPorts[newEv.SourceAddr] = id
	}

	p.finish(t)
}

// TestExampleRedirectBlocked: redirect_blocked.star sends the streams for
// a blocked host to a mirror; other streams reach their server.
func TestExampleRedirectBlocked(t *testing.T) {
	ctx, c, ev := exBegin(t, 3*time.Minute)
	origin := httpServer(t, "the origin")
	mirror := httpServer(t, "the mirror")
	p := exStart(ctx, t, c, nil, "redirect_blocked.star", fmt.Sprintf("blocked.example=127.0.0.1:%d", mirror))
	p.waitStarted(t)

	seen := map[string]bool{}
	exCurlOK(ctx, t, fmt.Sprintf("http://blocked.example:%d/", origin), "the mirror")
	id := ev.newStream(t, "blocked.example", origin, seen)
	end := ev.end(t, id)
	if end.Status != ctl.StreamSucceeded {
		t.Errorf("stream %s to blocked.example ended %s, want SUCCEEDED", id, strings.TrimSpace(end.Raw.Raw))
	}
	if end.TargetPort != mirror {
		t.Errorf("stream %s SUCCEEDED to %s, want the mirror's port %d", id, end.Target, mirror)
	}
	t.Logf("%s", strings.TrimSpace(end.Raw.Raw))
	p.waitOut(t, fmt.Sprintf("stream %s to blocked.example:%d redirected to 127.0.0.1:%d", id, origin, mirror), 1, 5*time.Second)

	exCurlOK(ctx, t, fmt.Sprintf("http://127.0.0.1:%d/", origin), "the origin")
	id = ev.newStream(t, "127.0.0.1", origin, seen)
	if end := ev.end(t, id); end.Status != ctl.StreamSucceeded || end.TargetPort != origin {
		t.Errorf("stream %s to the origin: %s", id, strings.TrimSpace(end.Raw.Raw))
	}

	p.finish(t)
}

// TestExampleVirtualNames: virtual_names.star maps a name of its own while
// it runs, and removes the mapping when it ends.
func TestExampleVirtualNames(t *testing.T) {
	ctx, c, ev := exBegin(t, 3*time.Minute)
	port := httpServer(t, "virtual web")
	const name = "web.virtual"
	mapped := func() []ctl.AddressMapping {
		maps, err := c.AddressMappings(testCtx(t, 10*time.Second), "control")
		if err != nil {
			t.Fatal(err)
		}
		var r []ctl.AddressMapping
		for _, m := range maps {
			if m.From == name {
				r = append(r, m)
			}
		}
		return r
	}
	if m := mapped(); len(m) > 0 {
		t.Fatalf("%s is mapped before the script runs: %+v", name, m)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.MapAddress(ctx, ctl.AddrMap{From: name, To: name})
	})
	p := exStart(ctx, t, c, nil, "virtual_names.star", name+"=127.0.0.1")
	p.waitStarted(t)
	p.waitOut(t, "mapped "+name+" -> 127.0.0.1", 1, 10*time.Second)
	if m := mapped(); len(m) != 1 || m[0].To != "127.0.0.1" {
		t.Errorf("address-mappings/control for %s while the script runs: %+v, want 127.0.0.1", name, m)
	}

	exCurlOK(ctx, t, fmt.Sprintf("http://%s:%d/", name, port), "virtual web")
	// Tor announces the stream by the name the client asked for, and
	// rewrites it to the mapped address when it attaches it.
	// The control connection may hear the event after curl is done.
	id := ev.newStream(t, name, port, map[string]bool{})
	end := ev.end(t, id)
	if end.Status != ctl.StreamSucceeded || !strings.HasPrefix(end.TargetHost, "127.0.0.1") {
		t.Errorf("stream %s: %s, want SUCCEEDED to the mapped 127.0.0.1", id, strings.TrimSpace(end.Raw.Raw))
	}
	t.Logf("%s", strings.TrimSpace(end.Raw.Raw))
	p.waitOut(t, "stream "+id+" to ", 1, 5*time.Second)

	p.termOK(t)
	if m := mapped(); len(m) > 0 {
		t.Errorf("after the script ended address-mappings/control still lists %+v", m)
	}
	p.afterExit(t)
}

// TestExampleRefusePorts: refuse_ports.star closes the streams to a
// refused port with EXITPOLICY, so curl fails at once; other ports work.
func TestExampleRefusePorts(t *testing.T) {
	ctx, c, ev := exBegin(t, 3*time.Minute)
	refused := httpServer(t, "never served")
	open := httpServer(t, "open port")
	p := exStart(ctx, t, c, nil, "refuse_ports.star", strconv.Itoa(refused))
	p.waitStarted(t)

	seen := map[string]bool{}
	r := exCurl(ctx, t, fmt.Sprintf("http://127.0.0.1:%d/", refused))
	t.Logf("%v", r)
	if r.exit == 0 {
		t.Errorf("%v; want curl to fail", r)
	}
	if r.took >= time.Second {
		t.Errorf("%v; want it to fail at once (well under 1s)", r)
	}
	id := ev.newStream(t, "127.0.0.1", refused, seen)
	end := ev.end(t, id)
	if (end.Status != ctl.StreamFailed && end.Status != ctl.StreamClosed) || end.Reason != "EXITPOLICY" {
		t.Errorf("stream %s to the refused port: %s, want FAILED or CLOSED with REASON=EXITPOLICY", id, strings.TrimSpace(end.Raw.Raw))
	}
	p.waitOut(t, fmt.Sprintf("refused stream %s to 127.0.0.1:%d", id, refused), 1, 5*time.Second)

	exCurlOK(ctx, t, fmt.Sprintf("http://127.0.0.1:%d/", open), "open port")
	id = ev.newStream(t, "127.0.0.1", open, seen)
	ev.succeeded(t, id)

	p.finish(t)
}

// TestExampleNewnymTimer: newnym_timer.star sends SIGNAL NEWNYM on a
// timer; tor runs them (at most one every 10 s).
func TestExampleNewnymTimer(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	c := dial(t)
	ev := exWatch(t, c, "SIGNAL")
	newnym := func(e ctl.Event) bool {
		s, ok := e.(*ctl.SignalEvent)
		return ok && s.Signal == "NEWNYM"
	}
	start := time.Now()
	p := exStart(ctx, t, c, nil, "newnym_timer.star", "3s")
	p.waitOut(t, "NEWNYM every 3s", 1, 30*time.Second)

	deadline := start.Add(30 * time.Second)
	for len(ev.all(newnym)) < 2 {
		if p.exited() {
			t.Fatalf("torscript exited (%v)", p.err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d SIGNAL NEWNYM events within 30s, want at least 2", len(ev.all(newnym)))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("2 SIGNAL NEWNYM events %v after start", time.Since(start).Round(time.Millisecond))
	p.waitOut(t, "NEWNYM 1 sent", 1, time.Second)
	// The script's own handler of SIGNAL events saw them too.
	p.waitOut(t, "tor switched to clean circuits", 2, 5*time.Second)

	p.finish(t)
}

// TestExampleMonitor: monitor.star prints a line for each circuit event
// and a summary on a timer.
func TestExampleMonitor(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	c := dial(t)
	p := exStart(ctx, t, c, []string{"--no-wait"}, "monitor.star", "2s")
	p.waitOut(t, "bootstrap now: ", 1, 30*time.Second)
	// The top level's summary reads tor.circuits(), which subscribes to
	// CIRC events; the handler is registered right after. From this line
	// on, no circuit event is missed.
	p.waitOut(t, "built circuits: ", 1, 10*time.Second)

	n := testnet.Shared(t)
	id, path := buildCircuit(t, c)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.CloseCircuit(ctx, id, false)
	})
	var nicks []string
	for _, fp := range path {
		for _, nd := range n.Nodes {
			if "$"+nd.Fingerprint == fp {
				nicks = append(nicks, nd.Name)
			}
		}
	}
	want := fmt.Sprintf("circuit %s BUILT GENERAL %s", id, strings.Join(nicks, ","))
	p.waitLine(t, regexp.MustCompile("^"+regexp.QuoteMeta(want)+"$"), 10*time.Second)
	// A summary from the 2s timer after the circuit was built counts it
	// (and any other built GENERAL circuits).
	out := p.stdout.String()
	after := strings.Count(out[:strings.Index(out, want)], "built circuits: ") + 1
	p.waitOut(t, "built circuits: ", after, 10*time.Second)
	out = p.stdout.String()
	last := out[strings.Index(out, want):]
	if !regexp.MustCompile(`(?m)^built circuits: .*GENERAL [1-9]`).MatchString(last) {
		t.Errorf("no summary after circuit %s was built counts a built GENERAL circuit:\n%s", id, last)
	}

	p.finish(t)
}

// TestFirstPolicyTraceReplays: a user runs examples/first_policy.star with
// --trace on the private network, browses (the pinned host, other hosts,
// a mail port), and replays the transcript in a test of their own:
// sim.run(..., trace=) gives the script the traced tor's consensus,
// descriptors, guards and settings, and sim.replay() feeds it the traced
// events and finds the same decisions.
func TestFirstPolicyTraceReplays(t *testing.T) {
	n := testnet.Shared(t)
	ctx, c, ev := exBegin(t, 3*time.Minute)
	dir := t.TempDir()
	trace := filepath.Join(dir, "run.trace")
	port := exServer(t, "0.0.0.0:0", "first")
	exit := n.Exits()[0].Name
	p := exStart(ctx, t, c, []string{"--trace", trace}, "first_policy.star", "127.0.0.2", exit)
	p.waitStarted(t)
	seen := map[string]bool{}
	for _, h := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.1", "127.0.0.3"} {
		exCurlOK(ctx, t, fmt.Sprintf("http://%s:%d/", h, port), "first "+h)
		ev.succeeded(t, ev.newStream(t, h, port, seen))
	}
	if r := exCurl(ctx, t, "http://127.0.0.4:25/"); r.err == nil {
		t.Errorf("a mail port was reached: %v", r)
	}
	p.finish(t)

	test := writeScript(t, dir, "replay_test.star", fmt.Sprintf(`
def test_replay():
    sim.run(%q, args = ["127.0.0.2", %q], trace = "run.trace")
    n = sim.replay()
    assert.true(n >= 7, n)  # 4 attaches, a close, the pool's and the pin's circuits
`, exScript(t, "first_policy.star"), exit))
	out, err := exec.CommandContext(ctx, torscript(t), "test", "-v", test).CombinedOutput()
	if err != nil {
		t.Fatalf("torscript test of the replay: %v\n%s", err, out)
	}
}
