// Package e2e tests ctl against real tor daemons: a private Tor network on
// 127.0.0.1, shared by every test of the package, and single tors launched
// for the authentication tests.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
	"github.com/torscript/torscript/ctl"
)

func TestMain(m *testing.M) {
	// The records torscript keeps of what runs change (runtime/owner) go
	// to a directory of this run, not to the user's state directory.
	if os.Getenv("TORSCRIPT_STATE_DIR") == "" {
		dir, err := os.MkdirTemp("", "torscript-e2e-state-*")
		if err == nil {
			os.Setenv("TORSCRIPT_STATE_DIR", dir)
		}
	}
	// Three client tors: the tests use the first; TestFleet drives all
	// three with one torscript.
	code := testnet.MainWithNetwork(m, testnet.Config{Clients: 3})
	if dir := os.Getenv("TORSCRIPT_STATE_DIR"); strings.Contains(dir, "torscript-e2e-state-") {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// dial opens an authenticated connection to the network's client.
func dial(t *testing.T) *ctl.Conn {
	t.Helper()
	return dialNode(t, testnet.Shared(t).Client)
}

// dialNode opens an authenticated connection to a node of the network.
func dialNode(t *testing.T, nd *testnet.Node) *ctl.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := ctl.Connect(ctx, nd.ControlAddr(), ctl.Credentials{CookieFile: nd.CookiePath()}, ctl.Options{})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// httpServer serves body on 127.0.0.1 and returns its port.
func httpServer(t *testing.T, body string) int {
	t.Helper()
	return serveHTTP(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, body)
	})
}

// serveHTTP serves h on addr until the test ends and returns its port.
func serveHTTP(t *testing.T, addr string, h http.HandlerFunc) int {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// curlResult is what a real curl through the network's SocksPort got.
type curlResult struct {
	url   string
	body  string
	code  int // HTTP status; 0 when none
	exit  int // curl's exit status
	err   error
	start time.Time
	took  time.Duration
}

func (r curlResult) String() string {
	return fmt.Sprintf("curl %s: HTTP %d %q after %v (exit %d, %v)", r.url, r.code, r.body, r.took.Round(time.Millisecond), r.exit, r.err)
}

// curl fetches url through the network's SocksPort with a real curl,
// bounded by a minute.
func curl(ctx context.Context, t *testing.T, url string) <-chan curlResult {
	t.Helper()
	return curlWithin(ctx, t, 60*time.Second, url)
}

// curlWithin fetches url with a real curl through the network's SocksPort
// (the hostname resolved by tor), bounded by maxTime (--max-time), and
// delivers the result when curl is done.
func curlWithin(ctx context.Context, t *testing.T, maxTime time.Duration, url string) <-chan curlResult {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is not installed (apt-get install -y curl)")
	}
	n := testnet.Shared(t)
	ch := make(chan curlResult, 1)
	cmd := exec.CommandContext(ctx, "curl", "-sS", "--max-time", strconv.Itoa(int(maxTime/time.Second)),
		"--socks5-hostname", n.SocksAddr(), "-w", "\n%{http_code}", url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	go func() {
		out, err := cmd.Output()
		r := curlResult{url: url, start: start, took: time.Since(start), exit: exitStatus(err)}
		if err != nil {
			r.err = fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
		}
		s := string(out)
		if i := strings.LastIndexByte(s, '\n'); i >= 0 {
			r.code, _ = strconv.Atoi(s[i+1:])
			s = s[:i]
		}
		r.body = s
		ch <- r
	}()
	return ch
}

// waitEvent returns the first event that match accepts.
func waitEvent(t *testing.T, c *ctl.Conn, d time.Duration, what string, match func(ctl.Event) bool) ctl.Event {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("waiting for %s: connection ended: %v", what, c.Err())
			}
			if match(ev) {
				return ev
			}
			if testing.Verbose() {
				t.Logf("(passed over) %s", strings.TrimSpace(ev.Reply().Raw))
			}
		case <-timer.C:
			t.Fatalf("no %s within %s", what, d)
		}
	}
}

// streamID matches the events of one stream with the given status. Match
// later events by id, not target: after a REMAP tor reports the target as
// ADDRESS.$FINGERPRINT.exit:PORT.
func streamID(id string, status ctl.StreamStatus) func(ctl.Event) bool {
	return func(ev ctl.Event) bool {
		s, ok := ev.(*ctl.StreamEvent)
		return ok && s.ID == id && s.Status == status
	}
}

// streamTo matches STREAM events for a target port with the given status.
func streamTo(port int, status ctl.StreamStatus) func(ctl.Event) bool {
	return func(ev ctl.Event) bool {
		s, ok := ev.(*ctl.StreamEvent)
		return ok && s.TargetPort == port && s.TargetHost == "127.0.0.1" && (status == "" || s.Status == status)
	}
}

// leaveUnattached sets __LeaveStreamsUnattached=1 until the test ends.
func leaveUnattached(t *testing.T, c *ctl.Conn) {
	t.Helper()
	ctx := testCtx(t, 10*time.Second)
	if err := c.SetConf(ctx, ctl.ConfEntry{Key: "__LeaveStreamsUnattached", Value: "1"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.ResetConf(ctx, ctl.ConfEntry{Key: "__LeaveStreamsUnattached"}); err != nil {
			t.Errorf("restoring __LeaveStreamsUnattached: %v", err)
		}
	})
}

// byHand dials the network's client for a test that attaches streams
// itself: tor leaves new streams unattached until the test ends. The
// context ends 90 s from now.
func byHand(t *testing.T) (*ctl.Conn, context.Context) {
	t.Helper()
	c := dial(t)
	ctx := testCtx(t, 90*time.Second)
	leaveUnattached(t, c)
	return c, ctx
}

// curlStream starts a curl of the server on 127.0.0.1:port and returns
// it with tor's STREAM NEW for it, which c must be subscribed to.
func curlStream(ctx context.Context, t *testing.T, c *ctl.Conn, port int) (<-chan curlResult, *ctl.StreamEvent) {
	t.Helper()
	res := curl(ctx, t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	s := waitEvent(t, c, 30*time.Second, "STREAM NEW", streamTo(port, ctl.StreamNew)).(*ctl.StreamEvent)
	return res, s
}

// buildCircuit builds a three-hop circuit through relays to an exit of the
// network and waits for it to be BUILT.
func buildCircuit(t *testing.T, c *ctl.Conn) (id string, path []string) {
	t.Helper()
	n := testnet.Shared(t)
	rel, ex := n.Relays(), n.Exits()
	path = []string{"$" + rel[0].Fingerprint, "$" + rel[1].Fingerprint, "$" + ex[0].Fingerprint}
	ctx := testCtx(t, 60*time.Second)
	id, err := c.ExtendCircuit(ctx, "0", path, "")
	if err != nil {
		t.Fatalf("EXTENDCIRCUIT: %v", err)
	}
	waitBuilt(ctx, t, c, id)
	return id, path
}

// waitBuilt waits until circuit id is BUILT, and fails the test if it
// fails or closes first.
func waitBuilt(ctx context.Context, t *testing.T, c *ctl.Conn, id string) {
	t.Helper()
	for {
		circs, err := c.Circuits(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ci := range circs {
			if ci.ID != id {
				continue
			}
			switch ci.Status {
			case ctl.CircBuilt:
				return
			case ctl.CircFailed, ctl.CircClosed:
				t.Fatalf("circuit %s %s: %s", id, ci.Status, ci.Reason)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("circuit %s not BUILT in time", id)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestAuthMethods(t *testing.T) {
	testnet.SkipWithoutTor(t)
	ctx := testCtx(t, 2*time.Minute)
	launch := func(auth, pw string) *testnet.Process {
		p, err := testnet.Launch(ctx, testnet.LaunchConfig{Auth: auth, Password: pw, DisableNetwork: true})
		if err != nil {
			t.Fatalf("launch tor with auth %s: %v", auth, err)
		}
		t.Cleanup(func() { p.Stop() })
		return p
	}
	try := func(p *testnet.Process, cred ctl.Credentials) (*ctl.ProtocolInfo, error) {
		c, pi, err := ctl.Connect(ctx, p.ControlAddr, cred, ctl.Options{})
		if err != nil {
			return pi, err
		}
		defer c.Close()
		// Authenticated: a command that needs it works.
		if v, err := c.GetInfoOne(ctx, "version"); err != nil || v == "" {
			return pi, fmt.Errorf("GETINFO version after auth: %q, %v", v, err)
		}
		return pi, nil
	}
	password := func(s string) func() (string, error) { return func() (string, error) { return s, nil } }

	t.Run("NULL", func(t *testing.T) {
		p := launch("none", "")
		pi, err := try(p, ctl.Credentials{})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(pi.AuthMethods, ",") != "NULL" {
			t.Errorf("methods %v, want NULL", pi.AuthMethods)
		}
	})

	cookieTor := launch("cookie", "")
	t.Run("SAFECOOKIE", func(t *testing.T) {
		pi, err := try(cookieTor, ctl.Credentials{})
		if err != nil {
			t.Fatal(err)
		}
		if pi.CookieFile != cookieTor.CookiePath {
			t.Errorf("COOKIEFILE %q, want %q", pi.CookieFile, cookieTor.CookiePath)
		}
		if !strings.Contains(strings.Join(pi.AuthMethods, ","), "SAFECOOKIE") {
			t.Errorf("methods %v lack SAFECOOKIE", pi.AuthMethods)
		}
	})
	t.Run("COOKIE", func(t *testing.T) {
		if _, err := try(cookieTor, ctl.Credentials{Method: ctl.AuthCookie}); err != nil {
			t.Fatal(err)
		}
	})
	wrongCookie := t.TempDir() + "/wrong_cookie"
	if err := os.WriteFile(wrongCookie, []byte(strings.Repeat("x", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("SAFECOOKIE wrong cookie", func(t *testing.T) {
		_, err := try(cookieTor, ctl.Credentials{CookieFile: wrongCookie})
		var ae *ctl.AuthError
		if !errors.As(err, &ae) || !strings.Contains(err.Error(), "server hash does not match") {
			t.Fatalf("got %v, want an AuthError saying the server hash does not match", err)
		}
		if !strings.Contains(err.Error(), "tor offers COOKIE, SAFECOOKIE") {
			t.Errorf("error does not name the methods tor offers: %v", err)
		}
	})
	t.Run("COOKIE wrong cookie", func(t *testing.T) {
		_, err := try(cookieTor, ctl.Credentials{CookieFile: wrongCookie, Method: ctl.AuthCookie})
		if ctl.ErrorCode(err) != ctl.CodeBadAuth {
			t.Fatalf("got %v, want tor's 515", err)
		}
	})
	t.Run("cookie file missing", func(t *testing.T) {
		_, err := try(cookieTor, ctl.Credentials{CookieFile: t.TempDir() + "/nope"})
		if err == nil || !strings.Contains(err.Error(), "cannot read cookie file") {
			t.Fatalf("got %v, want a cookie file error", err)
		}
	})

	pwTor := launch("password", "s3cret \"pass\" word")
	t.Run("HASHEDPASSWORD", func(t *testing.T) {
		pi, err := try(pwTor, ctl.Credentials{Password: password("s3cret \"pass\" word")})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(pi.AuthMethods, ",") != "HASHEDPASSWORD" {
			t.Errorf("methods %v, want HASHEDPASSWORD", pi.AuthMethods)
		}
	})
	t.Run("HASHEDPASSWORD wrong password", func(t *testing.T) {
		_, err := try(pwTor, ctl.Credentials{Password: password("guess")})
		if ctl.ErrorCode(err) != ctl.CodeBadAuth || !strings.Contains(err.Error(), "wrong password") {
			t.Fatalf("got %v, want 515 and a wrong-password hint", err)
		}
	})
	t.Run("HASHEDPASSWORD no password", func(t *testing.T) {
		_, err := try(pwTor, ctl.Credentials{})
		if err == nil || !strings.Contains(err.Error(), "--password-file") {
			t.Fatalf("got %v, want advice on giving a password", err)
		}
	})
}

func TestConfRoundTrip(t *testing.T) {
	c := dial(t)
	ctx := testCtx(t, 30*time.Second)

	v, err := c.GetInfoOne(ctx, "version")
	if err != nil || !strings.HasPrefix(v, "0.") {
		t.Fatalf("GETINFO version = %q, %v", v, err)
	}
	info, err := c.GetInfo(ctx, "version", "config-file", "net/listeners/socks")
	if err != nil {
		t.Fatal(err)
	}
	if info["version"] != v || info["net/listeners/socks"] == "" {
		t.Errorf("GETINFO of several keys: %q", info)
	}

	before, err := c.GetConf(ctx, "ContactInfo", "MaxCircuitDirtiness")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.ResetConf(ctx, ctl.ConfEntry{Key: "ContactInfo"}, ctl.ConfEntry{Key: "MaxCircuitDirtiness"})
	})

	odd := `Alice "the tester" \ <alice@example.test>  two  spaces`
	if err := c.SetConf(ctx,
		ctl.ConfEntry{Key: "ContactInfo", Value: odd},
		ctl.ConfEntry{Key: "MaxCircuitDirtiness", Value: "1234"}); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetConf(ctx, "ContactInfo", "MaxCircuitDirtiness")
	if err != nil {
		t.Fatal(err)
	}
	if vs := got.Values("ContactInfo"); len(vs) != 1 || vs[0] != odd {
		t.Errorf("ContactInfo after SETCONF = %q, want %q", vs, odd)
	}
	if vs := got.Values("MaxCircuitDirtiness"); len(vs) != 1 || vs[0] != "1234" {
		t.Errorf("MaxCircuitDirtiness after SETCONF = %q", vs)
	}

	if err := c.ResetConf(ctx, ctl.ConfEntry{Key: "MaxCircuitDirtiness"}); err != nil {
		t.Fatal(err)
	}
	got, err = c.GetConf(ctx, "MaxCircuitDirtiness")
	if err != nil {
		t.Fatal(err)
	}
	if a, b := got.Values("MaxCircuitDirtiness"), before.Values("MaxCircuitDirtiness"); strings.Join(a, ",") != strings.Join(b, ",") {
		t.Errorf("MaxCircuitDirtiness after RESETCONF = %q, want the default %q", a, b)
	}

	// An unknown key is tor's 552, with its message.
	_, err = c.GetConf(ctx, "NoSuchOption")
	if ctl.ErrorCode(err) != 552 || !strings.Contains(err.Error(), "NoSuchOption") {
		t.Errorf("GETCONF NoSuchOption: %v, want 552 naming the key", err)
	}
	// A bad value is 553 (or 513 for an unknown one), and tor keeps the old value.
	err = c.SetConf(ctx, ctl.ConfEntry{Key: "MaxCircuitDirtiness", Value: "soon"})
	if code := ctl.ErrorCode(err); code != 553 && code != 513 {
		t.Errorf("SETCONF MaxCircuitDirtiness=soon: %v, want 553", err)
	}
}

// TestBigDataBlockFromTor: a data block of tor's over BigData (64 KiB),
// which ctl reads straight into memory it maps ahead (ctl/populate.go),
// arrives whole, twice (the second read sized by the first). Tor's
// config-text is made that big with a ContactInfo of 130 KB.
func TestBigDataBlockFromTor(t *testing.T) {
	c := dial(t)
	ctx := testCtx(t, 30*time.Second)
	before, err := c.GetConf(ctx, "ContactInfo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if vs := before.Values("ContactInfo"); len(vs) == 1 && vs[0] != "" {
			c.SetConf(ctx, ctl.ConfEntry{Key: "ContactInfo", Value: vs[0]})
		} else {
			c.ResetConf(ctx, ctl.ConfEntry{Key: "ContactInfo"})
		}
	})
	var b strings.Builder
	for i := 0; b.Len() < 130_000; i++ {
		fmt.Fprintf(&b, "operator-%d ", i)
	}
	contact := strings.TrimSpace(b.String())
	if err := c.SetConf(ctx, ctl.ConfEntry{Key: "ContactInfo", Value: contact}); err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 2; round++ {
		text, err := c.GetInfoOne(ctx, "config-text")
		if err != nil {
			t.Fatal(err)
		}
		if len(text) < 130_000 || !slices.Contains(strings.Split(text, "\n"), "ContactInfo "+contact) {
			t.Fatalf("read %d: config-text of %d bytes lacks the ContactInfo line of %d", round, len(text), len(contact))
		}
	}
}

func TestSetEventsAll(t *testing.T) {
	c := dial(t)
	ctx := testCtx(t, 30*time.Second)
	names, err := c.GetInfoOne(ctx, "events/names")
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Fields(names)
	if len(all) < 30 {
		t.Fatalf("events/names lists only %d names: %q", len(all), names)
	}
	if err := c.SetEvents(ctx, all...); err != nil {
		t.Fatalf("SETEVENTS with every name tor lists: %v", err)
	}
	// Each listed name is also one ctl knows.
	known := map[string]bool{}
	for _, n := range ctl.EventTypes() {
		known[n] = true
	}
	for _, n := range all {
		if !known[n] {
			t.Errorf("tor lists event %s, which ctl has no type for", n)
		}
	}
	// Something arrives (BW comes every second) and parses as a typed event.
	ev := waitEvent(t, c, 10*time.Second, "a BW event", func(ev ctl.Event) bool { return ev.EventType() == "BW" })
	if _, ok := ev.(*ctl.BWEvent); !ok {
		t.Errorf("BW event parsed as %T: %q", ev, ev.Reply().Raw)
	}
	if err := c.SetEvents(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.SetEvents(ctx, "NOSUCHEVENT"); ctl.ErrorCode(err) != 552 {
		t.Errorf("SETEVENTS NOSUCHEVENT: %v, want 552", err)
	}
}

func TestStreamEvents(t *testing.T) {
	c := dial(t)
	ctx := testCtx(t, 90*time.Second)
	port := httpServer(t, "hello through tor")
	if err := c.SetEvents(ctx, "STREAM"); err != nil {
		t.Fatal(err)
	}
	res := curl(ctx, t, fmt.Sprintf("http://127.0.0.1:%d/", port))

	newEv := waitEvent(t, c, 60*time.Second, "STREAM NEW", streamTo(port, ctl.StreamNew)).(*ctl.StreamEvent)
	if newEv.CircuitID != "0" || newEv.Purpose != "USER" || !strings.HasPrefix(newEv.SourceAddr, "127.0.0.1:") || newEv.ClientProtocol != "SOCKS5" {
		t.Errorf("STREAM NEW parsed as %+v from %q", newEv.Stream, newEv.Reply().Raw)
	}
	okEv := waitEvent(t, c, 60*time.Second, "STREAM SUCCEEDED", streamID(newEv.ID, ctl.StreamSucceeded)).(*ctl.StreamEvent)
	if okEv.CircuitID == "0" || okEv.CircuitID == "" || okEv.TargetPort != port {
		t.Errorf("STREAM SUCCEEDED %+v, want stream %s on a circuit", okEv.Stream, newEv.ID)
	}
	r := <-res
	if r.err != nil || r.body != "hello through tor" {
		t.Fatalf("curl: %q, %v", r.body, r.err)
	}
	closed := waitEvent(t, c, 30*time.Second, "STREAM CLOSED", streamID(newEv.ID, ctl.StreamClosed)).(*ctl.StreamEvent)
	if closed.CircuitID != okEv.CircuitID || closed.Reason != "DONE" {
		t.Errorf("STREAM CLOSED %+v", closed.Stream)
	}
}

func TestExtendCircuitEvents(t *testing.T) {
	c := dial(t)
	ctx := testCtx(t, 60*time.Second)
	if err := c.SetEvents(ctx, "CIRC"); err != nil {
		t.Fatal(err)
	}
	n := testnet.Shared(t)
	path := []string{"$" + n.Relays()[0].Fingerprint, "$" + n.Relays()[1].Fingerprint, "$" + n.Exits()[1].Fingerprint}
	id, err := c.ExtendCircuit(ctx, "0", path, "general")
	if err != nil {
		t.Fatal(err)
	}
	circ := func(st ctl.CircStatus) func(ctl.Event) bool {
		return func(ev ctl.Event) bool {
			ce, ok := ev.(*ctl.CircEvent)
			return ok && ce.ID == id && ce.Status == st
		}
	}
	waitEvent(t, c, 30*time.Second, "CIRC LAUNCHED", circ(ctl.CircLaunched))
	ext := waitEvent(t, c, 30*time.Second, "CIRC EXTENDED", circ(ctl.CircExtended)).(*ctl.CircEvent)
	if len(ext.Path) == 0 || "$"+ext.Path[0].Fingerprint != path[0] {
		t.Errorf("first EXTENDED path %v, want it to start at %s", ext.Path, path[0])
	}
	built := waitEvent(t, c, 30*time.Second, "CIRC BUILT", circ(ctl.CircBuilt)).(*ctl.CircEvent)
	if len(built.Path) != 3 {
		t.Fatalf("BUILT path %v", built.Path)
	}
	for i, h := range built.Path {
		if "$"+h.Fingerprint != path[i] || h.Nickname == "" {
			t.Errorf("hop %d = %+v, want %s with a nickname", i, h, path[i])
		}
	}
	if built.Purpose != "GENERAL" || built.TimeCreated.IsZero() {
		t.Errorf("BUILT purpose %q time %v", built.Purpose, built.TimeCreated)
	}
	if err := c.CloseCircuit(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	cl := waitEvent(t, c, 30*time.Second, "CIRC CLOSED", circ(ctl.CircClosed)).(*ctl.CircEvent)
	if cl.Reason != "REQUESTED" {
		t.Errorf("CLOSED reason %q, want REQUESTED", cl.Reason)
	}
}

func TestAttachStream(t *testing.T) {
	c, ctx := byHand(t)
	circ, _ := buildCircuit(t, c)
	port := httpServer(t, "attached by hand")
	if err := c.SetEvents(ctx, "STREAM"); err != nil {
		t.Fatal(err)
	}
	res, s := curlStream(ctx, t, c, port)
	waitEvent(t, c, 10*time.Second, "STREAM CONTROLLER_WAIT", streamID(s.ID, ctl.StreamControllerWait))
	if err := c.AttachStream(ctx, s.ID, circ, 0); err != nil {
		t.Fatalf("ATTACHSTREAM %s %s: %v", s.ID, circ, err)
	}
	ok := waitEvent(t, c, 30*time.Second, "STREAM SUCCEEDED", streamID(s.ID, ctl.StreamSucceeded)).(*ctl.StreamEvent)
	if ok.CircuitID != circ {
		t.Errorf("stream %s succeeded on circuit %s, want %s", ok.ID, ok.CircuitID, circ)
	}
	if r := <-res; r.err != nil || r.body != "attached by hand" {
		t.Fatalf("curl: %q, %v", r.body, r.err)
	}
}

func TestRedirectStream(t *testing.T) {
	c, ctx := byHand(t)
	circ, _ := buildCircuit(t, c)
	asked := httpServer(t, "the server asked for")
	mirror := httpServer(t, "the mirror")
	if err := c.SetEvents(ctx, "STREAM"); err != nil {
		t.Fatal(err)
	}
	res, s := curlStream(ctx, t, c, asked)
	if err := c.RedirectStream(ctx, s.ID, "127.0.0.1", mirror); err != nil {
		t.Fatalf("REDIRECTSTREAM: %v", err)
	}
	if err := c.AttachStream(ctx, s.ID, circ, 0); err != nil {
		t.Fatalf("ATTACHSTREAM: %v", err)
	}
	if r := <-res; r.err != nil || r.body != "the mirror" {
		t.Fatalf("curl after REDIRECTSTREAM: %q, %v; want the mirror's body", r.body, r.err)
	}

	// Without a port, the stream keeps its port and changes its address.
	res = curl(ctx, t, fmt.Sprintf("http://127.0.0.2:%d/", mirror))
	s2 := waitEvent(t, c, 30*time.Second, "STREAM NEW for 127.0.0.2", func(ev ctl.Event) bool {
		s, ok := ev.(*ctl.StreamEvent)
		return ok && s.Status == ctl.StreamNew && s.TargetHost == "127.0.0.2"
	}).(*ctl.StreamEvent)
	if err := c.RedirectStream(ctx, s2.ID, "127.0.0.1", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.AttachStream(ctx, s2.ID, circ, 0); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.err != nil || r.body != "the mirror" {
		t.Fatalf("curl after REDIRECTSTREAM without port: %q, %v", r.body, r.err)
	}
}

func TestMapAddress(t *testing.T) {
	c := dial(t)
	ctx := testCtx(t, 90*time.Second)
	port := httpServer(t, "made-up name")
	name := "made-up.torscript.test"
	got, err := c.MapAddress(ctx, ctl.AddrMap{From: name, To: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].From != name || got[0].To != "127.0.0.1" {
		t.Fatalf("MAPADDRESS reply %+v", got)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.MapAddress(ctx, ctl.AddrMap{From: name, To: name})
	})
	maps, err := c.AddressMappings(ctx, "control")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range maps {
		found = found || (m.From == name && m.To == "127.0.0.1")
	}
	if !found {
		t.Errorf("address-mappings/control %+v lacks %s", maps, name)
	}
	if r := <-curl(ctx, t, fmt.Sprintf("http://%s:%d/", name, port)); r.err != nil || r.body != "made-up name" {
		t.Fatalf("curl of a mapped name: %q, %v", r.body, r.err)
	}

	// The null addresses ask tor for a virtual address of its own.
	virt, err := c.MapAddress(ctx,
		ctl.AddrMap{From: "0.0.0.0", To: "virtual4.torscript.test"},
		ctl.AddrMap{From: "::0", To: "virtual6.torscript.test"},
		ctl.AddrMap{From: ".", To: "virtualhost.torscript.test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(virt) != 3 {
		t.Fatalf("null-address MAPADDRESS reply %+v", virt)
	}
	if ip := net.ParseIP(virt[0].From); ip == nil || ip.To4() == nil {
		t.Errorf("0.0.0.0 mapped to %q, want a virtual IPv4 address", virt[0].From)
	}
	if ip := net.ParseIP(strings.Trim(virt[1].From, "[]")); ip == nil || ip.To4() != nil {
		t.Errorf("::0 mapped to %q, want a virtual IPv6 address", virt[1].From)
	}
	if !strings.HasSuffix(virt[2].From, ".virtual") {
		t.Errorf(". mapped to %q, want a .virtual hostname", virt[2].From)
	}
	for _, v := range virt {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c.MapAddress(ctx, ctl.AddrMap{From: v.From, To: v.From})
		})
	}
}

func TestCloseStream(t *testing.T) {
	c, ctx := byHand(t)
	port := httpServer(t, "never served")
	if err := c.SetEvents(ctx, "STREAM"); err != nil {
		t.Fatal(err)
	}
	res, s := curlStream(ctx, t, c, port)
	reason, err := ctl.ParseRelayEndReason("EXITPOLICY")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.CloseStream(ctx, s.ID, reason); err != nil {
		t.Fatalf("CLOSESTREAM: %v", err)
	}
	end := waitEvent(t, c, 10*time.Second, "STREAM FAILED or CLOSED", func(ev ctl.Event) bool {
		se, ok := ev.(*ctl.StreamEvent)
		return ok && se.ID == s.ID && (se.Status == ctl.StreamFailed || se.Status == ctl.StreamClosed)
	}).(*ctl.StreamEvent)
	if end.Reason != "EXITPOLICY" {
		t.Errorf("stream ended with reason %q, want EXITPOLICY (%q)", end.Reason, end.Reply().Raw)
	}
	r := <-res
	if r.err == nil {
		t.Fatalf("curl succeeded with %q after CLOSESTREAM", r.body)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("curl took %s to fail after CLOSESTREAM", d)
	}
	// The stream is gone now: tor says 552.
	if err := c.CloseStream(ctx, s.ID, reason); ctl.ErrorCode(err) != 552 {
		t.Errorf("second CLOSESTREAM: %v, want 552", err)
	}
}

func TestErrorReplies(t *testing.T) {
	c := dial(t)
	ctx := testCtx(t, 90*time.Second)

	err := c.AttachStream(ctx, "99999", "0", 0)
	var te *ctl.Error
	if !errors.As(err, &te) || te.Code != 552 || !strings.Contains(te.Msg, "99999") {
		t.Errorf("ATTACHSTREAM of an unknown stream: %v, want 552 naming it", err)
	}
	if _, err := c.GetInfoOne(ctx, "no-such-key"); ctl.ErrorCode(err) != 552 {
		t.Errorf("GETINFO no-such-key: %v, want 552", err)
	}
	if _, err := c.Raw(ctx, "CLOSESTREAM 1"); ctl.ErrorCode(err) != 512 {
		t.Errorf("CLOSESTREAM without a reason: %v, want 512", err)
	}
	if _, err := c.Raw(ctx, "EXTENDCIRCUIT"); ctl.ErrorCode(err) != 512 {
		t.Errorf("EXTENDCIRCUIT without arguments: %v, want 512", err)
	}
	if _, err := c.Raw(ctx, "NOSUCHCOMMAND"); ctl.ErrorCode(err) != 510 {
		t.Errorf("NOSUCHCOMMAND: %v, want 510", err)
	}

	// 551: a stream can't be attached to a one-hop circuit.
	leaveUnattached(t, c)
	n := testnet.Shared(t)
	onehop, err := c.ExtendCircuit(ctx, "0", []string{"$" + n.Relays()[2].Fingerprint}, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseCircuit(context.Background(), onehop, false) })
	port := httpServer(t, "x")
	if err := c.SetEvents(ctx, "STREAM", "CIRC"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, c, 30*time.Second, "the one-hop circuit BUILT", func(ev ctl.Event) bool {
		ce, ok := ev.(*ctl.CircEvent)
		return ok && ce.ID == onehop && ce.Status == ctl.CircBuilt
	})
	res, s := curlStream(ctx, t, c, port)
	err = c.AttachStream(ctx, s.ID, onehop, 0)
	if ctl.ErrorCode(err) != 551 {
		t.Errorf("ATTACHSTREAM to a one-hop circuit: %v, want 551", err)
	}
	// Hand the stream back to tor so the curl is not left waiting.
	if err := c.CloseStream(ctx, s.ID, ctl.RelayEndMisc); err != nil {
		t.Errorf("CLOSESTREAM: %v", err)
	}
	<-res
}

func TestUnsafeArgumentsNeverSent(t *testing.T) {
	c := dial(t)
	ctx := testCtx(t, 10*time.Second)
	err := c.SetConf(ctx, ctl.ConfEntry{Key: "ContactInfo", Value: "x\r\nSIGNAL HALT"})
	if !errors.Is(err, ctl.ErrUnsafeArgument) {
		t.Fatalf("SETCONF with CRLF in the value: %v, want ErrUnsafeArgument", err)
	}
	// Tor is still up and the connection still in step.
	if v, err := c.GetInfoOne(ctx, "version"); err != nil || v == "" {
		t.Fatalf("after the refused command: %q, %v", v, err)
	}
}

func TestAddDelOnion(t *testing.T) {
	c := dial(t)
	ctx := testCtx(t, 30*time.Second)
	port := httpServer(t, "onion")
	svc, err := c.AddOnion(ctx, ctl.AddOnionOptions{Ports: []ctl.OnionPort{{Virt: 80, Target: fmt.Sprintf("127.0.0.1:%d", port)}}})
	if err != nil {
		t.Fatalf("ADD_ONION: %v", err)
	}
	if len(svc.ServiceID) != 56 || !strings.HasPrefix(svc.PrivateKey, "ED25519-V3:") {
		t.Errorf("ADD_ONION gave %+v", svc)
	}
	onions, err := c.GetInfoOne(ctx, "onions/current")
	if err != nil || !strings.Contains(onions, svc.ServiceID) {
		t.Errorf("onions/current = %q, %v; want %s", onions, err, svc.ServiceID)
	}
	if err := c.DelOnion(ctx, svc.ServiceID); err != nil {
		t.Fatalf("DEL_ONION: %v", err)
	}
	if err := c.DelOnion(ctx, svc.ServiceID); ctl.ErrorCode(err) != 552 {
		t.Errorf("second DEL_ONION: %v, want 552", err)
	}
}

// RESOLVE answers at once and reports the lookup in an ADDRMAP event; the
// exits of the private network have no DNS, so the answer is an error.
func TestResolve(t *testing.T) {
	c := dial(t)
	ctx := testCtx(t, 60*time.Second)
	if err := c.SetEvents(ctx, "ADDRMAP"); err != nil {
		t.Fatal(err)
	}
	if err := c.Resolve(ctx, []string{"127.0.0.1"}, true); err != nil {
		t.Fatalf("RESOLVE mode=reverse: %v", err)
	}
	ev := waitEvent(t, c, 45*time.Second, "ADDRMAP for the reverse lookup", func(ev ctl.Event) bool {
		a, ok := ev.(*ctl.AddrMapEvent)
		return ok && strings.Contains(a.Address, "127.0.0.1")
	}).(*ctl.AddrMapEvent)
	if ev.NewAddress == "" {
		t.Errorf("ADDRMAP %+v", ev)
	}
	t.Logf("%s", strings.TrimSpace(ev.Reply().Raw))
}

// The control connection works over tor's ControlSocket as over TCP.
func TestUnixControlSocket(t *testing.T) {
	testnet.SkipWithoutTor(t)
	ctx := testCtx(t, 60*time.Second)
	dir, err := os.MkdirTemp("", "ts-unix-") // short: socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := dir + "/control"
	p, err := testnet.Launch(ctx, testnet.LaunchConfig{Auth: "cookie", DisableNetwork: true, Torrc: []string{"ControlSocket " + sock}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	for _, addr := range []string{"unix:" + sock, sock} {
		c, _, err := ctl.Connect(ctx, addr, ctl.Credentials{CookieFile: p.CookiePath}, ctl.Options{})
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		v, err := c.GetInfoOne(ctx, "version")
		c.Close()
		if err != nil || !strings.HasPrefix(v, "0.") {
			t.Errorf("%s: GETINFO version = %q, %v", addr, v, err)
		}
	}
}
