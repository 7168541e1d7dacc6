package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/torscript/torscript/runtime"
	"github.com/torscript/torscript/runtime/sim"
)

// hupReloads reads --hup: whether SIGHUP reloads the script rather than
// ending the run.
func hupReloads(mode string, f *factory) (bool, error) {
	switch mode {
	case "reload":
		return true, nil
	case "exit":
		return false, nil
	case "auto", "":
		// On a terminal SIGHUP says it went away: end cleanly.
		return !isTerminal(f.in) && !isTerminal(f.errOut), nil
	}
	return false, usageError{fmt.Errorf("--hup %q: want auto, reload or exit", mode)}
}

// reloading serializes reloads: a second SIGHUP waits for the first.
var reloading sync.Mutex

// reloadScript reloads the script of a run (SIGHUP): it reads the file
// again, runs its tests (FILE_test.star beside it) when it has some, and
// only if they pass hands it to the runtime, whose policy changes only if
// the new top level runs cleanly. Whatever stops it is logged, and the
// old script runs on.
func reloadScript(ctx context.Context, f *factory, rs []*runtime.Runtime, opts *runOptions) {
	reloading.Lock()
	defer reloading.Unlock()
	file := opts.file
	log := f.log.With("script", file)
	log.Info("SIGHUP: reloading the script")
	src, err := os.ReadFile(file)
	if err != nil {
		log.Error("reload refused; the running script goes on", "err", err)
		return
	}
	if err := runtime.Check(file, src, runtime.Options{}); err != nil {
		log.Error("reload refused: the new version does not check; the running script goes on", "err", err)
		return
	}
	testFile := strings.TrimSuffix(file, ".star") + "_test.star"
	if tsrc, err := os.ReadFile(testFile); err == nil {
		res, err := sim.RunTests(ctx, testFile, tsrc, runtime.Options{MaxSteps: opts.sf.maxSteps})
		if err != nil {
			log.Error("reload refused: its tests could not run; the running script goes on", "tests", testFile, "err", err)
			return
		}
		var failed []string
		var first string
		for _, t := range res {
			if !t.Passed() {
				if failed == nil {
					first, _, _ = strings.Cut(strings.Join(t.Failures, "\n"), "\n")
				}
				failed = append(failed, t.Name)
			}
		}
		if len(failed) > 0 {
			log.Error("reload refused: its tests fail; the running script goes on", "tests", testFile,
				"failed", strings.Join(failed, ","), "first_failure", first)
			return
		}
		log.Info("the new version's tests pass", "tests", testFile, "passed", len(res))
	}
	for _, r := range rs {
		rlog := log
		if len(rs) > 1 {
			rlog = log.With("tor", r.Instance())
		}
		if err := r.Reload(ctx, file, src); err != nil {
			rlog.Error("reload refused: the new version's top level failed; the running script goes on", "err", err)
			continue
		}
		rlog.Info("script reloaded")
	}
}
