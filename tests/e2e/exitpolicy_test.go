package e2e

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
	"github.com/torscript/torscript/ctl"
)

// TestExitPolicyAgreesWithTor reads each exit's server descriptor from the
// client (GETINFO desc/id/FP) and checks ctl's evaluation of its policy
// against what the exit does with streams attached to a circuit ending
// there: one the policy accepts (127.0.0.1) succeeds, one it rejects
// (192.0.2.1, TEST-NET-1) comes back with reason EXITPOLICY. The
// consensus summary of the same exit says "reject 25", which would have
// taken both.
//
// The refused streams go through the network's other client, the tor
// that hosts the onion service (given a SocksPort for the test): after an
// exit refuses a stream to an IP address with EXITPOLICY, the client that
// sent it stops using that exit for good
// (adjust_exit_policy_from_exitpolicy_failure sets its policy to reject
// *:*), and the other tests need the main client's exits to 127.0.0.1.
func TestExitPolicyAgreesWithTor(t *testing.T) {
	n := testnet.Shared(t)
	c, ctx := byHand(t)
	if err := c.SetEvents(ctx, "STREAM"); err != nil {
		t.Fatal(err)
	}
	other, socks := refusingClient(ctx, t, n)
	rel := n.Relays()
	for _, ex := range n.Exits() {
		t.Run(ex.Name, func(t *testing.T) {
			path := []string{"$" + rel[0].Fingerprint, "$" + rel[1].Fingerprint, "$" + ex.Fingerprint}
			d := exitAgrees(ctx, t, c, path)
			exitRefuses(ctx, t, other, socks, path, d)
		})
	}
}

// refusingClient readies the onion service's tor as a client whose streams
// the test attaches: a SocksPort, __LeaveStreamsUnattached and STREAM
// events, undone when the test ends.
func refusingClient(ctx context.Context, t *testing.T, n *testnet.Network) (*ctl.Conn, string) {
	t.Helper()
	if n.Onion == nil {
		t.Skip("the network has no second client (the onion service's tor)")
	}
	c, _, err := ctl.Connect(ctx, n.Onion.ControlAddr(), ctl.Credentials{CookieFile: n.Onion.CookiePath()}, ctl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.ResetConf(ctx, ctl.ConfEntry{Key: "SocksPort"}, ctl.ConfEntry{Key: "__LeaveStreamsUnattached"}); err != nil {
			t.Errorf("restoring the onion tor's settings: %v", err)
		}
		c.Close()
	})
	if err := c.SetConf(ctx, ctl.ConfEntry{Key: "SocksPort", Value: "127.0.0.1:auto"}, ctl.ConfEntry{Key: "__LeaveStreamsUnattached", Value: "1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetEvents(ctx, "STREAM"); err != nil {
		t.Fatal(err)
	}
	ls, err := c.SocksListeners(ctx)
	if err != nil || len(ls) == 0 {
		t.Fatalf("the onion tor's SocksPort: %v %v", ls, err)
	}
	return c, ls[0]
}

// exitAgrees builds a circuit along path and checks ctl's evaluation of
// its exit's policy against what the exit does with a stream the policy
// accepts. It returns the exit's descriptor.
func exitAgrees(ctx context.Context, t *testing.T, c *ctl.Conn, path []string) *ctl.ServerDescriptor {
	circ, err := c.ExtendCircuit(ctx, "0", path, "")
	if err != nil {
		t.Fatalf("EXTENDCIRCUIT: %v", err)
	}
	waitBuilt(ctx, t, c, circ)
	exitFP := path[len(path)-1][1:]
	text, err := c.GetInfoOne(ctx, "desc/id/"+exitFP)
	if err != nil {
		t.Fatalf("GETINFO desc/id/%s: %v", exitFP, err)
	}
	ds, err := ctl.ParseServerDescriptors(text)
	if err != nil || len(ds) != 1 {
		t.Fatalf("ParseServerDescriptors: %d descriptors, %v", len(ds), err)
	}
	d := ds[0]
	ns, err := c.GetInfoOne(ctx, "ns/id/"+exitFP)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ctl.ParseRouterStatuses(ns)
	if err != nil || len(rs) != 1 {
		t.Fatalf("ns/id/%s: %v", exitFP, err)
	}
	body := "the policy of " + d.Nickname + " accepts this"
	port := httpServer(t, body)
	accepted, _ := d.ExitPolicyFor("127.0.0.1", port)
	rejected, _ := d.ExitPolicyFor("192.0.2.1", 80)
	if accepted != ctl.PolicyAccepted || rejected != ctl.PolicyRejected {
		t.Fatalf("%s's policy %q: 127.0.0.1:%d %v, 192.0.2.1:80 %v; want accepted, rejected", d.Nickname, d.ExitPolicy.String(), port, accepted, rejected)
	}
	if got := rs[0].ExitPolicy.Evaluate(netip.MustParseAddr("192.0.2.1"), 80, false); got == ctl.PolicyRejected {
		t.Errorf("the summary %q gives %v for 192.0.2.1:80: the test no longer shows why a summary is not enough", rs[0].ExitPolicy.String(), got)
	}

	res, s := curlStream(ctx, t, c, port)
	waitEvent(t, c, 10*time.Second, "STREAM CONTROLLER_WAIT", streamID(s.ID, ctl.StreamControllerWait))
	if err := c.AttachStream(ctx, s.ID, circ, 0); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, c, 30*time.Second, "STREAM SUCCEEDED", streamID(s.ID, ctl.StreamSucceeded))
	if r := <-res; r.err != nil || r.body != body {
		t.Fatalf("curl through %s: %v", d.Nickname, r)
	}
	return &d
}

// exitRefuses sends a stream to 192.0.2.1:80, which d's policy rejects,
// through the other client c (SocksPort socks) on a circuit along path,
// and wants the exit to refuse it with EXITPOLICY, which the SOCKS client
// hears as "not allowed".
func exitRefuses(ctx context.Context, t *testing.T, c *ctl.Conn, socks string, path []string, d *ctl.ServerDescriptor) {
	t.Helper()
	circ, err := c.ExtendCircuit(ctx, "0", path, "")
	if err != nil {
		t.Fatalf("EXTENDCIRCUIT on the other client: %v", err)
	}
	waitBuilt(ctx, t, c, circ)
	user := "refused-by-" + d.Nickname
	dialed := make(chan error, 1)
	go func() {
		conn, err := ctl.DialSOCKS(ctx, socks, user, "", "192.0.2.1", 80)
		if conn != nil {
			conn.Close()
		}
		dialed <- err
	}()
	ev := waitEvent(t, c, 30*time.Second, "STREAM NEW to 192.0.2.1", func(ev ctl.Event) bool {
		s, ok := ev.(*ctl.StreamEvent)
		return ok && s.SocksUsername == user && s.Status == ctl.StreamNew
	}).(*ctl.StreamEvent)
	waitEvent(t, c, 10*time.Second, "STREAM CONTROLLER_WAIT", streamID(ev.ID, ctl.StreamControllerWait))
	if err := c.AttachStream(ctx, ev.ID, circ, 0); err != nil {
		t.Fatal(err)
	}
	end := waitEvent(t, c, 30*time.Second, "the refused stream back", func(e ctl.Event) bool {
		s, ok := e.(*ctl.StreamEvent)
		return ok && s.ID == ev.ID && (s.Status == ctl.StreamDetached || s.Status == ctl.StreamFailed || s.Status == ctl.StreamClosed)
	}).(*ctl.StreamEvent)
	if end.Reason != "EXITPOLICY" && end.RemoteReason != "EXITPOLICY" {
		t.Errorf("stream to 192.0.2.1:80 through %s: %s REASON=%s REMOTE_REASON=%s, want EXITPOLICY", d.Nickname, end.Status, end.Reason, end.RemoteReason)
	}
	if end.Status == ctl.StreamDetached {
		if err := c.CloseStream(ctx, ev.ID, ctl.RelayEndExitPolicy); err != nil {
			t.Logf("closing the refused stream: %v", err)
		}
	}
	var se *ctl.SOCKSError
	if err := <-dialed; !errors.As(err, &se) || se.Code != 2 {
		t.Errorf("the SOCKS client heard %v, want a refusal with code 2 (not allowed)", err)
	}
}

// TestExitsToScript: tor.exits_to and can_exit_to in a script on the
// private network name exactly its exits for 127.0.0.1, and nothing for an
// address their policies refuse (though their consensus summaries say
// "reject 25").
func TestExitsToScript(t *testing.T) {
	n := testnet.Shared(t)
	var want []string
	for _, e := range n.Exits() {
		want = append(want, e.Name)
	}
	slices.Sort(want)
	ctx := testCtx(t, 60*time.Second)
	src := `
ok = sorted([r.nickname for r in tor.exits_to("127.0.0.1", 8080, strict = True)])
print("exits", ",".join(ok))
print("refused", len(tor.exits_to("192.0.2.1", 80)))
r = tor.router(ok[0])
print("exit", r.exit_policy_summary, "|", r.exit_policy, "|", r.version, r.unmeasured, r.can_exit_to("127.0.0.1", 1, strict = True))
`
	out, err := cli(ctx, t, "eval", src).CombinedOutput()
	if err != nil {
		t.Fatalf("torscript eval: %v\n%s", err, out)
	}
	got := string(out)
	for _, line := range []string{
		"exits " + strings.Join(want, ","),
		"refused 0",
		"exit reject 25 | accept 127.0.0.0/8:*, reject 192.0.2.0/24:*, reject *:25, accept *:* | Tor 0.4.9",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("output lacks %q:\n%s", line, got)
		}
	}
	if !strings.Contains(got, " True True") {
		t.Errorf("want unmeasured and can_exit_to True:\n%s", got)
	}
}
