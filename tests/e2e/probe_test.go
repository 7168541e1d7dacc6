package e2e

// Probes (tor.fetch, tor.connect) on the private network: the exitmap-style
// example reports every exit, each probe rides the circuit it was given
// (checked on the test's own control connection, from tor's events), a
// script's policy is never asked about a probe's stream, and without the
// grant net nothing reaches tor.

import (
	"bufio"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
	"github.com/torscript/torscript/ctl"
)

// TestExitProbeExample: examples/exit_probe.star fetches a page through
// every exit of the network and reports each "ok"; tor's own events show
// a stream to the page that SUCCEEDED through each exit.
func TestExitProbeExample(t *testing.T) {
	n := testnet.Shared(t)
	ctx, c, log := exBegin(t, 120*time.Second)
	port := httpServer(t, "the page every exit should fetch\n")
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/"
	p := exStart(ctx, t, c, []string{"--allow", "net"}, "exit_probe.star", url)
	select {
	case <-p.done:
	case <-ctx.Done():
		t.Fatal("exit_probe.star did not end")
	}
	if code := exitStatus(p.err); code != 0 {
		t.Fatalf("exit_probe.star exited %d", code)
	}
	p.afterExit(t)
	out := p.stdout.String()
	exits := n.Exits()
	for _, x := range exits {
		if !regexp.MustCompile(`(?m)^ok ` + x.Name + ` +[0-9A-F]{40} 200, 33 bytes`).MatchString(out) {
			t.Errorf("no ok line for exit %s:\n%s", x.Name, out)
		}
	}
	if want := strconv.Itoa(len(exits)) + " exits probed for " + url + ": " + strconv.Itoa(len(exits)) + " ok, 0 failed"; !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	// Each fetch left through the exit it reported.
	var left []string
	for _, id := range log.streams("127.0.0.1", port) {
		hops := log.path(t, c, log.succeeded(t, id))
		left = append(left, hops[len(hops)-1].Nickname)
	}
	var names []string
	for _, x := range exits {
		names = append(names, x.Name)
	}
	slices.Sort(left)
	slices.Sort(names)
	if !slices.Equal(left, names) {
		t.Errorf("streams left through %v, want one through each of %v", left, names)
	}
}

// TestProbesBesideAPolicy: a script with a policy of its own sends a raw
// exchange (tor.connect, to an echo server) and a fetch to a closed port
// over a circuit it built; the policy is never asked about either stream,
// the echo comes back through the circuit, and the fetch fails with
// tor's reason.
func TestProbesBesideAPolicy(t *testing.T) {
	n := testnet.Shared(t)
	ctx, c, log := exBegin(t, 90*time.Second)
	echo := echoServer(t)
	closed := closedPort(t)
	exit := n.Exits()[0]
	src := `
tor.require(commands = ["net"])
asked = []
def route(s):
    asked.append(s.target)
    return None
tor.policy(route)
left = [2]
def finished():
    left[0] -= 1
    if left[0] == 0:
        print("asked", asked)
        exit(0)
def connected(r):
    print("connect", r.ok, repr(r.data), r.exit_nickname, r.sent, r.error)
    finished()
def fetched(r):
    print("fetch", r.ok, r.reason, r.status)
    print("fetch error", r.error)
    finished()
def built(c):
    print("built", c.id)
    tor.connect("127.0.0.1", ` + strconv.Itoa(echo) + `, circuit = c, send = b"ping\n", on_done = connected, timeout = "20s")
    tor.fetch("http://127.0.0.1:` + strconv.Itoa(closed) + `/", circuit = c.id, on_done = fetched, timeout = "20s")
guard = [g.relay for g in tor.entry_guards() if g.status == "up"][0]
tor.extend_circuit([guard, tor.router("` + exit.Name + `")], on_built = built)
`
	path := writeScript(t, t.TempDir(), "probes.star", src)
	p := runPath(ctx, t, c, []string{"--allow", "net"}, path)
	select {
	case <-p.done:
	case <-ctx.Done():
		t.Fatal("the script did not end")
	}
	if code := exitStatus(p.err); code != 0 {
		t.Fatalf("the script exited %d", code)
	}
	p.afterExit(t)
	out := p.stdout.String()
	for _, want := range []string{
		`connect True b"ping\n" ` + exit.Name + ` 5 None`,
		// The exit's END says MISC for a refused connection (tor 0.4.9
		// sends no finer reason), tor detaches the stream, and the
		// runtime closes it rather than try another circuit: the
		// probe's is the only one it may ride.
		"fetch False MISC None",
		"fetch error tor refused the stream: socks: general failure (1)",
		"asked []",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	built := regexp.MustCompile(`(?m)^built (\d+)$`).FindStringSubmatch(out)
	if built == nil {
		t.Fatalf("no built line:\n%s", out)
	}
	if got := log.succeeded(t, log.newStream(t, "127.0.0.1", echo, map[string]bool{})); got != built[1] {
		t.Errorf("the exchange rode circuit %s, want %s", got, built[1])
	}
}

// TestProbeNeedsTheGrant: without --allow net, tor.fetch fails before
// anything reaches tor: no stream, no change to __LeaveStreamsUnattached.
// torscript check lists the grant.
func TestProbeNeedsTheGrant(t *testing.T) {
	ctx, c, _ := exBegin(t, 60*time.Second)
	conf := watchEvents(t, dial(t), "CONF_CHANGED", "STREAM")
	port := httpServer(t, "never fetched\n")
	src := `tor.fetch("http://127.0.0.1:` + strconv.Itoa(port) + `/", on_done = print)
`
	path := writeScript(t, t.TempDir(), "fetch.star", src)
	out, err := cli(ctx, t, "run", path).CombinedOutput()
	if exitStatus(err) == 0 {
		t.Fatalf("torscript run without --allow net exited 0:\n%s", out)
	}
	if !strings.Contains(string(out), "refused, nothing sent: tor.fetch reaches the network") || !strings.Contains(string(out), "--allow net") {
		t.Errorf("the error does not say what is missing:\n%s", out)
	}
	check, _ := cli(ctx, t, "check", path).CombinedOutput()
	if !strings.Contains(string(check), "tor.fetch: net") {
		t.Errorf("torscript check does not list the grant:\n%s", check)
	}
	// A marker: the events up to it are all that came.
	if _, err := c.GetConf(ctx, leaveKey); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	for _, ev := range conf.all(func(ctl.Event) bool { return true }) {
		raw := ev.Reply().Raw
		if strings.Contains(raw, leaveKey) || strings.Contains(raw, ":"+strconv.Itoa(port)) {
			t.Errorf("tor saw the refused fetch: %s", raw)
		}
	}
}

// echoServer answers each line it reads with the line, then closes.
func echoServer(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(30 * time.Second))
				line, err := bufio.NewReader(conn).ReadString('\n')
				if err == nil {
					conn.Write([]byte(line))
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// closedPort is a port on 127.0.0.1 where nothing listens.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}
