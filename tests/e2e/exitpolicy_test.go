package e2e

import (
	"net/netip"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl"
)

// TestExitPolicyAgreesWithTor reads an exit's server descriptor from the
// client (GETINFO desc/id/FP) and checks ctl's evaluation of its policy
// against what the exit does with streams attached to a circuit ending
// there: one the policy accepts (127.0.0.1) succeeds, one it rejects
// (192.0.2.1, TEST-NET-1) comes back with reason EXITPOLICY. The
// consensus summary of the same exit says "reject 1-65535", which would
// have refused both.
func TestExitPolicyAgreesWithTor(t *testing.T) {
	c, ctx := byHand(t)
	circ, path := buildCircuit(t, c)
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
	port := httpServer(t, "the policy accepts this")
	accepted, _ := d.ExitPolicyFor("127.0.0.1", port)
	rejected, _ := d.ExitPolicyFor("192.0.2.1", 80)
	if accepted != ctl.PolicyAccepted || rejected != ctl.PolicyRejected {
		t.Fatalf("%s's policy %q: 127.0.0.1:%d %v, 192.0.2.1:80 %v; want accepted, rejected", d.Nickname, d.ExitPolicy.String(), port, accepted, rejected)
	}
	if got := rs[0].ExitPolicy.Evaluate(netip.MustParseAddr("127.0.0.1"), port, false); got != ctl.PolicyRejected {
		t.Errorf("the summary %q gives %v for 127.0.0.1: the test no longer shows why a summary is not enough", rs[0].ExitPolicy.String(), got)
	}
	if err := c.SetEvents(ctx, "STREAM"); err != nil {
		t.Fatal(err)
	}

	res, s := curlStream(ctx, t, c, port)
	waitEvent(t, c, 10*time.Second, "STREAM CONTROLLER_WAIT", streamID(s.ID, ctl.StreamControllerWait))
	if err := c.AttachStream(ctx, s.ID, circ, 0); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, c, 30*time.Second, "STREAM SUCCEEDED", streamID(s.ID, ctl.StreamSucceeded))
	if r := <-res; r.err != nil || r.body != "the policy accepts this" {
		t.Fatalf("curl through %s: %v", d.Nickname, r)
	}

	refused := curlWithin(ctx, t, 30*time.Second, "http://192.0.2.1:80/")
	ev := waitEvent(t, c, 30*time.Second, "STREAM NEW to 192.0.2.1", func(ev ctl.Event) bool {
		s, ok := ev.(*ctl.StreamEvent)
		return ok && s.TargetHost == "192.0.2.1" && s.Status == ctl.StreamNew
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
		if err := c.CloseStream(ctx, ev.ID, ctl.RelayEndMisc); err != nil {
			t.Logf("closing the refused stream: %v", err)
		}
	}
	if r := <-refused; r.err == nil {
		t.Errorf("curl to 192.0.2.1 succeeded: %v", r)
	}
}
