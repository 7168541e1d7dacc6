package main

import (
	"context"
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

// newCmdTestnet returns the "testnet" command: a private Tor network on
// 127.0.0.1 made of real tor daemons, for trying scripts and for tests.
func newCmdTestnet() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "testnet",
		Short: "Run a private Tor network on 127.0.0.1 (real tor daemons) for testing",
		Long: `Run a private Tor network on 127.0.0.1 made of real tor daemons: directory
authorities, middle relays, exits that accept 127.0.0.0/8, a client with a
ControlPort (cookie authentication) and a SocksPort, and a v3 onion service
whose page is TORSCRIPT_ONION_URL. Needs tor and tor-gencert
(apt-get install -y tor).

  torscript testnet up              # start it; prints export lines
  eval "$(torscript testnet env)"   # set TORSCRIPT_CONTROL, _COOKIE, _SOCKS, _ONION_URL
  torscript testnet status
  torscript testnet down`,
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", testnet.DefaultDir(), "state and data directory of the network")

	dirFlag := func() string {
		if dir == testnet.DefaultDir() {
			return ""
		}
		return " --dir " + testnetShellQuote(dir)
	}

	// up
	var (
		auths, relays, exits int
		torPath              string
		timeout              time.Duration
		basePort             int
		quiet                bool
	)
	up := &cobra.Command{
		Use:   "up",
		Short: "Start the network and wait until its client has bootstrapped",
		Long: `Start the network in the background and wait until its client has
bootstrapped (usually 10-30 s). Progress goes to stderr; the export lines for the
client go to stdout, so eval "$(torscript testnet up)" also works. The daemons
keep running after this command returns; stop them with "torscript testnet down".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			stderr := cmd.ErrOrStderr()
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			start := time.Now()
			cfg := testnet.Config{
				Dir:         dir,
				Authorities: auths,
				Relays:      relays,
				Exits:       exits,
				TorPath:     torPath,
				Timeout:     timeout,
				BasePort:    basePort,
				Detach:      true,
			}
			if !quiet {
				cfg.Progress = func(msg string) {
					fmt.Fprintf(stderr, "testnet: %5.1fs %s\n", time.Since(start).Seconds(), msg)
				}
			}
			n, err := testnet.Up(ctx, cfg)
			if err != nil {
				return err
			}
			testnetPrintEnv(cmd.OutOrStdout(), n)
			fmt.Fprintf(stderr, `
testnet: %d tor processes running in %s (bootstrapped in %.1fs)
Use the client from a shell:
  eval "$(torscript testnet env%s)"
Status and stop:
  torscript testnet status%s
  torscript testnet down%s
`, len(n.Nodes), n.Dir, n.BootstrapTime.Seconds(), dirFlag(), dirFlag(), dirFlag())
			return nil
		},
	}
	up.Flags().IntVar(&auths, "authorities", 3, "number of directory authorities")
	up.Flags().IntVar(&relays, "relays", 3, "number of middle relays")
	up.Flags().IntVar(&exits, "exits", 2, "number of exit relays")
	up.Flags().StringVar(&torPath, "tor", "", "path of the tor binary (default: tor from PATH)")
	up.Flags().DurationVar(&timeout, "timeout", 3*time.Minute, "give up if the client has not bootstrapped by then")
	up.Flags().IntVar(&basePort, "base-port", 0, "use consecutive ports from this one (default: free ports chosen by the kernel)")
	up.Flags().BoolVarP(&quiet, "quiet", "q", false, "do not show progress")

	// down
	down := &cobra.Command{
		Use:   "down",
		Short: "Stop the network's tor processes and remove its directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			n, err := testnet.Load(dir)
			if errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintf(cmd.ErrOrStderr(), "testnet: no network in %s\n", dir)
				return nil
			}
			if err != nil {
				return err
			}
			if err := n.Down(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "testnet: stopped %d tor processes, removed %s\n", len(n.Nodes), n.Dir)
			return nil
		},
	}

	// status
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the network's processes; exit non-zero if it is not up",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			n, err := testnetLoad(dir)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
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
			fmt.Fprintf(cmd.OutOrStdout(), "\n%d/%d alive, %.1f MB resident, client %s (control %s, socks %s)\n",
				alive, len(n.Nodes), float64(rss)/1024, testnetReadiness(n), n.ControlAddr(), n.SocksAddr())
			if !n.IsUp() {
				return fmt.Errorf("testnet: network in %s is not up (%d/%d processes alive, client %s)",
					n.Dir, alive, len(n.Nodes), testnetReadiness(n))
			}
			return nil
		},
	}

	// env
	env := &cobra.Command{
		Use:   "env",
		Short: `Print export lines for the client: eval "$(torscript testnet env)"`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			n, err := testnetLoad(dir)
			if err != nil {
				return err
			}
			if !n.IsUp() {
				fmt.Fprintf(cmd.ErrOrStderr(), "testnet: warning: the network in %s is not up (see torscript testnet status%s)\n", n.Dir, dirFlag())
			}
			testnetPrintEnv(cmd.OutOrStdout(), n)
			return nil
		},
	}

	cmd.AddCommand(up, down, status, env)
	return cmd
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
	for _, kv := range n.Env() {
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
