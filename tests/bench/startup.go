package main

import (
	"fmt"
	"github.com/torscript/torscript/ctl/ctltest"
	"slices"
	"time"
)

// startup is measurement startup: torscript is started runs times, each
// against a fresh fake control port, and timed from cmd.Start to the
// arrival of its first command and of the script's GETINFO version.
func (b *bench) startup(r *Result) error {
	var first, script latencies
	versions := 0 // runs in which GETINFO version came more than once
	for run := range b.cfg.startupRuns {
		f, v, n, err := b.startupOnce(r)
		if err != nil {
			return fmt.Errorf("run %d: %w", run+1, err)
		}
		first = append(first, f)
		script = append(script, v)
		if n > 1 {
			versions++
		}
	}
	slices.Sort(first)
	slices.Sort(script)
	r.Figures = []Figure{
		fig("script-p50", ms(script.percentile(50)), "ms").atMost(20),
		fig("script-max", ms(script.percentile(100)), "ms"),
		fig("first-p50", ms(first.percentile(50)), "ms"),
		fig("first-max", ms(first.percentile(100)), "ms"),
	}
	r.note("%d runs; 'first' is cmd.Start to the arrival of the first command (PROTOCOLINFO), 'script' to the arrival of the script's GETINFO version", b.cfg.startupRuns)
	if versions > 0 {
		r.note("in %d runs GETINFO version arrived more than once; the first was timed", versions)
	}
	return nil
}

// startupOnce runs torscript once and returns the times to its first
// command and to the first GETINFO version, and how many GETINFO version
// it sent.
func (b *bench) startupOnce(r *Result) (first, version time.Duration, versions int, err error) {
	s, err := b.launch("startup.star")
	if err != nil {
		return 0, 0, 0, err
	}
	defer s.finish(r, &err)
	_, c, err := s.fake.WaitCommand(0, readyTimeout, s.exited(), func(ctltest.Command) bool { return true })
	if err != nil {
		return 0, 0, 0, fmt.Errorf("waiting for the first command: %w", err)
	}
	first = c.At.Sub(s.proc.started)
	_, c, err = s.fake.WaitCommand(0, readyTimeout, s.exited(), func(c ctltest.Command) bool {
		return c.Keyword() == "GETINFO" && c.HasArg("version")
	})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("waiting for GETINFO version: %w; commands seen: %s", err, summary(s.fake.Commands()))
	}
	version = c.At.Sub(s.proc.started)
	// Give a second GETINFO version (torscript's own, say) a moment to
	// show up, so that the note above is right.
	time.Sleep(20 * time.Millisecond)
	for _, c := range s.fake.Commands() {
		if c.Keyword() == "GETINFO" && c.HasArg("version") {
			versions++
		}
	}
	return first, version, versions, nil
}

// idleRSS is measurement idle-rss.
func (b *bench) idleRSS(r *Result) (err error) {
	s, err := b.launch("policy.star")
	if err != nil {
		return err
	}
	defer s.finish(r, &err)
	if _, err := waitPolicyReady(s.fake, s.exited()); err != nil {
		return err
	}
	cpu0, cpuErr := cpuTime(s.proc.Pid())
	time.Sleep(2 * time.Second)
	cpu1, err := cpuTime(s.proc.Pid())
	if err != nil {
		cpuErr = err
	}
	// What the two take from the machine: their proportional set sizes
	// added up, the binary's pages they share counted once. VmRSS added
	// up counts those pages twice (once in each process).
	pss, err := memMiB(s.proc.Pid(), "Pss")
	if err != nil {
		return err
	}
	r.Figures = []Figure{fig("pss", pss, "MiB").atMost(25)}
	if rss, err := memMiB(s.proc.Pid(), "VmRSS"); err == nil {
		r.Figures = append(r.Figures, fig("rss-sum", rss, "MiB"))
	}
	if rss, err := memMiB1(s.proc.Pid(), "VmRSS"); err == nil {
		r.Figures = append(r.Figures, fig("rss-interp", rss, "MiB"))
	}
	// What is torscript's own: anonymous memory.
	if anon, err := memMiB(s.proc.Pid(), "RssAnon"); err == nil {
		r.Figures = append(r.Figures, fig("rss-anon", anon, "MiB"))
	}
	if cpuErr == nil {
		r.Figures = append(r.Figures, fig("idle-cpu", ms(cpu1-cpu0)/2, "ms/s"))
	}
	r.note("memory 2 s after the policy script was ready: pss is the proportional set size of torscript and its guardian added up, what the two take from the machine (a page they share, the binary's, counted once); rss-sum their VmRSS added up, which counts the binary's pages once in each (3.5 MiB more a process since client_golang, protobuf and cobra's doc are linked in); rss-interp the VmRSS of the process started (the one a user sees in ps); rss-anon their anonymous memory alone; idle-cpu the CPU time the two used in those 2 s, from schedstat, to the nanosecond (the first of the 2 s still include the end of the start)")
	return nil
}
