package testnet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
// torrcParams.hsDirs). Up waits until the descriptor has been uploaded.

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
