package testnet

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/torscript/torscript/ctl"
)

// The network's onion service: a tor of its own (the "onion" node, no
// ORPort, no SocksPort) hosts a v3 service whose port 80 forwards to the
// first authority's DirPort, which serves OnionPage as "/"
// (DirPortFrontPage). A tor is the web server, so the service keeps
// working when the network runs detached from the process that started
// it (torscript testnet up). The authorities alone are HSDirs (see
// torrcParams.hsDirs). Up waits until the descriptor has been uploaded
// and the client has fetched the page through the service (reachOnion).

// OnionPage is the body of http://ADDRESS.onion/ (OnionURL).
const OnionPage = "<!doctype html><title>torscript testnet</title><p>torscript testnet onion service</p>\n"

const (
	onionDir        = "hs"             // the HiddenServiceDir, inside the onion node's DataDirectory
	frontPageFile   = "frontpage.html" // auth1's DirPortFrontPage, inside its DataDirectory
	onionUploadWait = time.Minute      // bound on the descriptor upload once the client is up
)

// OnionAddr returns the address of the network's onion service
// ("….onion"), or "" if it has none.
func (n *Network) OnionAddr() string { return n.OnionAddress }

// OnionURL returns "http://ADDRESS.onion/", the page of the network's
// onion service (its body is OnionPage), or "" if it has none.
func (n *Network) OnionURL() string {
	if n.OnionAddress == "" {
		return ""
	}
	return "http://" + n.OnionAddress + "/"
}

// onionTarget writes the first authority's front page and returns its
// DirPort, where the onion service's port 80 leads; "" without an onion
// node.
func onionTarget(n *Network) (string, error) {
	auths := n.Authorities()
	if n.Onion == nil || len(auths) == 0 {
		return "", nil
	}
	a := auths[0]
	if err := os.WriteFile(filepath.Join(a.Dir, frontPageFile), []byte(OnionPage), 0o600); err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", a.DirPort), nil
}

// onionWatch follows the HS_DESC events of the onion node from its start.
type onionWatch struct {
	nd *Node
	c  *ctl.Conn
}

// watchOnion connects to nd's ControlPort as soon as it accepts
// connections (before tor can have published anything) and asks for
// HS_DESC events.
func watchOnion(ctx context.Context, nd *Node) (*onionWatch, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last error
	for {
		if err := checkAlive([]*Node{nd}); err != nil {
			return nil, err
		}
		c, _, err := ctl.Connect(ctx, nd.ControlAddr(), ctl.Credentials{CookieFile: nd.CookiePath()}, ctl.Options{})
		if err == nil {
			if err = c.SetEvents(ctx, ctl.EventHSDesc); err == nil {
				return &onionWatch{nd: nd, c: c}, nil
			}
			c.Close()
		}
		last = err
		select {
		case <-ctx.Done():
			if err := interrupted(ctx); err != nil {
				return nil, err
			}
			return nil, nodeError(nd, false, "control port: %v", last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (w *onionWatch) close() { w.c.Close() }

// wait returns the service's address once tor has uploaded its
// descriptors: every HSDir it sent one to has answered (UPLOADED or
// FAILED) and at least one took it. It fails if a node of watch exits or
// after onionUploadWait.
func (w *onionWatch) wait(ctx context.Context, watch []*Node, progress func(string, ...any)) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, onionUploadWait)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	pending := map[string]int{} // HSDir → uploads not yet answered
	uploaded, failed := 0, []string{}
	addr := ""
	for {
		select {
		case ev, ok := <-w.c.Events():
			if !ok {
				return "", nodeError(w.nd, false, "control connection ended: %v", w.c.Err())
			}
			d, ok := ev.(*ctl.HSDescEvent)
			if !ok {
				continue
			}
			switch d.Action {
			case "UPLOAD":
				pending[d.HSDirRelay.Fingerprint]++
				addr = d.Address
			case "UPLOADED":
				pending[d.HSDirRelay.Fingerprint]--
				uploaded++
			case "FAILED":
				pending[d.HSDirRelay.Fingerprint]--
				failed = append(failed, strings.TrimSpace(d.Reply().String()))
			default:
				continue
			}
			done := uploaded > 0
			for _, p := range pending {
				done = done && p <= 0
			}
			if done {
				progress("onion: %s.onion: descriptor uploaded to %d HSDirs", addr, uploaded)
				return w.address(addr)
			}
		case <-tick.C:
			if err := checkAlive(watch); err != nil {
				return "", err
			}
		case <-ctx.Done():
			if err := interrupted(ctx); err != nil {
				return "", err
			}
			return "", nodeError(w.nd, false, "onion service descriptor not uploaded in %v (%d uploaded, failures: %q)",
				onionUploadWait, uploaded, failed)
		}
	}
}

// address checks the address of the HS_DESC events against the one tor
// wrote in the service's hostname file.
func (w *onionWatch) address(fromEvents string) (string, error) {
	b, err := os.ReadFile(filepath.Join(w.nd.Dir, onionDir, "hostname"))
	if err != nil {
		return "", fmt.Errorf("testnet: %s: %w", w.nd.Name, err)
	}
	host := strings.TrimSpace(string(b))
	if host != fromEvents+".onion" {
		return "", fmt.Errorf("testnet: %s: hostname file says %q, HS_DESC events %q", w.nd.Name, host, fromEvents)
	}
	return host, nil
}

// onionReachWait bounds how long Up tries to fetch the onion service's
// page through the client once the descriptor is uploaded, and
// onionFetchWait one try.
const (
	onionReachWait = 90 * time.Second
	onionFetchWait = 30 * time.Second
)

// reachOnion fetches the onion service's page through the client's
// SocksPort until it gets OnionPage: an uploaded descriptor is not yet a
// reachable service (once in a CI run, a README user's first curl got
// SOCKS general failure right after up; the client may, for one, still
// hold a consensus older than the service's and ask other HSDirs).
// Each try comes with SOCKS credentials of its own, so that tor isolates
// it from the one before. It returns an error, with the last try's, after
// onionReachWait.
func reachOnion(ctx context.Context, n *Network, progress func(string, ...any)) error {
	ctx, cancel := context.WithTimeout(ctx, onionReachWait)
	defer cancel()
	start := time.Now()
	for try := 1; ; try++ {
		err := fetchOnion(ctx, n, try)
		if err == nil {
			progress("onion: the client reached %s in %v (%s)", n.OnionURL(), time.Since(start).Round(time.Millisecond), plural(try, "try", "tries"))
			return nil
		}
		select {
		case <-ctx.Done():
			if err := interrupted(ctx); err != nil {
				return err
			}
			return nodeError(n.Client, false, "the client did not reach the onion service %s in %v (%s): %v", n.OnionURL(), time.Since(start).Round(time.Second), plural(try, "try", "tries"), err)
		case <-time.After(time.Second):
		}
	}
}

// fetchOnion is one try of reachOnion: GET / over a stream to the
// service's port 80 through the client, and the body must be OnionPage.
func fetchOnion(ctx context.Context, n *Network, try int) error {
	ctx, cancel := context.WithTimeout(ctx, onionFetchWait)
	defer cancel()
	c, err := ctl.DialSOCKS(ctx, n.SocksAddr(), "testnet-onion-check", strconv.Itoa(try), n.OnionAddress, 80)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: "+n.OnionAddress+"\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || string(body) != OnionPage {
		return fmt.Errorf("GET %s: %s, body %q", n.OnionURL(), resp.Status, body)
	}
	return nil
}

// plural is "1 try" or "N tries".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
