package main

import (
	"context"
	"fmt"
	"github.com/torscript/torscript/cmd/torscript/repl"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime"
	"github.com/torscript/torscript/runtime/owner"
	"github.com/torscript/torscript/runtime/sim"
)

// scriptFlags are the flags of the commands that run Starlark.
type scriptFlags struct {
	dryRun         bool
	quiet          bool   // policy decisions at debug, not info
	metrics        string // --metrics HOST:PORT
	maxSteps       uint64
	handlerTimeout time.Duration
	topLevel       time.Duration // --top-level-timeout
	noWait         bool
	allow          []string

	// The safety net (guardian.go).
	takeOver       bool
	maxMemory      string
	maxMemoryBytes int64
	noGuardian     bool
}

func (sf *scriptFlags) addFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&sf.dryRun, "dry-run", false, "call the stream policy and log its decisions, but let tor attach every stream")
	fl.BoolVar(&sf.quiet, "quiet", false, "log each policy decision at debug level, not info")
	fl.StringVar(&sf.metrics, "metrics", "", "serve Prometheus metrics at http://HOST:PORT/metrics (:PORT or PORT alone: 127.0.0.1)")
	fl.Uint64Var(&sf.maxSteps, "max-steps", 10_000_000, "Starlark steps one handler, timer or policy call may take")
	fl.DurationVar(&sf.handlerTimeout, "handler-timeout", 2*time.Second, "wall time one handler, timer or policy call may take")
	fl.DurationVar(&sf.topLevel, "top-level-timeout", 30*time.Second, "wall time the script's top level (and the modules it loads) may take")
	fl.BoolVar(&sf.noWait, "no-wait", false, "do not wait for tor to finish bootstrapping")
	addAllowFlag(cmd, &sf.allow)
	fl.BoolVar(&sf.takeOver, "take-over", false, "replace the torscript that holds this tor's stream policy (it is asked to stop, then killed) instead of refusing to start")
	fl.StringVar(&sf.maxMemory, "max-memory", "1GiB", "memory the interpreter may use (e.g. 512MiB, 2GiB; 0 for no limit); past it the guardian takes over")
	fl.BoolVar(&sf.noGuardian, "no-guardian", false, "run the script in this process, without a guardian process (then a kill -9 or out of memory leaves tor's changes to the next run or torscript repair)")
}

// addAllowFlag adds --allow, the user's grants to a script.
func addAllowFlag(cmd *cobra.Command, allow *[]string) {
	cmd.Flags().StringSliceVar(allow, "allow", nil, `let the script do what changes tor for everyone (repeat, or separate with commas):
SAVECONF, LOADCONF, TAKEOWNERSHIP, DROPGUARDS, DROPTIMEOUTS, POSTDESCRIPTOR,
SIGNAL:HALT, SIGNAL:SHUTDOWN, SIGNAL:DUMP, ADD_ONION:KEY (a key of its own),
SETCONF:Key (a key it did not declare with tor.require), SETCONF (any key),
load (load() outside the script's directory), net (tor.fetch and tor.connect:
streams of its own through tor's SocksPort), all`)
	cmd.RegisterFlagCompletionFunc("allow", completeGrants)
}

// runOptions are the inputs of `torscript run` and `torscript eval`.
type runOptions struct {
	f      *factory
	sf     scriptFlags
	file   string // run: the script
	source string // eval: the code
	args   []string
	json   bool   // eval: print the value as JSON
	hup    string // run: what SIGHUP does: auto, reload or exit
	glob   string // run: --control-glob
}

func newCmdRun(f *factory, runF func(context.Context, *runOptions) error) *cobra.Command {
	opts := &runOptions{f: f}
	cmd := &cobra.Command{
		Use:   "run FILE [-- ARGS...]",
		Short: "Run a Starlark script against tor",
		Long: `Run a Starlark script against tor. Its top level runs first; if it registers
handlers (tor.on), timers (tor.every, tor.after) or a stream policy
(tor.policy), torscript then runs them until exit(), Ctrl-C or SIGTERM.
When it ends, streams the policy still holds go back to tor (or are closed,
per on_error), __LeaveStreamsUnattached gets its earlier value and the
script's address mappings are removed. The script sees its arguments as
argv (argv[0] is FILE).`,
		Example: `  torscript run examples/per_domain.star
  torscript run --dry-run examples/pin_exit.star -- 127.0.0.2 exit1
  torscript run --allow net examples/exit_probe.star -- http://127.0.0.1:8080/
  torscript run --launch examples/monitor.star`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeFirstStar,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.file, opts.args = args[0], args[1:]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runRun(cmd.Context(), opts)
		},
	}
	opts.sf.addFlags(cmd)
	cmd.Flags().StringVar(&opts.glob, "control-glob", "", `drive every tor whose control socket matches, e.g. 'unix:/run/tor-instances/*/control' (with --control: those too)`)
	cmd.Flags().StringVar(&opts.hup, "hup", "auto", `what SIGHUP does: reload (run FILE's tests, then the new version takes over if they pass and its top level runs cleanly), exit (end cleanly, as when a terminal closes), auto (reload without a terminal, as a service runs; exit on one)`)
	return cmd
}

func newCmdEval(f *factory, runF func(context.Context, *runOptions) error) *cobra.Command {
	opts := &runOptions{f: f}
	cmd := &cobra.Command{
		Use:   "eval 'CODE' [-- ARGS...]",
		Short: "Evaluate a Starlark expression or statements against tor",
		Long: `Evaluate Starlark code against tor. An expression's value is printed (unless
it is None); statements run like a script, so handlers they register run
until Ctrl-C.`,
		Example: `  torscript eval 'tor.get_info("version")'
  torscript eval '[c.id for c in tor.circuits() if c.built]'
  torscript eval --json 'tor.circuits(status = "BUILT")'
  torscript eval 'tor.on("circ", print)'`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.source, opts.args = args[0], args[1:]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runRun(cmd.Context(), opts)
		},
	}
	opts.sf.addFlags(cmd)
	cmd.Flags().BoolVar(&opts.json, "json", false, `print the value as one JSON object: {"time", "value"}, records as objects of their fields`)
	return cmd
}

func runRun(ctx context.Context, opts *runOptions) error {
	f := opts.f
	if err := runtime.ParseGrants(opts.sf.allow); err != nil {
		return usageError{err}
	}
	var src []byte
	if opts.file != "" {
		var err error
		if src, err = os.ReadFile(opts.file); err != nil {
			return usageError{err}
		}
	}
	mem, err := parseSize(opts.sf.maxMemory)
	if err != nil {
		return usageError{fmt.Errorf("--max-memory %w", err)}
	}
	opts.sf.maxMemoryBytes = mem
	if opts.file != "" && !isGuardian() {
		addrs, err := fleetAddrs(f.conn.controls, opts.glob)
		if err != nil {
			return err
		}
		if len(addrs) > 1 {
			return runFleet(ctx, opts, src, addrs)
		}
		if len(addrs) == 1 {
			f.conn.control, f.conn.controls = addrs[0], addrs
		}
	}
	var own *runtime.Ownership
	var onWedged func(string, time.Duration)
	switch {
	case isGuardian():
		return guardianRun(f, opts.sf.maxMemory)
	case guardSupported && !opts.sf.noGuardian:
		script := opts.file
		if script == "" {
			script = "<eval>"
		}
		if own, onWedged, err = startGuardian(ctx, f, script, &opts.sf); err != nil {
			return err
		}
		if err := limitMemory(mem); err != nil {
			f.log.Warn("cannot limit the interpreter's memory", "err", err)
		}
	default:
		script := opts.file
		if script == "" {
			script = "<eval>"
		}
		own = &runtime.Ownership{Holder: owner.Holder{Script: script}, TakeOver: opts.sf.takeOver}
		if err := limitMemory(mem); err != nil {
			f.log.Warn("cannot limit memory", "err", err)
		}
	}
	ropts := runtime.Options{
		Connect:         func(ctx context.Context) (*ctl.Conn, error) { return f.connect(ctx) },
		Logger:          f.log,
		Stdout:          f.out,
		MaxSteps:        opts.sf.maxSteps,
		HandlerTimeout:  opts.sf.handlerTimeout,
		TopLevelTimeout: opts.sf.topLevel,
		DryRun:          opts.sf.dryRun,
		QuietDecisions:  opts.sf.quiet,
		Instance:        f.instanceName(),
		Args:            opts.args,
		Allow:           opts.sf.allow,
		Owner:           own,
		OnWedged:        onWedged,
		FormatValue:     repl.Format, // eval prints as the REPL does, whole
	}
	if opts.json {
		ropts.FormatValue = valueJSON
	}
	if opts.sf.metrics != "" {
		if ropts.Metrics, err = serveMetrics(ctx, f, opts.sf.metrics); err != nil {
			return err
		}
	}
	if !opts.sf.noWait {
		ropts.Bootstrap = f.errOut
	}
	r := runtime.New(ropts)
	if opts.file != "" {
		reload, err := hupReloads(opts.hup, f)
		if err != nil {
			return err
		}
		if reload {
			f.setHUP(func() { reloadScript(ctx, f, []*runtime.Runtime{r}, opts) })
			defer f.setHUP(nil)
		}
		return r.Run(ctx, opts.file, src)
	}
	return r.Eval(ctx, opts.source)
}

// checkOptions are the inputs of `torscript check`.
type checkOptions struct {
	f     *factory
	files []string
}

func newCmdCheck(f *factory, runF func(*checkOptions) error) *cobra.Command {
	opts := &checkOptions{f: f}
	return &cobra.Command{
		Use:   "check FILE...",
		Short: "Parse and resolve scripts without running them",
		Long: `Parse each script and every module it loads, and resolve every name, without
connecting to tor. Errors are printed as FILE:LINE:COL: message and make
the exit status non-zero. For a script that passes, it says what the
script asks for: the grants and config keys it declares with tor.require,
and the builtins it calls that may need a grant (--allow).`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeStar,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.files = args
			if runF != nil {
				return runF(opts)
			}
			return checkRun(opts)
		},
	}
}

// writeRequirements says what a script that compiled asks for, the
// modules it loads included, and where it reaches tor in a way only run
// can judge.
func writeRequirements(w io.Writer, req runtime.Requirements) {
	if len(req.Commands) > 0 {
		fmt.Fprintf(w, "  declares grants: %s (run it with --allow %s)\n", strings.Join(req.Commands, ", "), strings.Join(req.Commands, " --allow "))
	}
	if len(req.Config) > 0 {
		fmt.Fprintf(w, "  declares config keys it sets: %s\n", strings.Join(req.Config, ", "))
		if len(req.Kept) > 0 {
			fmt.Fprintf(w, "  keeps after it ends (keep=True): %s; the others get their values back\n", strings.Join(req.Kept, ", "))
		} else {
			fmt.Fprintf(w, "  and gives them their values back when it ends\n")
		}
	}
	for _, u := range req.Uses {
		fmt.Fprintf(w, "  calls %s\n", u)
	}
	if len(req.Dynamic) > 0 {
		fmt.Fprintln(w, "  reaches tor's builtins in ways check cannot follow, so it may need any grant; run will refuse what it was not allowed, there:")
		for _, d := range req.Dynamic {
			fmt.Fprintf(w, "    %s\n", d)
		}
	}
	if len(req.Commands)+len(req.Config)+len(req.Uses)+len(req.Dynamic) == 0 {
		fmt.Fprintln(w, "  asks for nothing beyond reading tor's state, events, a stream policy and address mappings")
	}
}

func checkRun(opts *checkOptions) error {
	failed := false
	for _, file := range opts.files {
		src, err := os.ReadFile(file)
		var req runtime.Requirements
		if err == nil {
			ro := runtime.Options{Logger: opts.f.log}
			if strings.HasSuffix(file, "_test.star") {
				// A test file also sees what torscript test gives it.
				ro.ExtraGlobals = sim.Globals()
				if ro.ExtraGlobalAttrs, err = sim.GlobalAttrs(); err != nil {
					return err
				}
			}
			req, err = runtime.CheckRequirements(file, src, ro)
		}
		if err != nil {
			fmt.Fprintln(opts.f.errOut, err)
			failed = true
			continue
		}
		fmt.Fprintf(opts.f.out, "%s: ok\n", file)
		writeRequirements(opts.f.out, req)
	}
	if failed {
		return silentError{exitError}
	}
	return nil
}
