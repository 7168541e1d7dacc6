package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/torscript/torscript/cmd/torscript/repl"
	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime"
	"github.com/torscript/torscript/runtime/owner"
)

// replOptions are the inputs of `torscript repl`.
type replOptions struct {
	f  *factory
	sf scriptFlags
	// allowGiven: --allow was given. Without it the REPL, being the user
	// at the keyboard, has every grant.
	allowGiven bool
}

func newCmdRepl(f *factory, runF func(context.Context, *replOptions) error) *cobra.Command {
	opts := &replOptions{f: f}
	cmd := &cobra.Command{
		Use:   "repl",
		Short: "Explore a live tor at a Starlark prompt",
		Long: `Explore a live tor at a Starlark prompt. Expressions print their value (also
bound to _), statements run, and the tor module is the one scripts use:
handlers, timers and a stream policy set at the prompt run between inputs,
and what they print appears above the line being typed. A line that starts
with a control keyword (GETINFO version) is sent to tor as typed. Tab
completes names, attributes, GETINFO keys, config, event and signal names
and live circuit and stream ids. :help lists the REPL's own commands.

What you type has every grant (see torscript run --help) unless --allow
is given, which then holds the session, and scripts it :loads, to those
grants alone.

With input that is not a terminal (torscript repl < file) there is no
prompt and no line editing: the output is the same, byte for byte, without
escape codes. Ctrl-D (or the end of the input) leaves, undoing what a
policy loaded at the prompt changed in tor.`,
		Example: `  torscript repl
  echo 'tor.get_info("version")' | torscript repl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.allowGiven = cmd.Flags().Changed("allow")
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return replRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&opts.sf.dryRun, "dry-run", false, "call a stream policy and log its decisions, but let tor attach every stream")
	fl.BoolVar(&opts.sf.quiet, "quiet", false, "log each policy decision at debug level, not info")
	fl.StringVar(&opts.sf.metrics, "metrics", "", "serve Prometheus metrics at http://HOST:PORT/metrics (:PORT or PORT alone: 127.0.0.1)")
	fl.Uint64Var(&opts.sf.maxSteps, "max-steps", 10_000_000, "Starlark steps one handler, timer or policy call may take")
	fl.DurationVar(&opts.sf.handlerTimeout, "handler-timeout", 2*time.Second, "wall time one handler, timer or policy call may take")
	addAllowFlag(cmd, &opts.sf.allow)
	fl.BoolVar(&opts.sf.takeOver, "take-over", false, "replace the torscript that holds this tor's stream policy when a policy is loaded, instead of refusing")
	fl.StringVar(&opts.sf.maxMemory, "max-memory", "1GiB", "memory the session may use (e.g. 512MiB, 2GiB; 0 for no limit); past it the guardian takes over")
	fl.BoolVar(&opts.sf.noGuardian, "no-guardian", false, "run without a guardian process")
	return cmd
}

// replRun checks the flags and runs the REPL (package repl) over a
// session opened as run opens a script's: with a guardian, a memory
// limit and the grants given.
func replRun(ctx context.Context, opts *replOptions) error {
	f := opts.f
	if isGuardian() {
		return guardianRun(f, opts.sf.maxMemory)
	}
	if err := runtime.ParseGrants(opts.sf.allow); err != nil {
		return usageError{err}
	}
	mem, err := parseSize(opts.sf.maxMemory)
	if err != nil {
		return usageError{fmt.Errorf("--max-memory %w", err)}
	}
	allow := opts.sf.allow
	if !opts.allowGiven {
		allow = []string{"all"}
	}
	open := func(ctx context.Context, st repl.Streams) (*runtime.Session, error) {
		if st.Interactive {
			// The log goes above the prompt too, in the terminal's
			// form (st.ErrOut is readline's writer, not the file).
			f.log = f.boundedLog(st.ErrOut, true)
		}
		// A guardian, as for run: a session killed, out of memory or
		// stuck in a call that cannot be cancelled leaves tor as it
		// found it.
		own := &runtime.Ownership{Holder: owner.Holder{Script: "<repl>"}, TakeOver: opts.sf.takeOver}
		var onWedged func(string, time.Duration)
		if guardSupported && !opts.sf.noGuardian {
			var err error
			if own, onWedged, err = startGuardian(ctx, f, "<repl>", &opts.sf); err != nil {
				return nil, err
			}
		}
		if err := limitMemory(mem); err != nil {
			f.log.Warn("cannot limit memory", "err", err)
		}
		var metrics *runtime.Metrics
		if opts.sf.metrics != "" {
			var err error
			if metrics, err = serveMetrics(ctx, f, opts.sf.metrics); err != nil {
				return nil, err
			}
		}
		return runtime.New(runtime.Options{
			Metrics:         metrics,
			Connect:         func(ctx context.Context) (*ctl.Conn, error) { return f.connect(ctx) },
			Logger:          f.log,
			Stdout:          st.Out,
			MaxSteps:        opts.sf.maxSteps,
			HandlerTimeout:  opts.sf.handlerTimeout,
			TopLevelTimeout: opts.sf.topLevel,
			DryRun:          opts.sf.dryRun,
			QuietDecisions:  opts.sf.quiet,
			OnEvent:         st.OnEvent,
			Allow:           allow,
			Owner:           own,
			OnWedged:        onWedged,
		}).Open(ctx)
	}
	return repl.Run(ctx, repl.Options{In: f.in, Out: f.out, ErrOut: f.errOut, Log: f.log, Open: open})
}
