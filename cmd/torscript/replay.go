package main

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

	"github.com/torscript/torscript/runtime"
	"github.com/torscript/torscript/runtime/sim"
)

// replayOptions are the inputs of `torscript replay`.
type replayOptions struct {
	f     *factory
	diff  bool
	files []string // SCRIPT TRACE, or OLD NEW TRACE with --diff
	args  []string // the scripts' argv after their path
	show  bool     // --output: what the scripts printed and logged
}

func newCmdReplay(f *factory) *cobra.Command {
	opts := &replayOptions{f: f}
	cmd := &cobra.Command{
		Use:   "replay SCRIPT TRACE [-- ARGS...] | replay --diff OLD NEW TRACE [-- ARGS...]",
		Short: "Run a policy on a recorded transcript (--trace) and print its decisions, or where two policies differ",
		Long: `Run a script against the simulated tor answering as the traced one did (its
consensus, descriptors, guards and settings, and the circuit ids of its
replies; see sim.run(..., trace=)), feed it the transcript's events, and
print what it decided about each stream: the ATTACHSTREAM, CLOSESTREAM and
REDIRECTSTREAM it sent. Nothing reaches a real tor.

With --diff, run OLD and NEW on the same transcript and print, stream by
stream, only those whose first decision differs (what the transcript says
happened to a stream afterwards followed the traced run's decision); the
exit status is 1 when some do, 0 when none (as diff's). Use it before
putting a new policy live.

Transcripts come from torscript run --trace FILE: they hold every command
and reply (AUTHENTICATE's secret is scrubbed, ADD_ONION keys too) and every
event, destinations included, so keep them like logs of user traffic:
rotate them (a new FILE per run, or logrotate with copytruncate) and
delete them once compared.`,
		Example: `  torscript run --trace run.trace examples/first_policy.star -- 127.0.0.2 exit1
  torscript replay --diff examples/first_policy.star new_policy.star run.trace -- 127.0.0.2 exit1`,
		Args: func(cmd *cobra.Command, args []string) error {
			files := args
			if i := cmd.ArgsLenAtDash(); i >= 0 {
				files = args[:i]
			}
			want := 2
			if opts.diff {
				want = 3
			}
			if len(files) != want {
				return usageError{fmt.Errorf("replay: want %d files before --, got %d", want, len(files))}
			}
			return nil
		},
		ValidArgsFunction: completeStar,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.files = args
			if i := cmd.ArgsLenAtDash(); i >= 0 {
				opts.files, opts.args = args[:i], args[i:]
			}
			return replayRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.diff, "diff", false, "compare two scripts: print only the streams they decide differently (exit 1 if any)")
	cmd.Flags().BoolVar(&opts.show, "output", false, "also print what the scripts printed and logged (warnings and errors)")
	return cmd
}

func replayRun(ctx context.Context, opts *replayOptions) error {
	out := opts.f.out
	trace := opts.files[len(opts.files)-1]
	scripts := opts.files[:len(opts.files)-1]
	var results []*sim.StreamDecisions
	for _, s := range scripts {
		var sink io.Writer = io.Discard
		if opts.show {
			sink = opts.f.errOut
		}
		d, err := sim.Decide(ctx, s, opts.args, trace, sink, runtime.Options{})
		if err != nil {
			return fmt.Errorf("%s on %s: %w", s, trace, err)
		}
		results = append(results, d)
	}
	if !opts.diff {
		d := results[0]
		for _, id := range d.Streams {
			fmt.Fprintf(out, "stream %s to %s: %s\n", id, d.Target[id], sim.Describe(d.Sent[id]))
		}
		return nil
	}
	// A stream's first decision is compared: what happened to it after
	// that in the transcript (detached, retried, closed) followed the
	// traced run's decision, not the other script's.
	old, new := results[0], results[1]
	first := func(sent []string) []string { return sent[:min(1, len(sent))] }
	differ := 0
	for _, id := range old.Streams {
		a, b := first(old.Sent[id]), first(new.Sent[id])
		if slices.Equal(a, b) {
			continue
		}
		differ++
		fmt.Fprintf(out, "stream %s to %s\n  %s: %s\n  %s: %s\n", id, old.Target[id],
			scripts[0], sim.Describe(a), scripts[1], sim.Describe(b))
	}
	fmt.Fprintf(opts.f.errOut, "%d of %d streams decided differently\n", differ, len(old.Streams))
	if differ > 0 {
		return silentError{code: exitError}
	}
	return nil
}
