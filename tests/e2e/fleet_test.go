package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
)

// TestFleet: one torscript run drives the network's three client tors
// (--control three times): each copy of the script routes curl traffic
// through its own tor; killing one tor (SIGKILL) leaves the other two
// routing; when that tor is back, its copy reconnects and routes again.
// SIGTERM ends every copy and leaves each tor as it found it.
func TestFleet(t *testing.T) {
	n := testnet.Shared(t)
	clients := n.Clients()
	if len(clients) < 3 {
		t.Fatalf("the shared network has %d clients, want 3", len(clients))
	}
	ctx := testCtx(t, 4*time.Minute)
	port := exServer(t, "0.0.0.0:0", "fleet")
	script := writeScript(t, t.TempDir(), "fleet.star", `
def route(s):
    print("stream", s.id, "to", s.target, "on", tor.instance)
    return None
tor.policy(route)
`)
	args := []string{"run"}
	for _, c := range clients {
		args = append(args, "--control", c.ControlAddr())
	}
	p := startScript(t, exec.CommandContext(ctx, torscript(t), append(args, script)...))
	p.waitFor(t, &p.stderr, "log", "policy started", len(clients), 30*time.Second)

	fetch := func(c *testnet.Node, want bool) {
		t.Helper()
		socks := fmt.Sprintf("127.0.0.1:%d", c.SocksPort)
		out, err := exec.CommandContext(ctx, "curl", "-sS", "--max-time", "30", "--socks5-hostname", socks,
			fmt.Sprintf("http://127.0.0.2:%d/", port)).CombinedOutput()
		if got := err == nil && strings.Contains(string(out), "fleet 127.0.0.2"); got != want {
			t.Fatalf("curl through %s: %v %s; want success %v", c.Name, err, out, want)
		}
	}
	decided := func(c *testnet.Node) int {
		re := regexp.MustCompile(`(?m)^\[` + regexp.QuoteMeta(c.ControlAddr()) + `\] stream \d+ to 127\.0\.0\.2:\d+ on ` + regexp.QuoteMeta(c.ControlAddr()) + `$`)
		return len(re.FindAllString(p.stdout.String(), -1))
	}
	for _, c := range clients {
		fetch(c, true)
		if decided(c) != 1 {
			t.Errorf("the copy serving %s decided %d streams, want 1:\n%s", c.Name, decided(c), p.stdout.String())
		}
	}

	// One tor dies: the others go on.
	down := clients[2]
	if err := syscall.Kill(down.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, "lost the control connection", 30*time.Second)
	for _, c := range clients[:2] {
		fetch(c, true)
		if decided(c) != 2 {
			t.Errorf("with %s down, the copy serving %s decided %d streams, want 2", down.Name, c.Name, decided(c))
		}
	}

	// It comes back: its copy reconnects and routes again.
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := n.Restart(rctx, down); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, "reconnected to tor", 60*time.Second)
	fetch(down, true)
	if decided(down) != 2 {
		t.Errorf("after %s came back, its copy decided %d streams, want 2:\n%s", down.Name, decided(down), p.stdout.String())
	}

	p.termOK(t)
	for _, c := range clients {
		cc := dialNode(t, c)
		if v := leaveValue(t, cc); v != "0" {
			t.Errorf("%s: __LeaveStreamsUnattached=%s after the run, want 0", c.Name, v)
		}
	}
}
