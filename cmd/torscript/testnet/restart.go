package testnet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"time"
)

// RestartClient stops the client tor (SIGTERM, then SIGKILL after Grace)
// and starts it again with the same torrc, data directory and ports, as
// a controller sees when tor is restarted under it. It waits until the
// client's ControlPort accepts connections and the client has
// bootstrapped again. The client makes a new control_auth_cookie when it
// starts. The notice log of the previous run is kept as notice.log.1.
//
// A client started by this process is started again the same way (it
// dies with the calling process); one started by another process (a
// network found with Load) is started detached.
func (n *Network) RestartClient(ctx context.Context) error {
	if n.Client == nil {
		return fmt.Errorf("testnet: the network has no client")
	}
	return n.Restart(ctx, n.Client)
}

// Restart stops a client node and starts it again, as RestartClient does
// for the first.
func (n *Network) Restart(ctx context.Context, nd *Node) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}
	tor := ""
	if nd.proc != nil {
		tor = nd.proc.cmd.Path
	}
	tor, err := findTor(tor)
	if err != nil {
		return fmt.Errorf("testnet: %w (apt-get install -y tor)", err)
	}
	detach := nd.proc == nil
	if err := stopAll([]target{nd.target()}, Grace); err != nil {
		return err
	}
	// Old bootstrap messages and the old cookie must not count for the
	// new process.
	if err := os.Rename(nd.LogPath(), nd.LogPath()+".1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Remove(nd.CookiePath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var p *proc
	// Right after the old tor exits, its ports may be briefly unavailable:
	// retry a start that fails to bind.
	for attempt := 1; ; attempt++ {
		p, err = startTor(tor, nd.Torrc, nd.Dir, detach)
		if err != nil {
			return err
		}
		nd.proc, nd.PID = p, p.cmd.Process.Pid
		err = waitControlPort(ctx, nd)
		if err == nil {
			break
		}
		if !p.exited() || attempt >= 5 || ctx.Err() != nil {
			_ = stopAll([]target{nd.target()}, Grace)
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
		os.Remove(nd.LogPath())
	}
	if err := n.save(); err != nil {
		return err
	}
	return waitBootstrap(ctx, nd, []*Node{nd}, func(string, ...any) {})
}

// waitControlPort waits until nd's ControlPort accepts connections and its
// cookie file exists.
func waitControlPort(ctx context.Context, nd *Node) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := net.DialTimeout("tcp", nd.ControlAddr(), time.Second); err == nil {
			c.Close()
			if _, err := os.Stat(nd.CookiePath()); err == nil {
				return nil
			}
		}
		if err := checkAlive([]*Node{nd}); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			if err := interrupted(ctx); err != nil {
				return err
			}
			return nodeError(nd, false, "ControlPort %s not ready after restart: %v", nd.ControlAddr(), context.Cause(ctx))
		case <-tick.C:
		}
	}
}
