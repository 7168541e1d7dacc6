// Package testnet runs a private Tor network on 127.0.0.1 made of real tor
// daemons: directory authorities (keys made with tor-gencert), middle
// relays, exits whose policy accepts 127.0.0.0/8, one client with a
// ControlPort, a SocksPort and cookie authentication, and a tor hosting a
// v3 onion service (see OnionURL). It also launches single private tor
// processes (Launch), like stem's launch_tor.
//
// Every process is started by this package and stopped by pid; the pids
// are recorded in a state file (Dir/testnet.json) so that another process
// (the torscript CLI) can inspect or stop the network with Load.
package testnet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// StateFile is the name of the state file inside Config.Dir.
const StateFile = "testnet.json"

// DefaultDir is the directory used when Config.Dir is empty.
func DefaultDir() string { return filepath.Join(os.TempDir(), "torscript-testnet") }

// Config describes a network for Up.
type Config struct {
	// Dir holds the state file and one data directory per node. It is
	// created; it must be empty, absent, or hold a stopped network (which
	// is replaced). Default DefaultDir().
	Dir string
	// Authorities, Relays (middle relays) and Exits default to 3, 3, 2.
	Authorities, Relays, Exits int
	// TorPath defaults to tor from PATH (or /usr/sbin/tor). tor-gencert is
	// looked for next to it, then in PATH.
	TorPath string
	// Progress, if set, receives progress messages such as
	// "authorities: consensus lists 5/8 relays" or "client: Bootstrapped 45% ...".
	Progress func(string)
	// ClientExtra holds extra torrc lines for the client, e.g.
	// "__LeaveStreamsUnattached 0".
	ClientExtra []string
	// NoOnion leaves out the tor that hosts the onion service.
	NoOnion bool
	// Clients is how many client tors the network has (default 1): the
	// first is named client, the others client2, client3, ..., each with
	// a ControlPort and a SocksPort of its own (a fleet for one torscript).
	Clients int

	// BasePort, if non-zero, makes nodes use ports BasePort, BasePort+1,
	// ... instead of free ports chosen by the kernel.
	BasePort int
	// VotingInterval is the authorities' voting interval; default 10s.
	// It must divide a day and be at least 10s.
	VotingInterval time.Duration
	// Timeout bounds Up; default 3 minutes.
	Timeout time.Duration
	// Detach leaves the daemons running after the calling process exits
	// (for the CLI). Otherwise each tor gets a parent-death signal and dies
	// with the calling process, even if that process crashes.
	Detach bool
}

// Node is one tor process of a network.
type Node struct {
	Name        string `json:"name"`
	Role        string `json:"role"` // "authority", "relay", "exit", "client" or "onion"
	Dir         string `json:"dir"`  // DataDirectory
	PID         int    `json:"pid"`
	ORPort      int    `json:"orport,omitempty"`
	DirPort     int    `json:"dirport,omitempty"`
	ControlPort int    `json:"controlport,omitempty"`
	SocksPort   int    `json:"socksport,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"` // relay identity, 40 hex digits
	V3Ident     string `json:"v3ident,omitempty"`     // authorities: v3 identity fingerprint
	Torrc       string `json:"torrc"`

	proc *proc // set when started by this process
}

// LogPath returns the node's notice log.
func (nd *Node) LogPath() string { return filepath.Join(nd.Dir, "notice.log") }

// ControlAddr returns "127.0.0.1:PORT" of the node's ControlPort.
func (nd *Node) ControlAddr() string { return fmt.Sprintf("127.0.0.1:%d", nd.ControlPort) }

// CookiePath returns the node's control_auth_cookie.
func (nd *Node) CookiePath() string { return filepath.Join(nd.Dir, "control_auth_cookie") }

// Alive reports whether the node's tor process is running.
func (nd *Node) Alive() bool { return nd.target().alive() }

func (nd *Node) target() target {
	return target{name: nd.Name, pid: nd.PID, torrc: nd.Torrc, proc: nd.proc}
}

// Network is a running private Tor network.
type Network struct {
	Dir   string  `json:"dir"`
	Nodes []*Node `json:"nodes"`
	// Client is the (first) client node (also in Nodes).
	Client *Node `json:"-"`
	// Onion is the node that hosts the onion service (also in Nodes), nil
	// with Config.NoOnion. OnionAddress is the service's address
	// ("….onion"), set once its descriptor has been uploaded.
	Onion        *Node  `json:"-"`
	OnionAddress string `json:"onion_address,omitempty"`
	// DirAuthorities are the DirAuthority torrc lines of the network.
	DirAuthorities []string `json:"dir_authorities"`
	// Started is when Up started; Ready is set once the client bootstrapped,
	// BootstrapTime is how long that took.
	Started       time.Time     `json:"started"`
	Ready         bool          `json:"ready"`
	BootstrapTime time.Duration `json:"bootstrap_time"`
}

// NodeStatus is the status of one node.
type NodeStatus struct {
	Name        string
	Role        string
	PID         int
	Alive       bool
	ORPort      int
	DirPort     int
	ControlPort int
	SocksPort   int
	RSSKB       int // resident memory in kB (VmRSS), 0 if not alive
}

// Ports formats the node's ports, e.g. "or=40001 dir=40002 control=40003".
func (s NodeStatus) Ports() string {
	var p []string
	for _, x := range []struct {
		k string
		v int
	}{{"or", s.ORPort}, {"dir", s.DirPort}, {"control", s.ControlPort}, {"socks", s.SocksPort}} {
		if x.v != 0 {
			p = append(p, fmt.Sprintf("%s=%d", x.k, x.v))
		}
	}
	return strings.Join(p, " ")
}

// Status returns the status of every node.
func (n *Network) Status() []NodeStatus {
	st := make([]NodeStatus, 0, len(n.Nodes))
	for _, nd := range n.Nodes {
		s := NodeStatus{
			Name: nd.Name, Role: nd.Role, PID: nd.PID, Alive: nd.Alive(),
			ORPort: nd.ORPort, DirPort: nd.DirPort, ControlPort: nd.ControlPort, SocksPort: nd.SocksPort,
		}
		if s.Alive {
			s.RSSKB = rssKB(nd.PID)
		}
		st = append(st, s)
	}
	return st
}

// IsUp reports whether every node is alive and the client has bootstrapped.
func (n *Network) IsUp() bool {
	if !n.Ready {
		return false
	}
	for _, nd := range n.Nodes {
		if !nd.Alive() {
			return false
		}
	}
	return true
}

// RSSKB returns the summed resident memory (VmRSS) of all live nodes in kB.
func (n *Network) RSSKB() int {
	sum := 0
	for _, s := range n.Status() {
		sum += s.RSSKB
	}
	return sum
}

// ControlAddr returns "127.0.0.1:PORT" of the client's ControlPort.
func (n *Network) ControlAddr() string { return n.Client.ControlAddr() }

// CookiePath returns the client's control_auth_cookie.
func (n *Network) CookiePath() string { return n.Client.CookiePath() }

// SocksAddr returns "127.0.0.1:PORT" of the client's SocksPort.
func (n *Network) SocksAddr() string { return fmt.Sprintf("127.0.0.1:%d", n.Client.SocksPort) }

// Env returns KEY=VALUE lines describing the client:
// TORSCRIPT_CONTROL, TORSCRIPT_COOKIE and TORSCRIPT_SOCKS, and
// TORSCRIPT_ONION_URL if the network has an onion service.
func (n *Network) Env() []string {
	env := []string{
		"TORSCRIPT_CONTROL=" + n.ControlAddr(),
		"TORSCRIPT_COOKIE=" + n.CookiePath(),
		"TORSCRIPT_SOCKS=" + n.SocksAddr(),
	}
	if u := n.OnionURL(); u != "" {
		env = append(env, "TORSCRIPT_ONION_URL="+u)
	}
	if cs := n.Clients(); len(cs) > 1 {
		// A fleet: torscript run $(printf -- '--control %s ' $TORSCRIPT_FLEET) ...
		var ctl, socks []string
		for _, c := range cs {
			ctl = append(ctl, c.ControlAddr())
			socks = append(socks, fmt.Sprintf("127.0.0.1:%d", c.SocksPort))
		}
		env = append(env, "TORSCRIPT_FLEET="+strings.Join(ctl, " "), "TORSCRIPT_FLEET_SOCKS="+strings.Join(socks, " "))
	}
	return env
}

// ClientTorrc returns the torrc lines that make another tor (e.g. one
// started with Launch) a client of this network.
func (n *Network) ClientTorrc() []string {
	l := []string{"TestingTorNetwork 1"}
	l = append(l, n.DirAuthorities...)
	return append(l, clientLines()...)
}

func (n *Network) byRole(role string) []*Node {
	var r []*Node
	for _, nd := range n.Nodes {
		if nd.Role == role {
			r = append(r, nd)
		}
	}
	return r
}

// Authorities returns the directory authorities.
func (n *Network) Authorities() []*Node { return n.byRole(RoleAuthority) }

// Relays returns the middle (non-exit) relays.
func (n *Network) Relays() []*Node { return n.byRole(RoleRelay) }

// Exits returns the exit relays.
func (n *Network) Exits() []*Node { return n.byRole(RoleExit) }

// Clients returns the client nodes: Client first.
func (n *Network) Clients() []*Node { return n.byRole(RoleClient) }

// Node returns the node with the given name, or nil.
func (n *Network) Node(name string) *Node {
	for _, nd := range n.Nodes {
		if nd.Name == name {
			return nd
		}
	}
	return nil
}

// Load reads the state file that Up wrote in dir.
func Load(dir string) (*Network, error) {
	if dir == "" {
		dir = DefaultDir()
	}
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return nil, err
	}
	n := new(Network)
	if err := json.Unmarshal(b, n); err != nil {
		return nil, fmt.Errorf("testnet: %s: %w", filepath.Join(dir, StateFile), err)
	}
	for _, nd := range n.Nodes {
		switch nd.Role {
		case RoleClient:
			if n.Client == nil {
				n.Client = nd
			}
		case RoleOnion:
			n.Onion = nd
		}
	}
	if n.Client == nil {
		return nil, fmt.Errorf("testnet: %s has no client", filepath.Join(dir, StateFile))
	}
	return n, nil
}

func (n *Network) save() error {
	b, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(n.Dir, StateFile)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func (n *Network) stop() error {
	var ts []target
	for _, nd := range n.Nodes {
		if nd.PID > 0 {
			ts = append(ts, nd.target())
		}
	}
	return stopAll(ts, Grace)
}

// Down stops every process the network started (SIGTERM, then SIGKILL
// after Grace; only the recorded pids, and only if they still run tor with
// this network's torrc) and removes the network's directory.
func (n *Network) Down() error {
	if err := n.stop(); err != nil {
		return err
	}
	if n.Dir == "" || filepath.Dir(n.Dir) == n.Dir {
		return fmt.Errorf("testnet: refusing to remove %q", n.Dir)
	}
	if _, err := os.Stat(filepath.Join(n.Dir, StateFile)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // already removed
		}
		return err
	}
	return os.RemoveAll(n.Dir)
}

func (c *Config) progress(format string, args ...any) {
	if c.Progress != nil {
		c.Progress(fmt.Sprintf(format, args...))
	}
}

// Up builds the network in cfg.Dir, starts it, waits until the
// authorities' consensus lists every relay as Running, starts the client
// and waits until it has bootstrapped to 100%. On failure it stops what it
// started and returns an error that includes the tail of the failing
// node's log; the directory is left in place for inspection.
func Up(ctx context.Context, cfg Config) (*Network, error) {
	if cfg.Dir == "" {
		cfg.Dir = DefaultDir()
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	cfg.Dir = dir
	if cfg.Authorities == 0 {
		cfg.Authorities = 3
	}
	if cfg.Relays == 0 {
		cfg.Relays = 3
	}
	if cfg.Exits == 0 {
		cfg.Exits = 2
	}
	if cfg.Authorities < 1 || cfg.Relays < 0 || cfg.Exits < 1 {
		return nil, fmt.Errorf("testnet: need at least 1 authority and 1 exit (got %d authorities, %d relays, %d exits)",
			cfg.Authorities, cfg.Relays, cfg.Exits)
	}
	if cfg.VotingInterval == 0 {
		cfg.VotingInterval = 10 * time.Second
	}
	if cfg.VotingInterval < 10*time.Second || cfg.VotingInterval%time.Second != 0 {
		return nil, fmt.Errorf("testnet: voting interval %v: must be whole seconds and at least 10s", cfg.VotingInterval)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 3 * time.Minute
	}
	tor, err := findTor(cfg.TorPath)
	if err != nil {
		return nil, fmt.Errorf("testnet: %w (apt-get install -y tor)", err)
	}
	gencert, err := findGencert(tor)
	if err != nil {
		return nil, fmt.Errorf("testnet: %w (it comes with tor: apt-get install -y tor)", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	for attempt := 1; ; attempt++ {
		if err := prepareDir(cfg.Dir); err != nil {
			return nil, err
		}
		n, err := up(ctx, &cfg, tor, gencert)
		if err == nil {
			return n, nil
		}
		var be *bindError
		if errors.As(err, &be) && cfg.BasePort == 0 && attempt < 3 && ctx.Err() == nil {
			cfg.progress("%s: port already in use; retrying with other ports", be.node)
			continue
		}
		return nil, err
	}
}

// prepareDir makes sure dir exists and holds nothing but, possibly, a
// stopped network, which it removes.
func prepareDir(dir string) error {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return os.MkdirAll(dir, 0o700)
	case err != nil:
		return err
	case len(ents) == 0:
		return os.Chmod(dir, 0o700)
	}
	old, err := Load(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("testnet: %s is not empty and holds no testnet; refusing to use it", dir)
		}
		return err
	}
	for _, nd := range old.Nodes {
		if nd.Alive() {
			return fmt.Errorf("testnet: a testnet is already running in %s (%s is pid %d); stop it first (torscript testnet down --dir %s)",
				dir, nd.Name, nd.PID, dir)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.MkdirAll(dir, 0o700)
}

// interrupted returns an error if ctx was cancelled (rather than timed
// out): the caller gave up, so logs are of no interest.
func interrupted(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("testnet: %v; stopping", context.Cause(ctx))
	}
	return nil
}

type bindError struct{ node string }

func (e *bindError) Error() string { return e.node + ": address already in use" }

// nodeError describes the failure of node nd, with the tail of its logs
// (including its stdout if it exited).
func nodeError(nd *Node, exited bool, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	t := logTail(nd.Dir, exited)
	if strings.Contains(t, "Address already in use") || strings.Contains(t, "Could not bind") {
		return fmt.Errorf("testnet: %s: %s%s: %w", nd.Name, msg, t, &bindError{nd.Name})
	}
	return fmt.Errorf("testnet: %s: %s%s", nd.Name, msg, t)
}

func up(ctx context.Context, cfg *Config, tor, gencert string) (_ *Network, err error) {
	n := &Network{Dir: cfg.Dir, Started: time.Now()}
	add := func(role, prefix string, count int) {
		for i := 1; i <= count; i++ {
			name := fmt.Sprintf("%s%d", prefix, i)
			if role == RoleClient || role == RoleOnion {
				name = prefix
			}
			n.Nodes = append(n.Nodes, &Node{Name: name, Role: role, Dir: filepath.Join(cfg.Dir, name)})
		}
	}
	add(RoleAuthority, "auth", cfg.Authorities)
	add(RoleRelay, "relay", cfg.Relays)
	add(RoleExit, "exit", cfg.Exits)
	relays := n.Nodes
	add(RoleClient, "client", 1)
	n.Client = n.Nodes[len(n.Nodes)-1]
	for i := 2; i <= cfg.Clients; i++ {
		name := fmt.Sprintf("client%d", i)
		n.Nodes = append(n.Nodes, &Node{Name: name, Role: RoleClient, Dir: filepath.Join(cfg.Dir, name)})
	}
	if !cfg.NoOnion {
		add(RoleOnion, "onion", 1)
		n.Onion = n.Nodes[len(n.Nodes)-1]
	}

	// Ports.
	need := 0
	for _, nd := range n.Nodes {
		switch nd.Role {
		case RoleAuthority:
			need += 3
		case RoleOnion:
			need++
		default:
			need += 2
		}
	}
	var ports []int
	if cfg.BasePort != 0 {
		ports, err = basePorts(cfg.BasePort, need)
	} else {
		ports, err = pickPorts(need)
	}
	if err != nil {
		return nil, err
	}
	next := func() int { p := ports[0]; ports = ports[1:]; return p }
	for _, nd := range n.Nodes {
		switch nd.Role {
		case RoleClient:
			nd.SocksPort = next()
		case RoleOnion:
		default:
			nd.ORPort = next()
		}
		if nd.Role == RoleAuthority {
			nd.DirPort = next()
		}
		nd.ControlPort = next()
		nd.Torrc = filepath.Join(nd.Dir, "torrc")
		if err := os.MkdirAll(nd.Dir, 0o700); err != nil {
			return nil, err
		}
	}

	// Keys.
	cfg.progress("keys: generating keys for %d authorities", cfg.Authorities)
	if err := makeKeys(ctx, n, tor, gencert); err != nil {
		return nil, err
	}
	tp := torrcParams{interval: cfg.VotingInterval, clientExtra: cfg.ClientExtra}
	for _, a := range n.Authorities() {
		n.DirAuthorities = append(n.DirAuthorities, dirAuthorityLine(a))
		tp.hsDirs = append(tp.hsDirs, "$"+a.Fingerprint)
	}
	for _, x := range n.Exits() {
		tp.exits = append(tp.exits, "$"+x.Fingerprint)
	}
	tp.dirAuthorities = n.DirAuthorities
	if fam := familyRelays(n); len(fam) == 2 {
		a, b := fam[0], fam[1]
		tp.family = map[string][]string{a.Name: {"$" + b.Fingerprint}, b.Name: {"$" + a.Fingerprint}}
	}
	if tp.onionTarget, err = onionTarget(n); err != nil {
		return nil, err
	}
	for _, nd := range n.Nodes {
		if err := os.WriteFile(nd.Torrc, []byte(torrc(nd, tp)), 0o600); err != nil {
			return nil, err
		}
	}
	if err := n.save(); err != nil {
		return nil, err
	}

	defer func() {
		if err != nil {
			if serr := n.stop(); serr != nil {
				err = fmt.Errorf("%w; %v", err, serr)
			}
			_ = n.save()
		}
	}()
	start := func(nd *Node) error {
		p, err := startTor(tor, nd.Torrc, nd.Dir, cfg.Detach)
		if err != nil {
			return err
		}
		nd.proc, nd.PID = p, p.cmd.Process.Pid
		return n.save()
	}

	cfg.progress("starting %d authorities, %d relays and %d exits in %s", cfg.Authorities, cfg.Relays, cfg.Exits, cfg.Dir)
	for _, nd := range relays {
		if err := start(nd); err != nil {
			return nil, err
		}
	}
	if err := waitConsensus(ctx, cfg, n, relays); err != nil {
		return nil, err
	}
	if err := n.save(); err != nil { // with the relays' fingerprints
		return nil, err
	}
	cfg.progress("client: starting")
	for _, c := range n.Clients() {
		if err := start(c); err != nil {
			return nil, err
		}
	}
	// The onion service publishes while the client bootstraps.
	var onion *onionWatch
	if n.Onion != nil {
		cfg.progress("onion: starting")
		if err := start(n.Onion); err != nil {
			return nil, err
		}
		if onion, err = watchOnion(ctx, n.Onion); err != nil {
			return nil, err
		}
		defer onion.close()
	}
	for _, c := range n.Clients() {
		if err := waitBootstrap(ctx, c, n.Nodes, cfg.progress); err != nil {
			return nil, err
		}
	}
	if onion != nil {
		if n.OnionAddress, err = onion.wait(ctx, n.Nodes, cfg.progress); err != nil {
			return nil, err
		}
		if err := reachOnion(ctx, n, cfg.progress); err != nil {
			return nil, err
		}
	}
	n.Ready = true
	n.BootstrapTime = time.Since(n.Started).Round(time.Millisecond)
	if err := n.save(); err != nil {
		return nil, err
	}
	cfg.progress("up: %d tor processes bootstrapped in %v", len(n.Nodes), n.BootstrapTime.Round(100*time.Millisecond))
	return n, nil
}

// makeKeys creates, in parallel, each authority's v3 keys (identity,
// signing key and certificate) with tor-gencert and its relay identity key
// with tor --list-fingerprint.
func makeKeys(ctx context.Context, n *Network, tor, gencert string) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	run := func(nd *Node, name string, stdin string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = nd.Dir
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("testnet: %s: %s %s: %v\n%s", nd.Name, filepath.Base(name), strings.Join(args, " "), err, out)
		}
		return nil
	}
	// Only the authorities' keys are needed up front (for the DirAuthority
	// lines), the family's (for MyFamily) and the exits' (the authorities
	// vote Exit for them alone); other relays make their own when they
	// start.
	for _, nd := range slices.Concat(n.Authorities(), familyRelays(n), n.Exits()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys := filepath.Join(nd.Dir, "keys")
			if err := os.MkdirAll(keys, 0o700); err != nil {
				fail(err)
				return
			}
			if nd.Role == RoleAuthority {
				cert := filepath.Join(keys, "authority_certificate")
				// An empty passphrase (a blank line on stdin) leaves the
				// identity key unencrypted; tor only needs the signing
				// key and the certificate.
				if err := run(nd, gencert, "\n", "--create-identity-key", "--passphrase-fd", "0", "-m", "12",
					"-a", fmt.Sprintf("127.0.0.1:%d", nd.DirPort),
					"-i", filepath.Join(keys, "authority_identity_key"),
					"-s", filepath.Join(keys, "authority_signing_key"),
					"-c", cert); err != nil {
					fail(err)
					return
				}
				fp, err := certFingerprint(cert)
				if err != nil {
					fail(fmt.Errorf("testnet: %s: %w", nd.Name, err))
					return
				}
				nd.V3Ident = fp
			}
			if err := run(nd, tor, "", "--quiet", "--ignore-missing-torrc", "-f", os.DevNull, "--defaults-torrc", os.DevNull,
				"--list-fingerprint", "--DataDirectory", nd.Dir, "--ORPort", "1", "--Nickname", nd.Name); err != nil {
				fail(err)
				return
			}
			if nd.Fingerprint = readFingerprint(nd.Dir); nd.Fingerprint == "" {
				fail(fmt.Errorf("testnet: %s: no fingerprint after tor --list-fingerprint", nd.Name))
			}
		}()
	}
	wg.Wait()
	return first
}

// familyRelays are the relays that declare each other in MyFamily: the
// last two middle relays, when there are at least three.
func familyRelays(n *Network) []*Node {
	rel := n.Relays()
	if len(rel) < 3 {
		return nil
	}
	return rel[len(rel)-2:]
}

// readFingerprint returns the identity fingerprint tor wrote in dir, or "".
func readFingerprint(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "fingerprint"))
	if f := strings.Fields(string(b)); len(f) == 2 && len(f[1]) == 40 {
		return f[1]
	}
	return ""
}

func certFingerprint(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if fp, ok := strings.CutPrefix(line, "fingerprint "); ok {
			return strings.TrimSpace(fp), nil
		}
	}
	return "", fmt.Errorf("no fingerprint in %s", path)
}

// checkAlive returns an error, with the log tail, for the first node in
// nodes whose process has exited.
func checkAlive(nodes []*Node) error {
	for _, nd := range nodes {
		if nd.PID != 0 && !nd.Alive() {
			how := "exited"
			if nd.proc != nil {
				<-nd.proc.done
				if nd.proc.err != nil {
					how = nd.proc.err.Error()
				}
			}
			return nodeError(nd, true, "tor %s", how)
		}
	}
	return nil
}

// runningRelays counts the routers in consensus file path that have the
// Running flag.
func runningRelays(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	count, inR := 0, false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "r "):
			inR = true
		case strings.HasPrefix(line, "s ") && inR:
			inR = false
			for _, fl := range strings.Fields(line)[1:] {
				if fl == "Running" {
					count++
				}
			}
		}
	}
	return count
}

// waitConsensus waits until every authority's consensus lists every relay
// (authorities included) as Running.
func waitConsensus(ctx context.Context, cfg *Config, n *Network, relays []*Node) error {
	auths := n.Authorities()
	last := -1
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := checkAlive(relays); err != nil {
			return err
		}
		for _, nd := range relays {
			if nd.Fingerprint == "" {
				nd.Fingerprint = readFingerprint(nd.Dir)
			}
		}
		least := len(relays)
		for _, a := range auths {
			least = min(least, runningRelays(filepath.Join(a.Dir, "cached-consensus")))
		}
		if least != last {
			cfg.progress("authorities: consensus lists %d/%d relays", least, len(relays))
			last = least
		}
		if least == len(relays) {
			return nil
		}
		select {
		case <-ctx.Done():
			if err := interrupted(ctx); err != nil {
				return err
			}
			return nodeError(auths[0], false, "consensus lists only %d/%d relays as Running: %v", least, len(relays), context.Cause(ctx))
		case <-tick.C:
		}
	}
}

var bootstrapRe = regexp.MustCompile(`Bootstrapped (\d+)%(.*)$`)

// bootstrapLine returns the last "Bootstrapped N% ..." message in the log
// at path and N, or "", -1.
func bootstrapLine(path string) (string, int) {
	f, err := os.Open(path)
	if err != nil {
		return "", -1
	}
	defer f.Close()
	msg, pct := "", -1
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m := bootstrapRe.FindStringSubmatch(sc.Text()); m != nil {
			var p int
			fmt.Sscan(m[1], &p)
			msg, pct = "Bootstrapped "+m[1]+"%"+m[2], p
		}
	}
	return msg, pct
}

// waitBootstrap waits until nd's notice log says "Bootstrapped 100%".
// It fails if nd or any of watch exits.
func waitBootstrap(ctx context.Context, nd *Node, watch []*Node, progress func(string, ...any)) error {
	last := ""
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		msg, pct := bootstrapLine(nd.LogPath())
		if msg != last && msg != "" {
			progress("%s: %s", nd.Name, msg)
			last = msg
		}
		if pct == 100 {
			return nil
		}
		if err := checkAlive(watch); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			if err := interrupted(ctx); err != nil {
				return err
			}
			return nodeError(nd, false, "did not bootstrap (last: %q): %v", last, context.Cause(ctx))
		case <-tick.C:
		}
	}
}
