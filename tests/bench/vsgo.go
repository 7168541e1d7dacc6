package main

import (
	"cmp"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/torscript/torscript/ctl/ctltest"
)

// vsGoRounds is how many blocks of closed-loop streams vs-go takes of
// each controller, in turn.
const vsGoRounds = 10

// vsGoPairs is how many pairs of fresh processes (a torscript, a Go
// controller) vs-go measures: it reports the pair of the median p50
// ratio.
const vsGoPairs = 3

// vsGo is measurement vs-go: torscript's attach latency over a Go
// controller's (baseline-go-proc's), both closed loops as attach-closed,
// each against its own fake control port, measured in turns: a block of
// streams through torscript, then one through the Go controller, and
// again, vsGoRounds times. Both samples then span the same minute, and a
// stretch in which the machine is slower (see the machine measurement)
// falls on both alike; measured one after the other, the ratio took the
// difference between two minutes of this machine's. It does so with
// vsGoPairs pairs of fresh processes and reports the pair of the median
// p50 ratio, with the lowest and highest: on this project's machines a
// fresh process runs the same work up to a third faster or slower than
// the one before it (a microbenchmark in one process too), so the ratio
// of one pair is one draw of that spread.
//
// With -pin (on two CPUs or more) the bench, with its fake control ports,
// and both controllers run on one CPU, the last. Left to the scheduler, a
// controller and its fake are on one CPU for some blocks and on two for
// others, and a round trip between two CPUs costs either controller about
// 5 µs more on this project's machines (a wake-up across CPUs): the p50
// ratio of one pair of processes ranged over 1.08–1.52 × that way, and
// over 1.12–1.26 × pinned, with the Go controller's p50 at its lowest (10
// to 13 µs, against 16 to 20 µs between two CPUs), so the ratio is the
// least diluted by what the round trip costs both.
func (b *bench) vsGo(r *Result) error {
	var pairs []vsGoPair
	for range vsGoPairs {
		p, err := b.vsGoOnce(r)
		if err != nil {
			return err
		}
		pairs = append(pairs, p)
	}
	slices.SortFunc(pairs, func(a, b vsGoPair) int { return cmp.Compare(a.ratio(), b.ratio()) })
	med := pairs[len(pairs)/2]
	r.Figures = vsGoFigures(med.ts, med.gs)
	r.Figures = append(r.Figures,
		fig("p50-ratio-min", pairs[0].ratio(), "×"),
		fig("p50-ratio-max", pairs[len(pairs)-1].ratio(), "×"))
	if med.cpuOK {
		r.Figures = append(r.Figures,
			fig("torscript-cpu", us(med.tCPU)/float64(med.n), "µs/attach"),
			fig("go-cpu", us(med.gCPU)/float64(med.n), "µs/attach"))
	}
	r.note("torscript (policy.star) and the Go controller of baseline-go-proc, each in its own process against its own fake, closed loops as attach-closed taken in turns: %d blocks of %d streams each, after %d warm-up streams each, in %d pairs of fresh processes; the figures are the pair of the median p50 ratio (p50-ratio-min and -max the others'); the ratios are torscript's p50 and p99 over the Go controller's; the exit status follows them", vsGoRounds, max(1, b.cfg.closedN/vsGoRounds), b.cfg.warmup, len(pairs))
	if b.pin {
		r.note("the bench (its fake control ports) and both controllers on CPU %d (-pin=false: anywhere)", runtime.NumCPU()-1)
	}
	return nil
}

// vsGoPair is what one pair of fresh processes measured: the sorted
// latencies of torscript (ts) and the Go controller (gs), and the CPU time
// each took for its n streams.
type vsGoPair struct {
	ts, gs     latencies
	tCPU, gCPU time.Duration
	n          int
	cpuOK      bool
}

func (p vsGoPair) ratio() float64 {
	return float64(p.ts.percentile(50)) / float64(p.gs.percentile(50))
}

func (b *bench) vsGoOnce(r *Result) (pair vsGoPair, err error) {
	if b.pin {
		// The bench (its fake control ports) and both controllers on
		// one CPU: see vsGo.
		cpu := []int{runtime.NumCPU() - 1}
		restore, err := pinThreads(cpu)
		if err != nil {
			return pair, fmt.Errorf("pinning the bench to CPU %d: %w", cpu[0], err)
		}
		defer restore()
		b.cpus = cpu
		defer func() { b.cpus = nil }()
	}
	s, err := b.launch("policy.star")
	if err != nil {
		return pair, err
	}
	defer s.finish(r, &err)
	g, err := b.startGoController()
	if err != nil {
		return pair, err
	}
	defer g.fake.Close()
	stopGo := func(err error) error {
		if serr := g.stop(); serr != nil && err == nil {
			err = fmt.Errorf("the Go controller: %w", serr)
		}
		return err
	}
	if _, err := waitPolicyReady(s.fake, s.exited()); err != nil {
		return pair, stopGo(err)
	}
	if _, _, err := g.fake.WaitCommand(0, readyTimeout, g.proc.exited, func(c ctltest.Command) bool {
		return c.Keyword() == "SETEVENTS" && c.HasArg("STREAM")
	}); err != nil {
		return pair, stopGo(fmt.Errorf("the Go controller: waiting for SETEVENTS STREAM: %w", err))
	}
	block := max(1, b.cfg.closedN/vsGoRounds)
	// The stream IDs continue from one block to the next on each fake.
	run := func(f *ctltest.FakeControlPort, abort <-chan struct{}, next *int, n int) (latencies, error) {
		lat, _, err := closedLoop(f, abort, *next, n, false)
		*next += n
		return lat, err
	}
	tNext, gNext := 1, 1
	if _, err := run(s.fake, s.exited(), &tNext, b.cfg.warmup); err != nil {
		return pair, stopGo(fmt.Errorf("torscript: warm-up: %w", err))
	}
	if _, err := run(g.fake, g.proc.exited, &gNext, b.cfg.warmup); err != nil {
		return pair, stopGo(fmt.Errorf("the Go controller: warm-up: %w", err))
	}
	var ts, gs latencies
	// The CPU time each controller took in its blocks (torscript's with
	// its guardian's): where the latencies part, the work each does a
	// stream says whether it is torscript's own.
	var tCPU, gCPU time.Duration
	cpuOK := true
	timed := func(pid int, cpu *time.Duration, f func() error) error {
		c0, err0 := cpuTime(pid)
		err := f()
		c1, err1 := cpuTime(pid)
		if err0 != nil || err1 != nil {
			cpuOK = false
		}
		*cpu += c1 - c0
		return err
	}
	for range vsGoRounds {
		err := timed(s.proc.Pid(), &tCPU, func() error {
			lat, err := run(s.fake, s.exited(), &tNext, block)
			ts = append(ts, lat...)
			return err
		})
		if err != nil {
			return pair, stopGo(fmt.Errorf("torscript: %w", err))
		}
		if err := timed(g.proc.Pid(), &gCPU, func() error {
			lat, err := run(g.fake, g.proc.exited, &gNext, block)
			gs = append(gs, lat...)
			return err
		}); err != nil {
			return pair, stopGo(fmt.Errorf("the Go controller: %w", err))
		}
	}
	if err := stopGo(nil); err != nil {
		return pair, err
	}
	slices.Sort(ts)
	slices.Sort(gs)
	return vsGoPair{ts: ts, gs: gs, tCPU: tCPU, gCPU: gCPU, n: vsGoRounds * block, cpuOK: cpuOK}, nil
}

// vsGoFigures are vs-go's figures from the sorted latencies of torscript
// (ts) and the Go controller (gs).
func vsGoFigures(ts, gs latencies) []Figure {
	return []Figure{
		fig("p50-ratio", float64(ts.percentile(50))/float64(gs.percentile(50)), "×").atMost(1.3),
		fig("p99-ratio", float64(ts.percentile(99))/float64(gs.percentile(99)), "×").atMost(2),
		fig("torscript-p50", us(ts.percentile(50)), "µs"),
		fig("go-p50", us(gs.percentile(50)), "µs"),
		fig("torscript-p99", us(ts.percentile(99)), "µs"),
		fig("go-p99", us(gs.percentile(99)), "µs"),
	}
}
