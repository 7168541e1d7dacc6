package testnet

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRestartClient restarts the shared client. It is not parallel: the
// parallel tests of the package run after it, on the restarted client.
func TestRestartClient(t *testing.T) {
	n := Shared(t)
	oldPID := n.Client.PID
	oldCookie, err := os.ReadFile(n.CookiePath())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := n.RestartClient(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("client restarted and bootstrapped in %v", time.Since(start).Round(time.Millisecond))
	if pidAlive(oldPID) {
		t.Errorf("old client pid %d still alive", oldPID)
	}
	if n.Client.PID == oldPID || !n.Client.Alive() || !n.IsUp() {
		t.Fatalf("after restart: pid %d (was %d), alive %v, up %v", n.Client.PID, oldPID, n.Client.Alive(), n.IsUp())
	}
	if l, err := Load(n.Dir); err != nil || l.Client.PID != n.Client.PID {
		t.Errorf("state file after restart: %+v, %v; want client pid %d", l, err, n.Client.PID)
	}
	cookie, err := os.ReadFile(n.CookiePath())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(cookie, oldCookie) {
		t.Errorf("cookie unchanged after restart")
	}
	if _, err := os.Stat(n.Client.LogPath() + ".1"); err != nil {
		t.Errorf("previous log not kept: %v", err)
	}

	// Same ports, new cookie, bootstrapped.
	c := dialCtl(t, n.ControlAddr())
	cookieAuth(t, c, n.CookiePath())
	if got := c.mustOK(t, "GETINFO status/bootstrap-phase"); !strings.Contains(got[0], "PROGRESS=100") {
		t.Errorf("bootstrap-phase: %q", got)
	}
	body := fmt.Sprintf("after restart %d\n", time.Now().UnixNano())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	defer srv.Close()
	target := strings.TrimPrefix(srv.URL, "http://")
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := socksGet(n.SocksAddr(), target)
		if err == nil && got == body {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET through the restarted client's SocksPort: %q, %v%s", got, err, logTail(n.Client.Dir, false))
		}
		time.Sleep(500 * time.Millisecond)
	}
}
