package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/torscript/torscript/ctl/ctltest"
)

// nsAllRounds is how often the ns-all measurement reads the relays.
const nsAllRounds = 20

// nsAll is measurement ns-all: tor.get_info("ns/all") and tor.routers()
// for 8,000 relays, end to end through Starlark: from the arrival of the
// script's GETINFO at the fake to the arrival of its next command, so each
// figure holds the reply's transfer, its reading and parsing, and the
// Starlark values made of it. tor.routers() reads tor's relays once (the
// runtime keeps the table until tor says it changed): its first call is
// the read (the fake has no consensus document, descriptors or
// microdescriptors, so the table comes from ns/all, with a round trip for
// each of those), the later ones use the table.
func (b *bench) nsAll(r *Result) (err error) {
	s, err := b.launchWith("nsall.star", func(f *ctltest.FakeControlPort) {
		f.SetInfo("ns/all", ctltest.NsAll(8000))
	}, fmt.Sprint(nsAllRounds))
	if err != nil {
		return err
	}
	defer s.finish(r, &err)
	_, _, err = s.fake.WaitCommand(0, eventsTimeout, s.exited(), func(c ctltest.Command) bool {
		return c.Keyword() == "GETINFO" && c.HasArg("bench/done")
	})
	if err != nil {
		return fmt.Errorf("waiting for GETINFO bench/done: %w; commands seen: %s", err, summary(s.fake.Commands()))
	}
	faults, faultsErr := minorFaults(s.proc.Pid())
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
		return fmt.Errorf("%d GETINFO ns/all of the script's, want %d, and a read of the router table: %v", len(asks)-1, nsAllRounds, !tableRead.IsZero())
	}
	first := ms(tableRead.Sub(asks[0]))
	routersFirst := ms(asks[1].Sub(tableRead))
	var rounds []float64
	for i := 1; i < nsAllRounds; i++ {
		rounds = append(rounds, ms(asks[i+1].Sub(asks[i])))
	}
	slices.Sort(rounds)
	r.Figures = []Figure{
		fig("get-info-p50", rounds[len(rounds)/2], "ms").atMost(20),
		fig("get-info-first", first, "ms").atMost(20),
		fig("routers-first", routersFirst, "ms").atMost(20),
		fig("round-max", rounds[len(rounds)-1], "ms"),
	}
	if faultsErr == nil {
		r.Figures = append(r.Figures, fig("page-faults", float64(faults)/nsAllRounds, "/round"))
	}
	if cost, err := pageFaultCost(); err == nil {
		r.Figures = append(r.Figures, fig("page-fault-cost", float64(cost.Nanoseconds())/1000, "µs"))
	}
	r.note("%d rounds of tor.get_info(\"ns/all\") then tor.routers() on an 8,000-relay ns/all (%d bytes); get-info-p50 is a later round (the get_info, and tor.routers() from the kept table); get-info-first the first get_info; routers-first the first tor.routers(), which reads the table (ns/all, after the fake has answered the consensus, descriptor and microdescriptor keys empty)", nsAllRounds, len(ctltest.NsAll(8000)))
	r.note("page-faults: torscript's minor page faults over the whole run (start included), per round; page-fault-cost: what one costs this machine (64 MiB of fresh memory touched by the bench). A first read touches fresh memory for the document's raw text, its data and the read buffer (about four times the 2.7 MB), which at 10 µs or more a page, as on some virtual machines, costs more than the parsing; later reads reuse memory the collector freed")
	return nil
}
