// Command demo brings up a private Tor network on 127.0.0.1, asks its client
// for its version and circuits, and fetches a page through it with curl while
// printing the stream's events. It is what `bash tests/demo.sh` runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/tests/testnet"
)

func main() {
	keep := flag.Bool("keep", false, "leave the network running (stop it with: go run ./cmd/torscript testnet down --dir DIR)")
	dir := flag.String("dir", filepath.Join(os.TempDir(), "torscript-demo"), "where the network keeps its state")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *dir, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir string, keep bool) error {
	if old, err := testnet.Load(dir); err == nil {
		old.Down() // a demo interrupted earlier
	}
	start := time.Now()
	fmt.Println("== bringing up a private Tor network on 127.0.0.1 (3 authorities, 3 relays, 2 exits, 1 client)")
	n, err := testnet.Up(ctx, testnet.Config{Dir: dir, Progress: func(s string) { fmt.Println("   " + s) }})
	if err != nil {
		return err
	}
	if keep {
		defer fmt.Printf("\nThe network keeps running. Use it with:\n  %s\nStop it with: go run ./cmd/torscript testnet down --dir %s\n", strings.Join(n.Env(), "\n  "), dir)
	} else {
		defer n.Down()
	}
	fmt.Printf("   bootstrapped in %.1fs; tor processes use %d MB\n", time.Since(start).Seconds(), n.RSSKB()/1024)

	c, pi, err := ctl.Connect(ctx, n.ControlAddr(), ctl.Credentials{CookieFile: n.CookiePath()}, ctl.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Printf("\n== connected to %s (auth methods offered: %s)\n", n.ControlAddr(), strings.Join(pi.AuthMethods, ","))

	v, err := c.GetInfoOne(ctx, "version")
	if err != nil {
		return err
	}
	fmt.Printf("\n== GETINFO version\n   %s\n", v)

	circs, err := c.Circuits(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("\n== GETINFO circuit-status (%d circuits)\n", len(circs))
	for _, ci := range circs {
		fmt.Printf("   %-4s %-9s %-17s %-28s %s\n", ci.ID, ci.Status, ci.Purpose, nicknames(ci.Path), strings.Join(ci.BuildFlags, ","))
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello from a web server on 127.0.0.1, reached through the private Tor network")
	})}
	go srv.Serve(ln)
	defer srv.Close()
	url := fmt.Sprintf("http://%s/", ln.Addr())

	if err := c.SetEvents(ctx, "STREAM"); err != nil {
		return err
	}
	fmt.Printf("\n== curl --socks5-hostname %s %s, with its STREAM events\n", n.SocksAddr(), url)
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := exec.CommandContext(cctx, "curl", "-sS", "--socks5-hostname", n.SocksAddr(), url).CombinedOutput()
		done <- result{out, err}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	var curlRes *result
	for closed := false; !closed || curlRes == nil; {
		select {
		case ev := <-c.Events():
			s, ok := ev.(*ctl.StreamEvent)
			if !ok || s.TargetPort != port {
				continue
			}
			fmt.Printf("   %s", strings.ReplaceAll(ev.Reply().Raw, "\r\n", "\n"))
			if s.Status == ctl.StreamSucceeded {
				if now, err := c.Circuits(ctx); err == nil {
					circs = now
				}
			}
			fmt.Printf("      -> stream %s %s on circuit %s%s\n", s.ID, s.Status, s.CircuitID, describe(s, circs))
			closed = s.Status == ctl.StreamClosed || s.Status == ctl.StreamFailed
		case r := <-done:
			curlRes = &r
		case <-cctx.Done():
			return fmt.Errorf("the curl's stream did not finish: %w", cctx.Err())
		}
	}
	if curlRes.err != nil {
		return fmt.Errorf("curl: %v: %s", curlRes.err, curlRes.out)
	}
	fmt.Printf("\n== curl printed\n   %s", curlRes.out)
	return nil
}

// describe gives the reason a stream ended, or the path of its circuit when
// circuit-status knew it.
func describe(s *ctl.StreamEvent, circs []ctl.Circuit) string {
	if s.Reason != "" {
		return " (reason " + s.Reason + ")"
	}
	for _, ci := range circs {
		if ci.ID == s.CircuitID && len(ci.Path) > 0 {
			return " (path " + nicknames(ci.Path) + ")"
		}
	}
	return ""
}

func nicknames(path []ctl.PathHop) string {
	var hops []string
	for _, h := range path {
		hops = append(hops, h.Nickname)
	}
	return strings.Join(hops, " > ")
}
