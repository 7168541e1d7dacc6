package e2e

// Fault tests: the real torscript binary runs a stream policy against the
// shared network's client while real curls go through the client's
// SocksPort, and the test breaks something (the policy, the control
// connection, tor itself, the process). A separate control connection
// checks what tor saw. Whatever breaks, every curl completes, or fails at
// once with the chosen reason; none waits for tor's 120 s stream timeout;
// after torscript exits __LeaveStreamsUnattached has its earlier value and
// no stream is left unattached.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
	"github.com/torscript/torscript/ctl"
)

const (
	// faultCurlMax bounds every curl (--max-time).
	faultCurlMax = 20 * time.Second
	// faultPatience is how long a curl may take that "completes": well
	// before faultCurlMax.
	faultPatience = 10 * time.Second
)

// faultProc is a running `torscript run`.
type faultProc struct {
	*scriptProc
	script string
}

// faultBegin starts a fault test: a deadline 3 minutes away,
// __LeaveStreamsUnattached back to 0 when the test ends, and the STREAM
// events of a control connection of the test's own.
func faultBegin(t *testing.T) (context.Context, *eventLog) {
	t.Helper()
	ctx := testCtx(t, 3*time.Minute)
	restoreLeave(t, "0")
	return ctx, watchEvents(t, dial(t), "STREAM")
}

// finish ends torscript with SIGTERM, wants exit status 0, and checks on
// a new connection that __LeaveStreamsUnattached is 0 again and no stream
// waits for a controller.
func (p *faultProc) finish(t *testing.T) {
	t.Helper()
	p.termOK(t)
	checkLeftBehind(t, dial(t), "0")
}

// faultStart writes src to policy.star and runs it with torscript (flags
// before the file), and waits until the policy has started.
func faultStart(ctx context.Context, t *testing.T, src string, flags ...string) *faultProc {
	t.Helper()
	p := &faultProc{script: writeScript(t, t.TempDir(), "policy.star", src)}
	args := append([]string{"run"}, flags...)
	p.scriptProc = startScript(t, cli(ctx, t, append(args, p.script)...))
	p.waitStarted(t)
	return p
}

// faultCurl fetches http://127.0.0.1:port/ with a real curl through the
// network's SocksPort, bounded by faultCurlMax.
func faultCurl(ctx context.Context, t *testing.T, port int) <-chan curlResult {
	t.Helper()
	return curlWithin(ctx, t, faultCurlMax, fmt.Sprintf("http://127.0.0.1:%d/", port))
}

// faultCurls starts a faultCurl to each of ports, all at once.
func faultCurls(ctx context.Context, t *testing.T, ports []int) []<-chan curlResult {
	t.Helper()
	var res []<-chan curlResult
	for _, port := range ports {
		res = append(res, faultCurl(ctx, t, port))
	}
	return res
}

// faultCurlOK checks that a curl got body with 200 well before its
// --max-time.
func faultCurlOK(t *testing.T, r curlResult, body string) {
	t.Helper()
	if r.err != nil || r.code != 200 || r.body != body {
		t.Errorf("%v; want HTTP 200 %q", r, body)
	} else if r.took > faultPatience {
		t.Errorf("%v: too slow (want well under the --max-time of %v)", r, faultCurlMax)
	}
}

func (e *eventLog) stream(t *testing.T, port int) string {
	t.Helper()
	return e.wait(t, 20*time.Second, fmt.Sprintf("STREAM NEW to port %d", port), streamTo(port, ctl.StreamNew)).(*ctl.StreamEvent).ID
}

// succeededOn checks that the stream to port succeeded, on circuit circ
// unless circ is "".
func (e *eventLog) succeededOn(t *testing.T, port int, circ string) string {
	t.Helper()
	id := e.stream(t, port)
	end := e.end(t, id)
	switch {
	case end.Status != ctl.StreamSucceeded:
		t.Errorf("stream %s to port %d: %s, want SUCCEEDED (%s)", id, port, end.Status, strings.TrimSpace(end.Raw.Raw))
	case end.CircuitID == "0" || end.CircuitID == "":
		t.Errorf("stream %s SUCCEEDED without a circuit: %s", id, strings.TrimSpace(end.Raw.Raw))
	case circ != "" && end.CircuitID != circ:
		t.Errorf("stream %s SUCCEEDED on circuit %s, want the policy's circuit %s", id, end.CircuitID, circ)
	}
	return id
}

// faultServers starts n HTTP servers; server i answers "fault NAME i".
func faultServers(t *testing.T, name string, n int) (ports []int, bodies []string) {
	for i := range n {
		bodies = append(bodies, fmt.Sprintf("fault %s %d", name, i))
		ports = append(ports, httpServer(t, bodies[i]))
	}
	return ports, bodies
}

// faultCircuit builds a three-hop circuit for the policy to use (on a
// connection of its own, so that the circuit outlives nothing but tor).
func faultCircuit(t *testing.T) string {
	t.Helper()
	id, path := buildCircuit(t, dial(t))
	t.Logf("circuit %s built through %v", id, path)
	return id
}

// TestFaultPolicyRaises: a policy that fails for every stream. With
// on_error="tor" every stream goes to tor and every curl gets its page;
// with on_error="close" every curl fails at once. The log has the
// Starlark backtrace with the script's file and line.
func TestFaultPolicyRaises(t *testing.T) {
	const src = `# The policy fails for every stream.
def policy(s):
    fail("boom")

tor.policy(policy, on_error=%q)
`
	t.Run("on_error=tor", func(t *testing.T) {
		ctx, ev := faultBegin(t)
		p := faultStart(ctx, t, fmt.Sprintf(src, "tor"))
		ports, bodies := faultServers(t, "raises", 6)
		for i := range 2 {
			faultCurlOK(t, <-faultCurl(ctx, t, ports[i]), bodies[i])
		}
		res := faultCurls(ctx, t, ports[2:])
		for i, ch := range res {
			faultCurlOK(t, <-ch, bodies[i+2])
		}
		for _, port := range ports {
			ev.succeededOn(t, port, "")
		}
		log := p.stderr.String()
		if got := strings.Count(log, "policy failed; on_error applies"); got < len(ports) {
			t.Errorf("the log reports %d policy failures, want at least %d", got, len(ports))
		}
		for _, want := range []string{filepath.Base(p.script) + ":3:", "in policy", "boom"} {
			if !strings.Contains(log, want) {
				t.Errorf("the log lacks %q (the backtrace)", want)
			}
		}
		p.finish(t)
	})
	t.Run("on_error=close", func(t *testing.T) {
		ctx, ev := faultBegin(t)
		p := faultStart(ctx, t, fmt.Sprintf(src, "close"))
		ports, _ := faultServers(t, "raises-close", 4)
		results := []curlResult{<-faultCurl(ctx, t, ports[0])}
		res := faultCurls(ctx, t, ports[1:])
		for _, ch := range res {
			results = append(results, <-ch)
		}
		for i, r := range results {
			port := ports[i]
			if r.err == nil || r.code == 200 {
				t.Errorf("%v; want a failure (on_error=\"close\")", r)
			} else if r.took > 2*time.Second {
				t.Errorf("%v: want it to fail at once", r)
			}
			end := ev.end(t, ev.stream(t, port))
			if end.Status != ctl.StreamClosed && end.Status != ctl.StreamFailed {
				t.Errorf("stream to port %d: %s, want CLOSED or FAILED", port, strings.TrimSpace(end.Raw.Raw))
			} else if end.Reason != "MISC" {
				t.Errorf("stream to port %d ended with reason %q, want MISC (on_error=\"close\"): %s", port, end.Reason, strings.TrimSpace(end.Raw.Raw))
			}
			t.Logf("%v: %s", r, strings.TrimSpace(end.Raw.Raw))
		}
		if !strings.Contains(p.stderr.String(), filepath.Base(p.script)+":3:") {
			t.Errorf("the log lacks the backtrace")
		}
		p.finish(t)
	})
}

// TestFaultPolicyLoopsForever: a policy that never returns is stopped by
// the step budget, or by the wall deadline when it spends its time in
// builtins; on_error="tor" then lets every curl through.
func TestFaultPolicyLoopsForever(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		flags      []string
		overrun    string // what the log says stopped it
		notOverrun string
	}{
		// 10,000,000 steps take about 0.1 s: the step budget stops it
		// long before the deadline.
		{"steps", "pass", []string{"--handler-timeout", "30s"}, "too many steps", "handler timeout"},
		// Each builtin call takes few steps and much time: the deadline
		// stops it. tor.circuits() costs so little that the step budget
		// could win the race; a budget out of reach leaves it to the
		// deadline.
		{"deadline-circuits", "list(tor.circuits())", []string{"--handler-timeout", "500ms", "--max-steps", "1000000000000"}, "handler timeout (500ms)", "too many steps"},
		// A builtin that waits for tor is cancelled too.
		{"deadline-get-info", `tor.get_info("version")`, []string{"--handler-timeout", "500ms"}, "handler timeout (500ms)", "too many steps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, ev := faultBegin(t)
			src := fmt.Sprintf(`def policy(s):
    while True:
        %s

tor.policy(policy, on_error="tor")
`, tc.body)
			p := faultStart(ctx, t, src, tc.flags...)
			ports, bodies := faultServers(t, "loops-"+tc.name, 4)
			res := faultCurls(ctx, t, ports[:3])
			for i, ch := range res {
				r := <-ch
				faultCurlOK(t, r, bodies[i])
				if r.took > 5*time.Second {
					t.Errorf("%v: want it within a few seconds", r)
				}
			}
			r := <-faultCurl(ctx, t, ports[3])
			faultCurlOK(t, r, bodies[3])
			if r.took > 3*time.Second {
				t.Errorf("%v: want it within a few seconds", r)
			}
			for _, port := range ports {
				ev.succeededOn(t, port, "")
			}
			log := p.stderr.String()
			if got := strings.Count(log, tc.overrun); got < len(ports) {
				t.Errorf("the log names the overrun (%q) %d times, want at least %d", tc.overrun, got, len(ports))
			}
			if strings.Contains(log, tc.notOverrun) {
				t.Errorf("the log says %q; want only %q to stop the policy", tc.notOverrun, tc.overrun)
			}
			p.finish(t)
		})
	}
}

// TestFaultSIGTERMMidTraffic: SIGTERM while the policy holds streams, and
// while curls keep coming: every stream goes back to tor, every curl gets
// its page, torscript exits 0 and the setting is restored.
func TestFaultSIGTERMMidTraffic(t *testing.T) {
	t.Run("held", func(t *testing.T) {
		ctx, ev := faultBegin(t)
		p := faultStart(ctx, t, `def policy(s):
    print("held", s.id, s.target)
    return tor.hold()

tor.policy(policy, timeout="60s")
`)
		ports, bodies := faultServers(t, "held", 4)
		res := faultCurls(ctx, t, ports)
		p.waitFor(t, &p.stdout, "output", "held ", len(ports), 20*time.Second)
		time.Sleep(500 * time.Millisecond)
		for i, ch := range res {
			select {
			case r := <-ch:
				t.Fatalf("%v while the policy held its stream", r)
			default:
			}
			if id := ev.stream(t, ports[i]); !strings.Contains(p.stdout.String(), "held "+id+" ") {
				t.Errorf("the policy did not hold stream %s", id)
			}
		}
		sigterm := time.Now()
		p.termOK(t)
		for i, ch := range res {
			r := <-ch
			faultCurlOK(t, r, bodies[i])
			if after := r.start.Add(r.took).Sub(sigterm); after > 3*time.Second {
				t.Errorf("%v: done %v after SIGTERM, want right after", r, after.Round(time.Millisecond))
			}
			ev.succeededOn(t, ports[i], "")
		}
		if !strings.Contains(p.stderr.String(), "streams handed back at exit") {
			t.Errorf("the log does not report the streams handed back")
		}
		checkLeftBehind(t, dial(t), "0")
	})
	t.Run("under-load", func(t *testing.T) {
		ctx := testCtx(t, 3*time.Minute)
		restoreLeave(t, "0")
		circ := faultCircuit(t)
		p := faultStart(ctx, t, fmt.Sprintf(`def policy(s):
    return %q

tor.policy(policy)
`, circ))
		port := httpServer(t, "under load")
		stop := make(chan struct{})
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			results []curlResult
		)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					r := <-faultCurl(ctx, t, port)
					mu.Lock()
					results = append(results, r)
					mu.Unlock()
				}
			}()
		}
		time.Sleep(2 * time.Second)
		sigterm := time.Now()
		p.termOK(t)
		time.Sleep(2 * time.Second)
		close(stop)
		wg.Wait()
		var before, spanning, after int
		for _, r := range results {
			faultCurlOK(t, r, "under load")
			switch end := r.start.Add(r.took); {
			case end.Before(sigterm):
				before++
			case r.start.Before(sigterm):
				spanning++
			default:
				after++
			}
		}
		t.Logf("curls: %d before SIGTERM, %d during it, %d after", before, spanning, after)
		if before == 0 || after == 0 {
			t.Errorf("no load before or after SIGTERM")
		}
		checkLeftBehind(t, dial(t), "0")
	})
}

// faultProxy is a TCP proxy to tor's ControlPort whose connections the
// test can cut, and which can turn new connections away for a while.
type faultProxy struct {
	ln       net.Listener
	target   string
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	refuse   bool
	accepted int
	refused  int
}

func faultNewProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &faultProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() {
		ln.Close()
		px.cut()
	})
	go px.serve()
	return px
}

func (px *faultProxy) Addr() string { return px.ln.Addr().String() }

func (px *faultProxy) serve() {
	for {
		c, err := px.ln.Accept()
		if err != nil {
			return
		}
		px.mu.Lock()
		if px.refuse {
			px.refused++
			px.mu.Unlock()
			c.Close()
			continue
		}
		px.accepted++
		px.mu.Unlock()
		u, err := net.DialTimeout("tcp", px.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		px.mu.Lock()
		px.conns[c], px.conns[u] = struct{}{}, struct{}{}
		px.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			io.Copy(dst, src)
			dst.Close()
			src.Close()
			px.mu.Lock()
			delete(px.conns, dst)
			delete(px.conns, src)
			px.mu.Unlock()
		}
		go pipe(c, u)
		go pipe(u, c)
	}
}

// cut closes every proxied connection, both ways.
func (px *faultProxy) cut() int {
	px.mu.Lock()
	defer px.mu.Unlock()
	n := len(px.conns) / 2
	for c := range px.conns {
		c.Close()
	}
	clear(px.conns)
	return n
}

func (px *faultProxy) setRefuse(b bool) {
	px.mu.Lock()
	px.refuse = b
	px.mu.Unlock()
}

func (px *faultProxy) counts() (accepted, refused int) {
	px.mu.Lock()
	defer px.mu.Unlock()
	return px.accepted, px.refused
}

// faultRoutedPolicy attaches every stream to circuit circ and prints it.
func faultRoutedPolicy(circ string) string {
	return fmt.Sprintf(`CIRC = %q

def policy(s):
    print("routed", s.id, s.target)
    return CIRC

tor.policy(policy, on_error="close")
`, circ)
}

// TestFaultControlConnectionCut: torscript's control connection is cut
// (through a proxy), once with tor reachable at once and once with a gap
// during which curls wait. torscript reconnects, takes over the streams
// that waited, and routes every stream by its policy.
func TestFaultControlConnectionCut(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	restoreLeave(t, "0")
	n := testnet.Shared(t)
	c := dial(t)
	ev := watchEvents(t, c, "STREAM")
	circ := faultCircuit(t)
	px := faultNewProxy(t, n.ControlAddr())
	p := faultStart(ctx, t, faultRoutedPolicy(circ), "--control", px.Addr())
	ports, bodies := faultServers(t, "cut", 6)
	routed := func(port int) {
		t.Helper()
		id := ev.succeededOn(t, port, circ)
		if !strings.Contains(p.stdout.String(), "routed "+id+" ") {
			t.Errorf("the policy did not print stream %s", id)
		}
	}

	faultCurlOK(t, <-faultCurl(ctx, t, ports[0]), bodies[0])
	routed(ports[0])

	// A cut, and tor is there at once. (The guardian holds no connection
	// while the interpreter lives.)
	if got := px.cut(); got != 1 {
		t.Fatalf("cut %d proxied connections, want 1", got)
	}
	p.waitLog(t, "lost the control connection; reconnecting", 10*time.Second)
	p.waitLog(t, "reconnected to tor", 20*time.Second)
	faultCurlOK(t, <-faultCurl(ctx, t, ports[1]), bodies[1])
	routed(ports[1])

	// A cut, and tor unreachable for a while: the curls made meanwhile
	// wait (tor keeps __LeaveStreamsUnattached=1) until torscript is back.
	px.setRefuse(true)
	cutAt := time.Now()
	px.cut()
	p.waitFor(t, &p.stderr, "log", "lost the control connection; reconnecting", 2, 10*time.Second)
	res := faultCurls(ctx, t, ports[2:5])
	for _, port := range ports[2:5] {
		ev.stream(t, port)
	}
	if v := leaveValue(t, c); v != "1" {
		t.Errorf("while torscript is away %s=%s, want 1", leaveKey, v)
	}
	time.Sleep(2500 * time.Millisecond)
	for _, ch := range res {
		select {
		case r := <-ch:
			t.Errorf("%v while torscript was away; want it to wait for the policy", r)
		default:
		}
	}
	px.setRefuse(false)
	reopened := time.Now()
	p.waitFor(t, &p.stderr, "log", "reconnected to tor", 2, 20*time.Second)
	t.Logf("reconnected %v after the cut, %v after the ControlPort was reachable again",
		time.Since(cutAt).Round(time.Millisecond), time.Since(reopened).Round(time.Millisecond))
	p.waitLog(t, "taking over streams that waited while we were away", 5*time.Second)
	for i, ch := range res {
		r := <-ch
		faultCurlOK(t, r, bodies[2+i])
		routed(ports[2+i])
	}
	faultCurlOK(t, <-faultCurl(ctx, t, ports[5]), bodies[5])
	routed(ports[5])
	accepted, refused := px.counts()
	t.Logf("proxy: %d connections accepted, %d turned away", accepted, refused)

	p.finish(t)
}

// TestFaultTorRestarted: the client tor restarts under the running script
// (with a new cookie). torscript reconnects, sets __LeaveStreamsUnattached
// again and routes the curls made afterwards by its policy, which here
// sends every stream to another server.
func TestFaultTorRestarted(t *testing.T) {
	ctx := testCtx(t, 4*time.Minute)
	n := testnet.Shared(t)
	restoreLeave(t, "0")
	t.Cleanup(func() {
		// Leave a healthy client for the other tests.
		if !n.Client.Alive() {
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := n.RestartClient(rctx); err != nil {
				t.Errorf("cleanup: restarting the client: %v", err)
			}
		}
	})
	asked := httpServer(t, "the server asked for")
	mirrors, mirrorBodies := faultServers(t, "restart-mirror", 1)
	p := faultStart(ctx, t, fmt.Sprintf(`def policy(s):
    print("routed", s.id, s.target)
    return tor.redirect("127.0.0.1", %d)

tor.policy(policy)
`, mirrors[0]))
	routedCurl := func(nth int) {
		t.Helper()
		faultCurlOK(t, <-faultCurl(ctx, t, asked), mirrorBodies[0])
		p.waitFor(t, &p.stdout, "output", fmt.Sprintf(":%d\n", asked), nth, 5*time.Second)
	}
	routedCurl(1)

	oldCookie, err := os.ReadFile(n.CookiePath())
	if err != nil {
		t.Fatal(err)
	}
	oldPID := n.Client.PID
	start := time.Now()
	if err := n.RestartClient(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("client restarted (pid %d, was %d) and bootstrapped in %v", n.Client.PID, oldPID, time.Since(start).Round(time.Millisecond))
	if cookie, err := os.ReadFile(n.CookiePath()); err != nil || bytes.Equal(cookie, oldCookie) {
		t.Fatalf("the restarted client's cookie: %v; want a new one", err)
	}
	p.waitLog(t, "lost the control connection; reconnecting", 10*time.Second)
	p.waitLog(t, "reconnected to tor", 30*time.Second)
	c := dial(t)
	deadline := time.Now().Add(10 * time.Second)
	for leaveValue(t, c) != "1" {
		if time.Now().After(deadline) {
			t.Fatalf("%s is not 1 again after torscript reconnected", leaveKey)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if strings.Contains(p.stderr.String(), "after reconnecting") {
		t.Errorf("torscript reports a failure after reconnecting")
	}
	routedCurl(2)
	routedCurl(3)

	p.finish(t)
}

// TestFaultTakeOverOrphans: a controller set __LeaveStreamsUnattached=1
// and died, leaving a curl waiting. torscript takes the stream over, the
// curl completes, and at exit the setting keeps its earlier value, 1.
func TestFaultTakeOverOrphans(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	restoreLeave(t, "0")
	c := dial(t)
	ev := watchEvents(t, c, "STREAM")
	if err := c.SetConf(testCtx(t, 10*time.Second), ctl.ConfEntry{Key: leaveKey, Value: "1"}); err != nil {
		t.Fatal(err)
	}
	ports, bodies := faultServers(t, "orphan", 2)
	orphan := faultCurl(ctx, t, ports[0])
	id := ev.stream(t, ports[0])
	time.Sleep(time.Second)
	select {
	case r := <-orphan:
		t.Fatalf("%v with %s=1 and no controller", r, leaveKey)
	default:
	}

	p := faultStart(ctx, t, `def policy(s):
    print("routed", s.id, s.target)
    return None

tor.policy(policy)
`)
	r := <-orphan
	faultCurlOK(t, r, bodies[0])
	ev.succeededOn(t, ports[0], "")
	log := p.stderr.String()
	if !strings.Contains(log, "streams were waiting") || !strings.Contains(log, "streams=1") {
		t.Errorf("the log does not say that one stream was waiting")
	}
	if !strings.Contains(p.stdout.String(), "routed "+id+" ") {
		t.Errorf("the policy did not see the orphaned stream %s", id)
	}
	faultCurlOK(t, <-faultCurl(ctx, t, ports[1]), bodies[1])
	ev.succeededOn(t, ports[1], "")

	p.termOK(t)
	checkLeftBehind(t, dial(t), "1")
}
