package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/torscript/torscript/runtime"
)

// testOptions are the inputs of `torscript test`.
type testOptions struct {
	f       *factory
	files   []string
	verbose bool
	timeout time.Duration
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
backtrace, and makes the exit status 1.`,
		Example: `  torscript test examples/per_domain_test.star
  torscript test -v stdlib/*_test.star`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.files = args
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return testRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.verbose, "verbose", "v", false, "also list the tests that pass")
	cmd.Flags().DurationVar(&opts.timeout, "handler-timeout", 2*time.Second, "wall time one handler, timer or policy call may take")
	return cmd
}

func testRun(ctx context.Context, opts *testOptions) error {
	f := opts.f
	failed, passed := 0, 0
	for _, file := range opts.files {
		src, err := os.ReadFile(file)
		if err != nil {
			return usageError{err}
		}
		results, err := runtime.RunTests(ctx, file, src, runtime.Options{Logger: f.log, HandlerTimeout: opts.timeout})
		if err != nil {
			fmt.Fprintln(f.errOut, err)
			failed++
			continue
		}
		n := runtime.WriteTestReport(f.out, file, results, opts.verbose)
		failed += n
		passed += len(results) - n
	}
	if failed > 0 {
		fmt.Fprintf(f.out, "FAIL: %d failed, %d passed\n", failed, passed)
		return silentError{exitError}
	}
	fmt.Fprintf(f.out, "ok: %d passed\n", passed)
	return nil
}
