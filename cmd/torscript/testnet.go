package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/torscript/torscript/cmd/torscript/testnet"
)

// testnetOptions are the inputs of `torscript testnet up|down|status|env`.
type testnetOptions struct {
	f      *factory
	action string // "up", "down", "status" or "env"
	dir    string

	// up
	authorities, relays, exits int
	clients                    int
	torPath                    string
	timeout                    time.Duration
	basePort                   int
	quiet                      bool

	// status
	json bool
}

// newCmdTestnet returns the "testnet" command: a private Tor network on
// 127.0.0.1 made of real tor daemons, for trying scripts and for tests.
func newCmdTestnet(f *factory, runF func(context.Context, *testnetOptions) error) *cobra.Command {
	opts := &testnetOptions{f: f}
	cmd := &cobra.Command{
		Use:   "testnet",
		Short: "Run a private Tor network on 127.0.0.1 (real tor daemons) for testing",
		Long: `Run a private Tor network on 127.0.0.1 made of real tor daemons: directory
authorities, middle relays, exits that reach 127.0.0.0/8 (and refuse
192.0.2.0/24), a client with a ControlPort (cookie authentication) and a
SocksPort, and a v3 onion service whose page is TORSCRIPT_ONION_URL, and a
web page on 127.0.0.1 that every exit reaches, TORSCRIPT_WEB_URL. Needs tor
and tor-gencert (apt-get install -y tor).

  torscript testnet up              # start it; prints export lines
  eval "$(torscript testnet env)"   # set TORSCRIPT_CONTROL, _COOKIE, _SOCKS, _ONION_URL, _WEB_URL
  torscript testnet status
  torscript testnet down`,
		// Without a subcommand: the help. An unknown one is bad usage
		// (cobra would print the help and exit 0).
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %q; its commands are up, down, status, env and torrc", args[0], cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.PersistentFlags().StringVar(&opts.dir, "dir", testnet.DefaultDir(), "state and data directory of the network")
	action := func(name string) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			opts.action = name
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return testnetRun(cmd.Context(), opts)
		}
	}
	up := &cobra.Command{
		Use:   "up",
		Short: "Start the network and wait until its client has bootstrapped",
		Long: `Start the network in the background and wait until its client has
bootstrapped (usually 10-30 s). Progress goes to stderr; the export lines for the
client go to stdout, so eval "$(torscript testnet up)" also works. The daemons
keep running after this command returns; stop them with "torscript testnet down".`,
		Args: cobra.NoArgs,
		RunE: action("up"),
	}
	fl := up.Flags()
	fl.IntVar(&opts.authorities, "authorities", 3, "number of directory authorities")
	fl.IntVar(&opts.relays, "relays", 3, "number of middle relays")
	fl.IntVar(&opts.exits, "exits", 2, "number of exit relays")
	fl.IntVar(&opts.clients, "clients", 1, "number of client tors (more than one: a fleet for one torscript run; testnet env exports TORSCRIPT_FLEET)")
	fl.StringVar(&opts.torPath, "tor", "", "path of the tor binary (default: tor from PATH)")
	fl.DurationVar(&opts.timeout, "timeout", 3*time.Minute, "give up if the client has not bootstrapped by then")
	fl.IntVar(&opts.basePort, "base-port", 0, "use consecutive ports from this one (default: free ports chosen by the kernel)")
	fl.BoolVarP(&opts.quiet, "quiet", "q", false, "do not show progress")
	cmd.AddCommand(up,
		&cobra.Command{
			Use:   "down",
			Short: "Stop the network's tor processes and remove its directory",
			Args:  cobra.NoArgs,
			RunE:  action("down"),
		},
		statusCmd(&cobra.Command{
			Use:   "status",
			Short: "Show the network's processes; exit non-zero if it is not up",
			Args:  cobra.NoArgs,
			RunE:  action("status"),
		}, opts),
		&cobra.Command{
			Use:   "env",
			Short: `Print export lines for the client: eval "$(torscript testnet env)"`,
			Args:  cobra.NoArgs,
			RunE:  action("env"),
		},
		&cobra.Command{
			Use:    "web",
			Short:  "Serve the network's web page (testnet up starts it)",
			Args:   cobra.NoArgs,
			Hidden: true,
			RunE:   action("web"),
		},
		&cobra.Command{
			Use:   "torrc",
			Short: "Print the torrc lines that make another tor a client of the network: torscript run --launch --launch-torrc <(torscript testnet torrc) ...",
			Args:  cobra.NoArgs,
			RunE:  action("torrc"),
		},
	)
	return cmd
}

func testnetRun(ctx context.Context, opts *testnetOptions) error {
	switch opts.action {
	case "up":
		return testnetUp(ctx, opts)
	case "down":
		return testnetDown(opts)
	case "status":
		return testnetStatus(opts)
	case "env":
		return testnetEnv(opts)
	case "web":
		return testnetWeb(ctx, opts.dir)
	case "torrc":
		n, err := testnetLoad(opts.dir)
		if err != nil {
			return err
		}
		for _, l := range n.ClientTorrc() {
			fmt.Fprintln(opts.f.out, l)
		}
		return nil
	}
	return fmt.Errorf("testnet: no action %q", opts.action)
}

// dirFlag is the --dir flag to repeat in the commands printed, "" for the
// default directory.
func (opts *testnetOptions) dirFlag() string {
	if opts.dir == testnet.DefaultDir() {
		return ""
	}
	return " --dir " + testnetShellQuote(opts.dir)
}

func testnetUp(ctx context.Context, opts *testnetOptions) error {
	stderr := opts.f.errOut
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	cfg := testnet.Config{
		Dir:         opts.dir,
		Authorities: opts.authorities,
		Relays:      opts.relays,
		Exits:       opts.exits,
		Clients:     opts.clients,
		TorPath:     opts.torPath,
		Timeout:     opts.timeout,
		BasePort:    opts.basePort,
		Detach:      true,
	}
	if !opts.quiet {
		cfg.Progress = func(msg string) {
			fmt.Fprintf(stderr, "testnet: %5.1fs %s\n", time.Since(start).Seconds(), msg)
		}
	}
	n, err := testnet.Up(ctx, cfg)
	if err != nil {
		return err
	}
	if _, err := startWeb(n.Dir); err != nil {
		n.Down()
		return err
	}
	testnetPrintEnv(opts.f.out, n)
	d := opts.dirFlag()
	fmt.Fprintf(stderr, `
testnet: %d tor processes running in %s (bootstrapped in %.1fs)
Use the client from a shell:
  eval "$(torscript testnet env%s)"
  curl --socks5-hostname "$TORSCRIPT_SOCKS" "$TORSCRIPT_WEB_URL"     # a page on 127.0.0.1, through an exit
  curl --socks5-hostname "$TORSCRIPT_SOCKS" "$TORSCRIPT_ONION_URL"   # the network's onion service
Status and stop:
  torscript testnet status%s
  torscript testnet down%s
`, len(n.Nodes), n.Dir, n.BootstrapTime.Seconds(), d, d, d)
	return nil
}

func testnetDown(opts *testnetOptions) error {
	n, err := testnet.Load(opts.dir)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(opts.f.errOut, "testnet: no network in %s\n", opts.dir)
		return nil
	}
	if err != nil {
		return err
	}
	stopWeb(n.Dir)
	if err := n.Down(); err != nil {
		return err
	}
	fmt.Fprintf(opts.f.errOut, "testnet: stopped %d tor processes, removed %s\n", len(n.Nodes), n.Dir)
	return nil
}

// statusCmd adds status's own flag to cmd.
func statusCmd(cmd *cobra.Command, opts *testnetOptions) *cobra.Command {
	cmd.Flags().BoolVar(&opts.json, "json", false, `print one JSON object: {"time", "dir", "up", "client", "nodes", "web"}`)
	return cmd
}

// statusJSON is testnet status --json.
type statusJSON struct {
	Time   string           `json:"time"`
	Dir    string           `json:"dir"`
	Up     bool             `json:"up"`
	Client clientStatusJSON `json:"client"`
	Nodes  []nodeStatusJSON `json:"nodes"`
	Web    *webStatusJSON   `json:"web,omitempty"`
}

type clientStatusJSON struct {
	State   string `json:"state"`
	Control string `json:"control"`
	Socks   string `json:"socks"`
	Cookie  string `json:"cookie"`
}

type nodeStatusJSON struct {
	Name        string `json:"name"`
	Role        string `json:"role"`
	PID         int    `json:"pid"`
	Alive       bool   `json:"alive"`
	RSSKB       int    `json:"rss_kb"`
	ORPort      int    `json:"or_port,omitempty"`
	DirPort     int    `json:"dir_port,omitempty"`
	ControlPort int    `json:"control_port,omitempty"`
	SocksPort   int    `json:"socks_port,omitempty"`
}

type webStatusJSON struct {
	URL   string `json:"url"`
	PID   int    `json:"pid"`
	Alive bool   `json:"alive"`
}

func testnetStatusJSON(opts *testnetOptions, n *testnet.Network) error {
	st := statusJSON{
		Time: time.Now().UTC().Format(time.RFC3339Nano),
		Dir:  n.Dir,
		Up:   n.IsUp(),
		Client: clientStatusJSON{State: testnetReadiness(n), Control: n.ControlAddr(),
			Socks: n.SocksAddr(), Cookie: n.CookiePath()},
	}
	for _, s := range n.Status() {
		st.Nodes = append(st.Nodes, nodeStatusJSON{s.Name, s.Role, s.PID, s.Alive, s.RSSKB,
			s.ORPort, s.DirPort, s.ControlPort, s.SocksPort})
	}
	if web, ok := readWeb(n.Dir); ok {
		st.Web = &webStatusJSON{URL: web.URL, PID: web.PID, Alive: web.alive()}
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.f.out, "%s\n", b)
	if !st.Up {
		return silentError{code: exitError}
	}
	return nil
}

func testnetStatus(opts *testnetOptions) error {
	n, err := testnetLoad(opts.dir)
	if err != nil {
		return err
	}
	if opts.json {
		return testnetStatusJSON(opts, n)
	}
	out := opts.f.out
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tROLE\tPID\tALIVE\tRSS\tPORTS")
	alive, rss := 0, 0
	for _, s := range n.Status() {
		mem := "-"
		if s.Alive {
			alive++
			rss += s.RSSKB
			mem = fmt.Sprintf("%.1fM", float64(s.RSSKB)/1024)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%v\t%s\t%s\n", s.Name, s.Role, s.PID, s.Alive, mem, s.Ports())
	}
	w.Flush()
	fmt.Fprintf(out, "\n%d/%d alive, %.1f MB resident, client %s (control %s, socks %s)\n",
		alive, len(n.Nodes), float64(rss)/1024, testnetReadiness(n), n.ControlAddr(), n.SocksAddr())
	if web, ok := readWeb(n.Dir); ok {
		state := "running"
		if !web.alive() {
			state = "not running"
		}
		fmt.Fprintf(out, "web page %s (pid %d) %s\n", web.URL, web.PID, state)
	}
	if !n.IsUp() {
		return fmt.Errorf("testnet: network in %s is not up (%d/%d processes alive, client %s)",
			n.Dir, alive, len(n.Nodes), testnetReadiness(n))
	}
	return nil
}

func testnetEnv(opts *testnetOptions) error {
	n, err := testnetLoad(opts.dir)
	if err != nil {
		return err
	}
	if !n.IsUp() {
		fmt.Fprintf(opts.f.errOut, "testnet: warning: the network in %s is not up (see torscript testnet status%s)\n", n.Dir, opts.dirFlag())
	}
	testnetPrintEnv(opts.f.out, n)
	return nil
}

func testnetLoad(dir string) (*testnet.Network, error) {
	n, err := testnet.Load(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("testnet: no network in %s (start one with: torscript testnet up)", dir)
	}
	return n, err
}

func testnetReadiness(n *testnet.Network) string {
	switch {
	case n.Ready:
		return "bootstrapped"
	case n.Client.Alive():
		return "bootstrapping"
	default:
		return "not running"
	}
}

// testnetPrintEnv prints the network's environment as shell export lines.
func testnetPrintEnv(w io.Writer, n *testnet.Network) {
	env := n.Env()
	if web, ok := readWeb(n.Dir); ok && web.alive() {
		env = append(env, "TORSCRIPT_WEB_URL="+web.URL)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(w, "export %s=%s\n", k, testnetShellQuote(v))
	}
}

// testnetShellQuote quotes s for a POSIX shell if it needs quoting.
func testnetShellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,+@%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
