package testnet

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/torscript/torscript/ctl"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestMain starts one network for the package (the tests share it), and
// checks afterwards that Down stopped every tor it started.
func TestMain(m *testing.M) {
	code := MainWithNetwork(m, Config{})
	if n := lastNetwork; n != nil {
		for _, nd := range n.Nodes {
			if pidAlive(nd.PID) {
				fmt.Fprintf(os.Stderr, "FAIL: Down left %s (pid %d) running\n", nd.Name, nd.PID)
				code = 1
			}
		}
		if _, err := os.Stat(n.Dir); !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "FAIL: Down did not remove %s: %v\n", n.Dir, err)
			code = 1
		}
	}
	os.Exit(code)
}

// ctlConn is a minimal control-port client.
type ctlConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialCtl(t *testing.T, addr string) *ctlConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &ctlConn{c: c, r: bufio.NewReader(c)}
}

// do sends line and returns the reply's status code and lines (without
// the status prefixes).
func (c *ctlConn) do(line string) (int, []string, error) {
	if _, err := io.WriteString(c.c, line+"\r\n"); err != nil {
		return 0, nil, err
	}
	var lines []string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return 0, lines, err
		}
		l = strings.TrimRight(l, "\r\n")
		if len(l) < 4 {
			return 0, lines, fmt.Errorf("short reply line %q", l)
		}
		code, _ := strconv.Atoi(l[:3])
		lines = append(lines, l[4:])
		switch l[3] {
		case ' ':
			return code, lines, nil
		case '+': // data until "."
			for {
				d, err := c.r.ReadString('\n')
				if err != nil {
					return 0, lines, err
				}
				if d = strings.TrimRight(d, "\r\n"); d == "." {
					break
				}
				lines = append(lines, d)
			}
		}
	}
}

func (c *ctlConn) mustOK(t *testing.T, line string) []string {
	t.Helper()
	code, lines, err := c.do(line)
	if err != nil || code != 250 {
		t.Fatalf("%s: %d %q %v", strings.Fields(line)[0], code, lines, err)
	}
	return lines
}

func cookieAuth(t *testing.T, c *ctlConn, path string) {
	t.Helper()
	cookie, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cookie) != 32 {
		t.Fatalf("cookie %s has %d bytes, want 32", path, len(cookie))
	}
	c.mustOK(t, "AUTHENTICATE "+hex.EncodeToString(cookie))
}

// authMethods returns the METHODS and COOKIEFILE of a PROTOCOLINFO reply.
func authMethods(t *testing.T, c *ctlConn) (methods, cookieFile string) {
	t.Helper()
	for _, l := range c.mustOK(t, "PROTOCOLINFO 1") {
		if rest, ok := strings.CutPrefix(l, "AUTH "); ok {
			for _, f := range strings.Fields(rest) {
				if v, ok := strings.CutPrefix(f, "METHODS="); ok {
					methods = v
				}
				if v, ok := strings.CutPrefix(f, "COOKIEFILE="); ok {
					cookieFile, _ = strconv.Unquote(v)
				}
			}
		}
	}
	return methods, cookieFile
}

func TestBootstrapped(t *testing.T) {
	t.Parallel()
	n := Shared(t)
	if !n.Ready || !n.IsUp() {
		t.Fatalf("network not up: ready=%v status=%+v", n.Ready, n.Status())
	}
	msg, pct := bootstrapLine(n.Client.LogPath())
	if pct != 100 {
		t.Fatalf("client log: last bootstrap message %q", msg)
	}
	c := dialCtl(t, n.ControlAddr())
	cookieAuth(t, c, n.CookiePath())
	if got := c.mustOK(t, "GETINFO status/bootstrap-phase"); !strings.Contains(got[0], "PROGRESS=100") {
		t.Errorf("bootstrap-phase: %q", got)
	}
	if got := c.mustOK(t, "GETINFO status/circuit-established"); got[0] != "status/circuit-established=1" {
		t.Errorf("circuit-established: %q", got)
	}
	t.Logf("bootstrapped in %v; %d tor processes use %.1f MB RSS", n.BootstrapTime, len(n.Nodes), float64(n.RSSKB())/1024)
}

func TestTopology(t *testing.T) {
	t.Parallel()
	n := Shared(t)
	if a, r, e := len(n.Authorities()), len(n.Relays()), len(n.Exits()); a != 3 || r != 3 || e != 2 {
		t.Errorf("got %d authorities, %d relays, %d exits; want 3, 3, 2", a, r, e)
	}
	if n.Client == nil || n.Client.Role != RoleClient || n.Client.SocksPort == 0 || n.Client.ControlPort == 0 {
		t.Fatalf("bad client %+v", n.Client)
	}
	if n.Onion == nil || n.Onion.Role != RoleOnion || n.Onion.ORPort != 0 || n.Onion.SocksPort != 0 || len(n.Nodes) != 10 {
		t.Fatalf("bad onion node %+v (%d nodes)", n.Onion, len(n.Nodes))
	}
	// Every relay is in the consensus the client uses, with Running.
	if got, want := runningRelays(filepath.Join(n.Client.Dir, "cached-consensus")), len(n.Nodes)-2; got < want {
		t.Errorf("client consensus lists %d running relays, want %d", got, want)
	}
	// Only the exits have the Exit flag: a script or pool that trusts the
	// flag must not take a relay that refuses to exit for an exit.
	doc, err := os.ReadFile(filepath.Join(n.Client.Dir, "cached-consensus"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ctl.ParseConsensusEntries(string(doc))
	if err != nil || len(entries) == 0 {
		t.Fatalf("the client's consensus: %d entries, %v", len(entries), err)
	}
	var flagged, exits []string
	for _, e := range entries {
		if e.HasFlag("Exit") {
			flagged = append(flagged, e.Nickname)
		}
	}
	for _, x := range n.Exits() {
		exits = append(exits, x.Name)
	}
	slices.Sort(flagged)
	slices.Sort(exits)
	if !slices.Equal(flagged, exits) {
		t.Errorf("relays with the Exit flag: %v, want the exits %v", flagged, exits)
	}
	ports := map[int]string{}
	for _, nd := range n.Nodes {
		if nd.Role != RoleClient && nd.Role != RoleOnion && len(nd.Fingerprint) != 40 {
			t.Errorf("%s: fingerprint %q", nd.Name, nd.Fingerprint)
		}
		for _, p := range []int{nd.ORPort, nd.DirPort, nd.ControlPort, nd.SocksPort} {
			if p == 0 {
				continue
			}
			if other, dup := ports[p]; dup {
				t.Errorf("port %d used by %s and %s", p, other, nd.Name)
			}
			ports[p] = nd.Name
		}
	}
	if len(n.DirAuthorities) != 3 || !strings.HasPrefix(n.DirAuthorities[0], "DirAuthority auth1 orport=") ||
		!strings.Contains(n.DirAuthorities[0], " no-v2 v3ident=") {
		t.Errorf("DirAuthorities: %q", n.DirAuthorities)
	}
}

func TestLoadStatusEnv(t *testing.T) {
	t.Parallel()
	n := Shared(t)
	l, err := Load(n.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Nodes) != len(n.Nodes) || l.ControlAddr() != n.ControlAddr() || l.SocksAddr() != n.SocksAddr() || !l.Ready {
		t.Fatalf("Load: got %+v, want %+v", l, n)
	}
	for _, s := range l.Status() {
		if !s.Alive || s.PID <= 0 || s.RSSKB <= 0 {
			t.Errorf("status %+v", s)
		}
	}
	want := []string{
		"TORSCRIPT_CONTROL=" + n.ControlAddr(),
		"TORSCRIPT_COOKIE=" + filepath.Join(n.Client.Dir, "control_auth_cookie"),
		"TORSCRIPT_SOCKS=" + n.SocksAddr(),
		"TORSCRIPT_ONION_URL=http://" + n.OnionAddress + "/",
	}
	if l.OnionAddr() != n.OnionAddr() || len(l.OnionAddr()) != 56+len(".onion") || l.Onion == nil {
		t.Errorf("Load: onion address %q, node %v; want %q", l.OnionAddr(), l.Onion, n.OnionAddr())
	}
	if got := l.Env(); !slices.Equal(got, want) {
		t.Errorf("Env: got %q, want %q", got, want)
	}
	if _, err := os.Stat(l.CookiePath()); err != nil {
		t.Error(err)
	}
}

// socksGet fetches http://target/ through the SOCKS5 proxy at socks,
// sending target's host as a domain name (like curl --socks5-hostname).
func socksGet(socks, target string) (string, error) {
	c, err := net.DialTimeout("tcp", socks, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	host, portStr, _ := net.SplitHostPort(target)
	port, _ := strconv.Atoi(portStr)
	if _, err := c.Write([]byte{5, 1, 0}); err != nil { // version 5, 1 method: no auth
		return "", err
	}
	r := bufio.NewReader(c)
	var hello [2]byte
	if _, err := io.ReadFull(r, hello[:]); err != nil {
		return "", err
	}
	if hello != [2]byte{5, 0} {
		return "", fmt.Errorf("socks hello reply %v", hello)
	}
	req := append([]byte{5, 1, 0, 3, byte(len(host))}, host...) // CONNECT, ATYP domain
	req = binary.BigEndian.AppendUint16(req, uint16(port))
	if _, err := c.Write(req); err != nil {
		return "", err
	}
	var rep [4]byte
	if _, err := io.ReadFull(r, rep[:]); err != nil {
		return "", err
	}
	if rep[1] != 0 {
		return "", fmt.Errorf("socks connect failed: reply code %d", rep[1])
	}
	skip := map[byte]int{1: 4 + 2, 4: 16 + 2}[rep[3]]
	if rep[3] == 3 {
		l, err := r.ReadByte()
		if err != nil {
			return "", err
		}
		skip = int(l) + 2
	}
	if _, err := r.Discard(skip); err != nil {
		return "", err
	}
	fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", target)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("HTTP %s", resp.Status)
	}
	return string(b), err
}

func TestSocksThroughExit(t *testing.T) {
	t.Parallel()
	n := Shared(t)
	body := fmt.Sprintf("hello through tor %d\n", time.Now().UnixNano())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	defer srv.Close()
	target := strings.TrimPrefix(srv.URL, "http://")

	// The first attempt can fail while the client builds its first exit
	// circuit; retry for a while.
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	for attempt := 1; ; attempt++ {
		got, err := socksGet(n.SocksAddr(), target)
		if err == nil {
			if got != body {
				t.Fatalf("got body %q, want %q", got, body)
			}
			t.Logf("GET http://%s/ via %s: ok after %d attempt(s), %v", target, n.SocksAddr(), attempt, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET http://%s/ via socks %s: %v (attempt %d)%s", target, n.SocksAddr(), err, attempt, logTail(n.Client.Dir, false))
		}
		t.Logf("attempt %d: %v", attempt, err)
		time.Sleep(time.Second)
	}
}

// The onion service is published by the time Up returns: the client
// reaches it at once, and the page is the authority's front page.
func TestOnionService(t *testing.T) {
	t.Parallel()
	n := Shared(t)
	target := n.OnionAddr() + ":80"
	got, err := socksGet(n.SocksAddr(), target)
	if err != nil {
		t.Fatalf("GET %s via socks %s: %v%s", n.OnionURL(), n.SocksAddr(), err, logTail(n.Client.Dir, false))
	}
	if got != OnionPage {
		t.Fatalf("GET %s: %q, want %q", n.OnionURL(), got, OnionPage)
	}
	// Only the authorities (directory caches) are HSDirs.
	b, err := os.ReadFile(filepath.Join(n.Client.Dir, "cached-consensus"))
	if err != nil {
		t.Fatal(err)
	}
	hsdirs := 0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "s" && slices.Contains(f, "HSDir") {
			if !slices.Contains(f, "Authority") {
				t.Errorf("consensus: a relay that is no authority is an HSDir: %q", line)
			}
			hsdirs++
		}
	}
	if hsdirs != 3 {
		t.Errorf("consensus lists %d HSDirs, want the 3 authorities", hsdirs)
	}
}

// TestLaunchJoinsNetwork launches a second client that uses the shared
// network, as `torscript --launch` could.
func TestLaunchJoinsNetwork(t *testing.T) {
	t.Parallel()
	n := Shared(t)
	p, err := Launch(context.Background(), LaunchConfig{Torrc: n.ClientTorrc(), Bootstrap: true, Timeout: 90 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	c := dialCtl(t, p.ControlAddr)
	cookieAuth(t, c, p.CookiePath)
	if got := c.mustOK(t, "GETINFO status/bootstrap-phase"); !strings.Contains(got[0], "PROGRESS=100") {
		t.Errorf("bootstrap-phase: %q", got)
	}
}

func TestLaunchAuth(t *testing.T) {
	SkipWithoutTor(t)
	for _, tc := range []struct {
		auth, methods string
	}{
		{"none", "NULL"},
		{"cookie", "COOKIE,SAFECOOKIE"},
		{"password", "HASHEDPASSWORD"},
	} {
		t.Run(tc.auth, func(t *testing.T) {
			t.Parallel()
			p, err := Launch(context.Background(), LaunchConfig{Auth: tc.auth, Password: "s3cret pw", DisableNetwork: true})
			if err != nil {
				t.Fatal(err)
			}
			stopped := false
			defer func() {
				if !stopped {
					p.Stop()
				}
			}()
			if !p.Alive() || !strings.HasPrefix(p.ControlAddr, "127.0.0.1:") || !strings.HasPrefix(p.SocksAddr, "127.0.0.1:") {
				t.Fatalf("bad process %+v", p)
			}
			c := dialCtl(t, p.ControlAddr)
			methods, cookieFile := authMethods(t, c)
			if methods != tc.methods {
				t.Errorf("PROTOCOLINFO METHODS=%s, want %s", methods, tc.methods)
			}
			switch tc.auth {
			case "none":
				c.mustOK(t, "AUTHENTICATE")
			case "cookie":
				if cookieFile != p.CookiePath {
					t.Errorf("COOKIEFILE=%q, want %q", cookieFile, p.CookiePath)
				}
				cookieAuth(t, c, p.CookiePath)
			case "password":
				if code, _, _ := c.do(`AUTHENTICATE "wrong"`); code != 515 {
					t.Errorf("wrong password: code %d, want 515", code)
				}
				// tor closes the connection after a failed AUTHENTICATE.
				c = dialCtl(t, p.ControlAddr)
				c.mustOK(t, `AUTHENTICATE "s3cret pw"`)
			}
			if got := c.mustOK(t, "GETINFO version"); !strings.HasPrefix(got[0], "version=") {
				t.Errorf("GETINFO version: %q", got)
			}

			pid, dir := p.PID, p.Dir
			if err := p.Stop(); err != nil {
				t.Fatal(err)
			}
			stopped = true
			if pidAlive(pid) {
				t.Errorf("pid %d still alive after Stop", pid)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Stop did not remove %s: %v", dir, err)
			}
		})
	}
}

func TestLaunchBadConfig(t *testing.T) {
	SkipWithoutTor(t)
	if _, err := Launch(context.Background(), LaunchConfig{Auth: "password"}); err == nil {
		t.Error("password auth without password: no error")
	}
	if _, err := Launch(context.Background(), LaunchConfig{Auth: "magic"}); err == nil {
		t.Error("unknown auth: no error")
	}
	// A torrc error makes tor exit; the error carries its output.
	_, err := Launch(context.Background(), LaunchConfig{Torrc: []string{"NoSuchOption 1"}, DisableNetwork: true})
	if err == nil || !strings.Contains(err.Error(), "NoSuchOption") {
		t.Errorf("bad torrc: got %v, want an error quoting tor's complaint", err)
	}
}

func TestUpRefusesForeignDir(t *testing.T) {
	SkipWithoutTor(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Up(context.Background(), Config{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("Up in a non-empty dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "precious")); err != nil {
		t.Fatal(err)
	}
}

// TestReachOnionFails: when the client cannot fetch the onion service's
// page, Up's check tries again until its deadline and then says so, with
// the last try's error; it does not report the service as reachable.
func TestReachOnionFails(t *testing.T) {
	// A SocksPort that answers every CONNECT with "general failure", as
	// tor does when the descriptor cannot be fetched.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var tries atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tries.Add(1)
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				var hello [2]byte
				if _, err := io.ReadFull(r, hello[:]); err != nil {
					return
				}
				r.Discard(int(hello[1]))
				c.Write([]byte{5, 2}) // username and password
				var auth [2]byte
				io.ReadFull(r, auth[:])
				r.Discard(int(auth[1]))
				plen, _ := r.ReadByte()
				r.Discard(int(plen))
				c.Write([]byte{1, 0})
				var req [5]byte
				io.ReadFull(r, req[:])
				r.Discard(int(req[4]) + 2)
				c.Write([]byte{5, 1, 0, 1, 0, 0, 0, 0, 0, 0})
			}()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	n := &Network{Client: &Node{Name: "client", Dir: t.TempDir(), SocksPort: port}, OnionAddress: "aaaa.onion"}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var said []string
	err = reachOnion(ctx, n, func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) })
	if err == nil || !strings.Contains(err.Error(), "did not reach the onion service") || !strings.Contains(err.Error(), "in 3s") || !strings.Contains(err.Error(), "general") {
		t.Fatalf("reachOnion: %v; want the service not reached, with the SOCKS failure", err)
	}
	if len(said) != 0 {
		t.Errorf("reachOnion said %q", said)
	}
	if n := tries.Load(); n < 2 {
		t.Errorf("%d tries in 3 s, want it to try again", n)
	}
}
