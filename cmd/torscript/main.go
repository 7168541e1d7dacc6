// Command torscript drives a Tor daemon through its control port.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	goruntime "runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime"
)

// Exit codes, mapped from errors in exitCode and nowhere else. A script's
// exit(n) is status n.
type exitCodeT int

const (
	exitOK       exitCodeT = 0
	exitError    exitCodeT = 1 // anything not below
	exitUsage    exitCodeT = 2 // bad flags or arguments
	exitTorError exitCodeT = 3 // tor answered a command with an error reply
	exitConnect  exitCodeT = 4 // no control port, or authentication failed
)

func main() {
	tune()
	os.Exit(int(mainRun()))
}

// tune sets the Go runtime for an event loop, unless GOMAXPROCS or GOGC
// say otherwise. One processor: the script runs on one goroutine, and the
// hand-off from the control connection's reader to it then needs no
// thread wake-up (on a 2-core machine closed-loop attach latency fell from
// about 100 µs to 67 µs at the median). A larger GC target: events are
// short-lived garbage, and collecting less often raised handler
// throughput from about 0.9 to 1.6 million events a second; the live heap
// is small, so memory stays low; a soft memory limit that follows the
// live heap keeps a flood from growing the process (heaplimit.go).
// GOMEMLIMIT replaces it.
func tune() {
	if os.Getenv("GOMAXPROCS") == "" {
		goruntime.GOMAXPROCS(1)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		followHeap()
	}
}

func mainRun() exitCodeT {
	// TORSCRIPT_CPUPROFILE=FILE writes a CPU profile to FILE.PID, for the
	// benchmarks.
	if path := os.Getenv("TORSCRIPT_CPUPROFILE"); path != "" {
		if pf, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid())); err == nil {
			pprof.StartCPUProfile(pf)
			defer func() { pprof.StopCPUProfile(); pf.Close() }()
		}
	}
	// TORSCRIPT_MEMPROFILE=FILE writes a heap profile to FILE.PID at exit.
	if path := os.Getenv("TORSCRIPT_MEMPROFILE"); path != "" {
		defer func() {
			if pf, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid())); err == nil {
				pprof.Lookup("heap").WriteTo(pf, 0)
				pf.Close()
			}
		}()
	}
	// SIGHUP ends a run cleanly too (a closed terminal must not kill it
	// without undoing what it changed), unless the command reloads on it
	// (run FILE without a terminal: a service).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f := newFactory(os.Stdin, os.Stdout, os.Stderr)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			if reload := f.onHUP(); reload != nil {
				reload()
				continue
			}
			stop()
		}
	}()
	root := newCmdRoot(f)
	root.SetArgs(os.Args[1:])
	cmd, err := root.ExecuteContextC(ctx)
	err = asUsage(err)
	// The one place an error that ended torscript is printed. A script's
	// comes before the log's last lines (the cleanup flushes them), as
	// what the script printed does; torscript's own after, with the
	// usage line when it was bad usage.
	msg, script := errorText(err)
	if script {
		fmt.Fprintln(os.Stderr, msg)
	}
	f.cleanup()
	if !script && msg != "" {
		fmt.Fprintln(os.Stderr, msg)
		if errors.As(err, new(usageError)) && cmd != nil {
			line := cmd.UseLine()
			if !cmd.HasParent() {
				line = "torscript COMMAND [ARGS] [flags]"
			}
			fmt.Fprintf(os.Stderr, "usage: %s\n(torscript %s--help for more)\n", line, subcommandPath(cmd))
		}
	}
	return exitCode(err)
}

// asUsage makes cobra's own usage errors (an unknown command) usage
// errors: exit status 2, with the usage line.
func asUsage(err error) error {
	if err == nil || errors.As(err, new(usageError)) {
		return err
	}
	if strings.HasPrefix(err.Error(), "unknown command ") {
		return usageError{err}
	}
	return err
}

// subcommandPath is "run " for torscript run, "" for torscript itself.
func subcommandPath(cmd *cobra.Command) string {
	if p := strings.TrimPrefix(strings.TrimPrefix(cmd.CommandPath(), "torscript"), " "); p != "" {
		return p + " "
	}
	return ""
}

// usageArgs makes the argument checks of cmd and its subcommands return
// usage errors.
func usageArgs(cmd *cobra.Command) {
	if check := cmd.Args; check != nil {
		cmd.Args = func(c *cobra.Command, args []string) error {
			if err := check(c, args); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		usageArgs(sub)
	}
}

// withoutConnFlags leaves the connection flags (--control, --cookie, ...)
// out of the help of cmd and its subcommands, which do not connect to
// tor; --log-level stays.
func withoutConnFlags(cmd *cobra.Command) {
	help := cmd.HelpFunc()
	cmd.SetHelpFunc(func(c *cobra.Command, args []string) {
		for _, name := range []string{"control", "cookie", "password-file", "trace", "launch", "launch-torrc"} {
			if fl := c.Root().PersistentFlags().Lookup(name); fl != nil {
				fl.Hidden = true
			}
		}
		help(c, args)
	})
}

// buildDetails is what torscript version says beyond its first line: the
// module and its version, the commit (and its time) when the build
// recorded it, the Go toolchain and the platform.
func buildDetails() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "module   %s %s\n", bi.Main.Path, bi.Main.Version)
	var rev, at, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	switch {
	case rev != "":
		fmt.Fprintf(&b, "commit   %s %s", rev, at)
		if modified == "true" {
			b.WriteString(" (with uncommitted changes)")
		}
		b.WriteString("\n")
	default:
		b.WriteString("commit   not recorded (built outside git, or with -buildvcs=false)\n")
	}
	fmt.Fprintf(&b, "go       %s %s/%s\n", bi.GoVersion, goruntime.GOOS, goruntime.GOARCH)
	return b.String()
}

// version is torscript's version: the module's, or the commit it was
// built from.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if (v == "" || v == "(devel)") && rev != "" {
		v = "devel-" + rev[:min(12, len(rev))] + dirty
	}
	if v == "" {
		v = "(devel)"
	}
	return v + " (" + bi.GoVersion + ")"
}

func newCmdVersion(f *factory) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print torscript's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(f.out, "torscript "+version())
			fmt.Fprint(f.out, buildDetails())
			return nil
		},
	}
}

// errorText is how torscript reports the error that ended it: a script's
// failure (script is true) as the script's own error (file:line:col, the
// backtrace), anything else after "torscript: "; "" for an exit() or a
// failure already reported.
func errorText(err error) (msg string, script bool) {
	var (
		se        silentError
		exit      *runtime.ExitError
		scriptErr *runtime.ScriptError
		boot      *runtime.BootstrapError
	)
	switch {
	case err == nil, errors.As(err, &se), errors.As(err, &exit):
		return "", false
	case errors.As(err, &scriptErr), errors.As(err, &boot):
		return runtime.FormatError(err), true
	case err.Error() == "":
		return "", false
	}
	return "torscript: " + err.Error(), false
}

// usageError marks errors in how torscript was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// connectError marks a failure to reach or authenticate to tor.
type connectError struct{ err error }

func (e connectError) Error() string { return e.err.Error() }
func (e connectError) Unwrap() error { return e.err }

// silentError carries an exit code for a failure already reported.
type silentError struct{ code exitCodeT }

func (e silentError) Error() string { return "" }

// exitCode is the exit status for the error a command returned: the
// one place that decides it.
func exitCode(err error) exitCodeT {
	var (
		ue   usageError
		ce   connectError
		rce  *runtime.ConnectError
		se   silentError
		exit *runtime.ExitError
		te   *ctl.Error
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &se):
		return se.code
	case errors.As(err, &exit):
		return exitCodeT(exit.Code)
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ce), errors.As(err, &rce):
		return exitConnect
	case errors.As(err, &te):
		return exitTorError
	}
	return exitError
}

func newCmdRoot(f *factory) *cobra.Command {
	root := &cobra.Command{
		Use:           "torscript",
		Short:         "Drive a Tor daemon through its control port",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if len(f.conn.controls) > 1 && cmd.Name() != "run" {
				return usageError{fmt.Errorf("--control given %d times: only run drives several tors", len(f.conn.controls))}
			}
			if c := os.Getenv(guardControlEnv); c != "" {
				// A guardian of one tor of a fleet.
				f.conn.controls, f.conn.noEnvCookie = []string{c}, true
			}
			return f.setup()
		},
	}
	root.SetIn(f.in)
	root.SetOut(f.out)
	root.SetErr(f.errOut)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	f.conn.addFlags(root)
	root.AddCommand(
		newCmdRun(f, nil),
		newCmdEval(f, nil),
		newCmdCheck(f, nil),
		newCmdRaw(f, nil),
		newCmdEvents(f, nil),
		newCmdRepl(f, nil),
		newCmdTest(f, nil),
		newCmdTestnet(f, nil),
		newCmdRepair(f, nil),
		newCmdStatus(f, nil),
		newCmdVersion(f),
		newCmdReplay(f),
		newCmdUnit(f),
		newCmdMan(f),
	)
	root.Version = version()
	root.SetVersionTemplate("torscript {{.Version}}\n")
	usageArgs(root)
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		switch c.Name() {
		case "check", "test", "testnet", "version", "completion", "unit", "man", "replay":
			withoutConnFlags(c)
		}
	}
	return root
}
