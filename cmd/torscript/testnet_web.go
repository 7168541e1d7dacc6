package main

// The private network's web page. `testnet up` starts a small HTTP server
// on 127.0.0.1 beside the network: the destination every exit accepts
// (they exit to 127.0.0.0/8), for curl through the SocksPort and for
// probes (examples/exit_probe.star). It cannot be a relay's port: exits
// refuse streams to a relay's own address and port (tor's re-entry check,
// END TORPROTOCOL). It runs as `torscript testnet web`, detached like the
// daemons, records itself in DIR/web.json, and stops with `testnet down`
// or when DIR is gone.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// webPage is the body of TORSCRIPT_WEB_URL.
const webPage = "torscript testnet: a page on 127.0.0.1, reached through the network's exits\n"

const webFile = "web.json"

// webRecord is DIR/web.json.
type webRecord struct {
	PID int    `json:"pid"`
	URL string `json:"url"`
}

// readWeb returns the web server's record, or false when there is none.
func readWeb(dir string) (webRecord, bool) {
	var w webRecord
	b, err := os.ReadFile(filepath.Join(dir, webFile))
	if err != nil || json.Unmarshal(b, &w) != nil || w.PID <= 0 || w.URL == "" {
		return webRecord{}, false
	}
	return w, true
}

// alive says whether the recorded server still runs (a zombie does not).
func (w webRecord) alive() bool {
	if w.PID <= 0 || syscall.Kill(w.PID, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", w.PID))
	if err != nil {
		return true // no /proc: kill said it is there
	}
	// "PID (comm) STATE ...": comm may hold spaces and parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// startWeb starts `torscript testnet web` for the network in dir, detached,
// and waits until it has recorded its URL.
func startWeb(dir string) (webRecord, error) {
	exe, err := os.Executable()
	if err != nil {
		return webRecord{}, err
	}
	log, err := os.OpenFile(filepath.Join(dir, "web.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return webRecord{}, err
	}
	defer log.Close()
	cmd := exec.Command(exe, "testnet", "web", "--dir", dir)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return webRecord{}, fmt.Errorf("testnet: starting the web page: %w", err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if w, ok := readWeb(dir); ok && w.PID == pid {
			return w, nil
		}
		if syscall.Kill(pid, 0) != nil {
			break
		}
	}
	syscall.Kill(pid, syscall.SIGKILL)
	return webRecord{}, fmt.Errorf("testnet: the web page did not start (see %s)", filepath.Join(dir, "web.log"))
}

// stopWeb stops the network's web server, if it runs, and waits (a
// second at most) until it has.
func stopWeb(dir string) {
	w, ok := readWeb(dir)
	if !ok || !w.alive() {
		return
	}
	syscall.Kill(w.PID, syscall.SIGTERM)
	for deadline := time.Now().Add(time.Second); w.alive() && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
}

// testnetWeb is the web server's process: it serves webPage on a free port
// of 127.0.0.1 until it is killed or dir is removed.
func testnetWeb(ctx context.Context, dir string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	rec := webRecord{PID: os.Getpid(), URL: fmt.Sprintf("http://%s/", ln.Addr())}
	b, _ := json.Marshal(rec)
	tmp := filepath.Join(dir, webFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, webFile)); err != nil {
		return err
	}
	go func() {
		// The network's directory gone (down, or removed by hand): stop.
		for range time.Tick(2 * time.Second) {
			if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
				os.Exit(0)
			}
		}
	}()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprint(w, webPage)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		<-ctx.Done() // SIGTERM (testnet down), SIGINT, SIGHUP
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
