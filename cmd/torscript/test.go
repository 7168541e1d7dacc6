package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/torscript/torscript/runtime"
	"github.com/torscript/torscript/runtime/sim"
)

// testOptions are the inputs of `torscript test`.
type testOptions struct {
	f              *factory
	files          []string
	verbose        bool
	handlerTimeout time.Duration
	timeout        time.Duration // per test
	maxSteps       uint64
}

func newCmdTest(f *factory, runF func(context.Context, *testOptions) error) *cobra.Command {
	opts := &testOptions{f: f}
	cmd := &cobra.Command{
		Use:   "test FILE_test.star...",
		Short: "Run a script's tests offline, against a simulated tor",
		Long: `Run the test_* functions of each file, each against a fresh simulated tor
(no tor is needed): the test makes streams and circuits happen with sim.*,
runs the script under test with sim.run("script.star"), and checks the
commands it sent with sim.expect_attach, sim.expect_close, ... and
assert.*. A failure is printed as FILE:LINE:COL: message, with its
backtrace, and makes the exit status 1.

Each test (the file's top level and the test function) may run for
--timeout and take --max-steps Starlark steps; one that overruns fails,
naming the line where it was stopped, and the next test runs. Ctrl-C or
SIGTERM stops the run at once, even in a test that never ends: it prints
the results so far and "interrupted", and exits with status 1.`,
		Example: `  torscript test examples/per_domain_test.star
  torscript test -v stdlib/*_test.star`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeStar,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.files = args
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return testRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&opts.verbose, "verbose", "v", false, "also list the tests that pass")
	fl.DurationVar(&opts.handlerTimeout, "handler-timeout", 2*time.Second, "wall time one handler, timer or policy call may take")
	fl.DurationVar(&opts.timeout, "timeout", 10*time.Second, "wall time one test may take")
	fl.Uint64Var(&opts.maxSteps, "max-steps", 10_000_000, "Starlark steps one test, and one handler, timer or policy call in it, may take")
	return cmd
}

func testRun(ctx context.Context, opts *testOptions) error {
	f := opts.f
	failed, passed := 0, 0
	ropts := runtime.Options{Logger: f.log, HandlerTimeout: opts.handlerTimeout, TopLevelTimeout: opts.timeout, MaxSteps: opts.maxSteps}
	for _, file := range opts.files {
		src, err := os.ReadFile(file)
		if err != nil {
			return usageError{err}
		}
		results, err := sim.RunTests(ctx, file, src, ropts)
		n := sim.WriteTestReport(f.out, file, results, opts.verbose)
		failed += n
		passed += len(results) - n
		if ctx.Err() != nil {
			fmt.Fprintf(f.out, "FAIL: interrupted (%d failed, %d passed)\n", failed, passed)
			return silentError{exitError}
		}
		if errors.Is(err, sim.ErrNoTests) {
			fmt.Fprintf(f.out, "%s: no test_ functions, nothing run\n", file)
			continue
		}
		if err != nil {
			fmt.Fprintln(f.errOut, err)
			failed++
			continue
		}
	}
	if failed > 0 {
		fmt.Fprintf(f.out, "FAIL: %d failed, %d passed\n", failed, passed)
		return silentError{exitError}
	}
	fmt.Fprintf(f.out, "ok: %d passed\n", passed)
	return nil
}
