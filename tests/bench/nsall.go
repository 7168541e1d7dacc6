package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/torscript/torscript/ctl/ctltest"
)

// nsAllRounds is how often the ns-all measurement reads the relays.
const nsAllRounds = 7

// nsAll is measurement ns-all: tor.get_info("ns/all") and tor.routers()
// for 8,000 relays, end to end through Starlark: from the arrival of the
// script's GETINFO ns/all at the fake to the arrival of its next command,
// so each figure holds the reply's transfer, its reading and parsing, and
// the Starlark values made of it.
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
	var asks []time.Time
	for _, c := range s.fake.Commands() {
		if c.Keyword() == "GETINFO" && (c.HasArg("ns/all") || c.HasArg("bench/done")) {
			asks = append(asks, c.At)
		}
	}
	if len(asks) != 2*nsAllRounds+1 {
		return fmt.Errorf("%d GETINFO ns/all, want %d", len(asks)-1, 2*nsAllRounds)
	}
	var getInfo, routers []float64
	for i := 0; i < nsAllRounds; i++ {
		getInfo = append(getInfo, ms(asks[2*i+1].Sub(asks[2*i])))
		routers = append(routers, ms(asks[2*i+2].Sub(asks[2*i+1])))
	}
	first := getInfo[0]
	slices.Sort(getInfo)
	slices.Sort(routers)
	r.Figures = []Figure{
		fig("get-info-p50", getInfo[len(getInfo)/2], "ms").atMost(20),
		fig("get-info-first", first, "ms").atMost(20),
		fig("routers-p50", routers[len(routers)/2], "ms").atMost(20),
		fig("routers-max", routers[len(routers)-1], "ms"),
	}
	if faultsErr == nil {
		r.Figures = append(r.Figures, fig("page-faults", float64(faults)/nsAllRounds, "/round"))
	}
	if cost, err := pageFaultCost(); err == nil {
		r.Figures = append(r.Figures, fig("page-fault-cost", float64(cost.Nanoseconds())/1000, "µs"))
	}
	r.note("page-faults: torscript's minor page faults over the whole run (start included), per round; page-fault-cost: what one costs this machine (64 MiB of fresh memory touched by the bench). A first read touches fresh memory for the document's raw text, its data and the read buffer (about four times the 2.7 MB), which at 10 µs or more a page, as on some virtual machines, costs more than the parsing; later reads reuse memory the collector freed")
	r.note("%d rounds of tor.get_info(\"ns/all\") then tor.routers() on an 8,000-relay ns/all (%d bytes); each from its GETINFO's arrival at the fake to the script's next command", nsAllRounds, len(ctltest.NsAll(8000)))
	return nil
}
