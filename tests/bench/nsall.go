package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/torscript/torscript/ctl/ctltest"
)

// nsAllRounds is how often the ns-all measurement reads the relays in one
// torscript, and nsAllRuns how many torscripts it starts: a first read
// is one sample a process, and on a virtual machine one sample can be off
// by half.
const (
	nsAllRounds = 20
	nsAllRuns   = 5
)

// nsAll is measurement ns-all: tor.get_info("ns/all") and tor.routers()
// for 8,000 relays, end to end through Starlark: from the arrival of the
// script's GETINFO at the fake to the arrival of its next command, so each
// figure holds the reply's transfer, its reading and parsing, and the
// Starlark values made of it. tor.routers() reads tor's relays once (the
// runtime keeps the table until tor says it changed): its first call is
// the read (the fake has no consensus document, descriptors or
// microdescriptors, so the table comes from ns/all, with a round trip for
// each of those), the later ones use the table. The first reads are the
// median of nsAllRuns fresh torscripts.
func (b *bench) nsAll(r *Result) error {
	var firsts, routersFirsts, rounds []float64
	var faults int64
	faultsOK := true
	for range nsAllRuns {
		run, err := b.nsAllOnce(r)
		if err != nil {
			return err
		}
		firsts = append(firsts, run.first)
		routersFirsts = append(routersFirsts, run.routersFirst)
		rounds = append(rounds, run.rounds...)
		faults += run.faults
		faultsOK = faultsOK && run.faultsOK
	}
	slices.Sort(firsts)
	slices.Sort(routersFirsts)
	slices.Sort(rounds)
	r.Figures = []Figure{
		fig("get-info-p50", rounds[len(rounds)/2], "ms").atMost(20),
		fig("get-info-first", firsts[len(firsts)/2], "ms").atMost(20),
		fig("routers-first", routersFirsts[len(routersFirsts)/2], "ms").atMost(20),
		fig("get-info-first-max", firsts[len(firsts)-1], "ms"),
		fig("routers-first-max", routersFirsts[len(routersFirsts)-1], "ms"),
		fig("round-max", rounds[len(rounds)-1], "ms"),
	}
	if faultsOK {
		r.Figures = append(r.Figures, fig("page-faults", float64(faults)/nsAllRuns/nsAllRounds, "/round"))
	}
	if cost, err := pageFaultCost(); err == nil {
		r.Figures = append(r.Figures, fig("page-fault-cost", float64(cost.Nanoseconds())/1000, "µs"))
	}
	r.note("%d torscripts, each %d rounds of tor.get_info(\"ns/all\") then tor.routers() on an 8,000-relay ns/all (%d bytes); get-info-p50 is a later round (the get_info, and tor.routers() from the kept table); get-info-first the first get_info, and routers-first the first tor.routers(), which reads the table (ns/all, after the fake has answered the consensus, descriptor and microdescriptor keys empty): the median of the torscripts, and the slowest", nsAllRuns, nsAllRounds, len(ctltest.NsAll(8000)))
	r.note("page-faults: torscript's minor page faults over the whole run (start included), per round; page-fault-cost: what one costs this machine (64 MiB of fresh memory touched by the bench). A first tor.routers() writes the document's raw text, its table, the hex digests and the Starlark values into fresh memory, about 6.5 MB; at 10 µs or more a page, as on some virtual machines, that costs more than the parsing, and torscript has the kernel map it ahead (MADV_POPULATE_WRITE); later reads reuse memory the collector freed")
	return nil
}

// nsAllRun is what one torscript of ns-all measured, in milliseconds.
type nsAllRun struct {
	first, routersFirst float64
	rounds              []float64 // the later rounds
	faults              int64
	faultsOK            bool
}

// nsAllOnce runs the ns-all script in one torscript.
func (b *bench) nsAllOnce(r *Result) (run nsAllRun, err error) {
	s, err := b.launchWith("nsall.star", func(f *ctltest.FakeControlPort) {
		f.SetInfo("ns/all", ctltest.NsAll(8000))
	}, fmt.Sprint(nsAllRounds))
	if err != nil {
		return run, err
	}
	defer s.finish(r, &err)
	_, _, err = s.fake.WaitCommand(0, eventsTimeout, s.exited(), func(c ctltest.Command) bool {
		return c.Keyword() == "GETINFO" && c.HasArg("bench/done")
	})
	if err != nil {
		return run, fmt.Errorf("waiting for GETINFO bench/done: %w; commands seen: %s", err, summary(s.fake.Commands()))
	}
	faults, faultsErr := minorFaults(s.proc.Pid())
	run.faults, run.faultsOK = faults, faultsErr == nil
	// The script's own commands (its GETINFO ns/all and bench/done), and
	// the start of the table's read (the first command tor.routers()
	// sends).
	var asks []time.Time
	var tableRead time.Time
	cmds := s.fake.Commands()
	for i, c := range cmds {
		if c.Keyword() != "GETINFO" {
			continue
		}
		switch {
		case c.HasArg("dir/status-vote/current/consensus") && tableRead.IsZero():
			tableRead = c.At
		case c.HasArg("ns/all") && i > 0 && cmds[i-1].HasArg("dir/status-vote/current/consensus-microdesc"):
			// the table's own read of ns/all
		case c.HasArg("ns/all"), c.HasArg("bench/done"):
			asks = append(asks, c.At)
		}
	}
	if len(asks) != nsAllRounds+1 || tableRead.IsZero() {
		return run, fmt.Errorf("%d GETINFO ns/all of the script's, want %d, and a read of the router table: %v", len(asks)-1, nsAllRounds, !tableRead.IsZero())
	}
	run.first = ms(tableRead.Sub(asks[0]))
	run.routersFirst = ms(asks[1].Sub(tableRead))
	for i := 1; i < nsAllRounds; i++ {
		run.rounds = append(run.rounds, ms(asks[i+1].Sub(asks[i])))
	}
	return run, nil
}
