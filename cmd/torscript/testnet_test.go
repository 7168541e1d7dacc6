package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
)

func TestTestnetFlags(t *testing.T) {
	parse := func(args ...string) (*testnetOptions, error) {
		t.Helper()
		got, _, err := parseFlags(t, newCmdTestnet, args)
		return got, err
	}
	got, err := parse("testnet", "up", "--dir", "/tmp/n", "--authorities", "4", "--relays", "5", "--exits", "1", "--tor", "/opt/tor", "--timeout", "90s", "--base-port", "7000", "-q")
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || got.action != "up" || got.dir != "/tmp/n" {
		t.Fatalf("options %+v", got)
	}
	if got.authorities != 4 || got.relays != 5 || got.exits != 1 || got.torPath != "/opt/tor" || got.timeout != 90*time.Second || got.basePort != 7000 || !got.quiet {
		t.Errorf("up flags %+v", got)
	}
	got, err = parse("testnet", "up")
	if err != nil || got.authorities != 3 || got.relays != 3 || got.exits != 2 || got.timeout != 3*time.Minute || got.quiet || got.dir != testnet.DefaultDir() {
		t.Errorf("up defaults %+v, %v", got, err)
	}
	for _, action := range []string{"down", "status", "env"} {
		got, err := parse("testnet", action, "--dir", "/tmp/m")
		if err != nil || got == nil || got.action != action || got.dir != "/tmp/m" {
			t.Errorf("%s: %+v, %v", action, got, err)
		}
	}
	if _, err := parse("testnet", "down", "extra"); err == nil {
		t.Errorf("down with an argument: no error")
	}
	if _, err := parse("testnet", "up", "--relays", "many"); exitCode(err) != exitUsage {
		t.Errorf("up --relays many: %v (exit %d)", err, exitCode(err))
	}
}

// TestTestnetNoNetwork: down, status and env in a directory with no
// network say so; status and env fail.
func TestTestnetNoNetwork(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "none")
	var out, errOut bytes.Buffer
	f := newFactory(strings.NewReader(""), &out, &errOut)
	if err := testnetRun(context.Background(), &testnetOptions{f: f, action: "down", dir: dir}); err != nil || errOut.String() != "testnet: no network in "+dir+"\n" {
		t.Errorf("down: %v, stderr %q", err, errOut.String())
	}
	for _, action := range []string{"status", "env"} {
		err := testnetRun(context.Background(), &testnetOptions{f: f, action: action, dir: dir})
		if want := "testnet: no network in " + dir + " (start one with: torscript testnet up)"; err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %q", action, err, want)
		}
	}
	if out.Len() != 0 {
		t.Errorf("stdout %q", out.String())
	}
}

// TestTestnetWeb: the web page records itself, serves its page, and stops
// when its context ends or its directory is gone.
func TestTestnetWeb(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- testnetWeb(ctx, dir) }()
	var w webRecord
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var ok bool
		if w, ok = readWeb(dir); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no web.json")
		}
	}
	if w.PID != os.Getpid() || !strings.HasPrefix(w.URL, "http://127.0.0.1:") || !w.alive() {
		t.Fatalf("record %+v", w)
	}
	resp, err := http.Get(w.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != webPage {
		t.Errorf("page %q", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("testnetWeb: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("testnetWeb did not stop with its context")
	}
	if (webRecord{PID: 1 << 30, URL: "x"}).alive() {
		t.Error("a process that does not exist is alive")
	}
}
