package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

// stallMin is how late a sleeper has to wake to count as a stall of the
// machine: above the few milliseconds the scheduler makes a thread that
// sleeps 2 ms wait on a busy machine, below the stops of 20 and 100 ms
// the virtual machine this bench runs on has when its host caps it.
const stallMin = 10 * time.Millisecond

// stallNap is how long the stall watch's sleepers sleep.
const stallNap = 2 * time.Millisecond

// machine is measurement machine: both CPUs busy for a second, to see
// whether the machine itself stops them, as a virtual machine's host may.
func (b *bench) machine(r *Result) error {
	lost, longest := machineCheck(time.Second)
	r.Figures = []Figure{
		fig("lost", ms(lost), "ms"),
		fig("longest-stop", ms(longest), "ms"),
	}
	r.note("a thread on each of the %d CPUs reading the clock without pause for 1 s; lost: the time taken from them in stops of 2 ms or more, added up. A virtual machine whose host caps its CPU time loses it in stops of about 100 ms once every CPU is busy, and then every figure below is worth less (see README)", runtime.NumCPU())
	return nil
}

// stall is a time the machine left a CPU's sleeper waiting: it asked to
// wake after stallNap and woke late by stallMin or more.
type stall struct {
	cpu  int
	at   time.Duration // since the watch began
	late time.Duration
}

func (s stall) String() string {
	return fmt.Sprintf("CPU %d stopped %.0f ms at %.2f s", s.cpu, ms(s.late), s.at.Seconds())
}

func stallList(ss []stall) string {
	if len(ss) == 0 {
		return "none"
	}
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = s.String()
	}
	return strings.Join(parts, ", ")
}
