// Command demo brings up a private Tor network on 127.0.0.1, runs the
// per-domain stream policy (examples/per_domain.star) against its client
// with the real torscript binary, and fetches pages from several local
// "domains" with curl, showing the policy's decisions and the circuit each
// stream rode. It is what `bash tests/demo.sh` runs.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
	"github.com/torscript/torscript/ctl"
)

func main() {
	keep := flag.Bool("keep", false, "leave the network running (stop it with: go run ./cmd/torscript testnet down --dir DIR)")
	dir := flag.String("dir", filepath.Join(os.TempDir(), "torscript-demo"), "where the network keeps its state")
	script := flag.String("script", "examples/per_domain.star", "the policy to run")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *dir, *script, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir, script string, keep bool) error {
	if old, err := testnet.Load(dir); err == nil {
		old.Down() // a demo interrupted earlier
	}
	fmt.Println("== building torscript")
	bin := filepath.Join(os.TempDir(), "torscript-demo-bin")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/torscript").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}

	start := time.Now()
	fmt.Println("\n== bringing up a private Tor network on 127.0.0.1 (3 authorities, 3 relays, 2 exits, 1 client)")
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

	// Our own control connection, to watch where streams go.
	c, _, err := ctl.Connect(ctx, n.ControlAddr(), ctl.Credentials{CookieFile: n.CookiePath()}, ctl.Options{})
	if err != nil {
		return err
	}
	defer c.Close()

	// A web server that answers on every 127.0.0.0/8 address: each
	// address is a "domain" of its own.
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", r.Host)
	})}
	go srv.Serve(ln)
	defer srv.Close()

	src, err := os.ReadFile(script)
	if err != nil {
		return err
	}
	fmt.Printf("\n== %s\n", script)
	for _, l := range strings.Split(strings.TrimSpace(string(src)), "\n") {
		fmt.Println("   | " + l)
	}

	fmt.Printf("\n== torscript run %s   (its output is marked \"policy>\")\n", script)
	cmd := exec.CommandContext(ctx, bin, "run", "--control", n.ControlAddr(), "--cookie", n.CookiePath(), script)
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Process.Kill()
	ready := make(chan struct{})
	var once sync.Once
	var outMu sync.Mutex
	show := func(r io.Reader) {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := sc.Text()
			outMu.Lock()
			fmt.Println("   policy> " + line)
			outMu.Unlock()
			if strings.Contains(line, "policy started") {
				once.Do(func() { close(ready) })
			}
		}
	}
	go show(stdout)
	go show(stderr)
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("torscript did not start its policy")
	case <-ctx.Done():
		return ctx.Err()
	}

	if err := c.SetEvents(ctx, "STREAM"); err != nil {
		return err
	}
	for _, host := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.1", "127.0.0.3", "127.0.0.2"} {
		url := fmt.Sprintf("http://%s:%d/", host, port)
		outMu.Lock()
		fmt.Printf("\n== curl --socks5-hostname %s %s\n", n.SocksAddr(), url)
		outMu.Unlock()
		circ, body, err := fetch(ctx, c, n.SocksAddr(), url, port)
		if err != nil {
			return err
		}
		path := ""
		if circs, err := c.Circuits(ctx); err == nil {
			for _, ci := range circs {
				if ci.ID == circ {
					path = nicknames(ci.Path)
				}
			}
		}
		outMu.Lock()
		fmt.Printf("   curl printed: %s   the stream rode circuit %s (%s)\n", strings.TrimSpace(body), circ, path)
		outMu.Unlock()
	}

	fmt.Println("\n== stopping torscript (SIGTERM); it hands back held streams and restores __LeaveStreamsUnattached")
	cmd.Process.Signal(syscall.SIGTERM)
	werr := cmd.Wait()
	conf, err := c.GetConf(ctx, "__LeaveStreamsUnattached")
	if err != nil {
		return err
	}
	v := conf.Values("__LeaveStreamsUnattached")
	fmt.Printf("   torscript exited (%v); __LeaveStreamsUnattached is now %v\n", exitStatus(werr), v)
	return nil
}

// fetch runs curl and returns the circuit its stream succeeded on.
func fetch(ctx context.Context, c *ctl.Conn, socks, url string, port int) (circ, body string, err error) {
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := exec.CommandContext(cctx, "curl", "-sS", "--socks5-hostname", socks, url).CombinedOutput()
		done <- result{out, err}
	}()
	var res *result
	for circ == "" || res == nil {
		select {
		case ev := <-c.Events():
			s, ok := ev.(*ctl.StreamEvent)
			if ok && s.TargetPort == port && s.Status == ctl.StreamSucceeded {
				circ = s.CircuitID
			}
		case r := <-done:
			res = &r
			if r.err != nil {
				return "", "", fmt.Errorf("curl %s: %v: %s", url, r.err, r.out)
			}
		case <-cctx.Done():
			return "", "", fmt.Errorf("curl %s did not finish: %w", url, cctx.Err())
		}
	}
	return circ, string(res.out), nil
}

func exitStatus(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

func nicknames(path []ctl.PathHop) string {
	var hops []string
	for _, h := range path {
		hops = append(hops, h.Nickname)
	}
	return strings.Join(hops, " > ")
}
