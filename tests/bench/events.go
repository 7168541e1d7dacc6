package main

import (
	"fmt"
	"github.com/torscript/torscript/ctl/ctltest"
	"strconv"
	"strings"
	"time"
)

// eventsTimeout is how long the events measurement waits, after its last
// write, for the script's GETINFO bench/done.
const eventsTimeout = 30 * time.Second

// eventMix is the round-robin mix of the events measurement. BW is a
// quarter of it: torscript may drop BW, and only BW, when 65536 events
// are queued.
var eventMix = []string{
	"650 CIRC 1 BUILT $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~guard,$BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB~middle,$CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC~exit BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL TIME_CREATED=2026-11-22T10:00:00.000000\r\n",
	"650 STREAM 5 SUCCEEDED 1 example.com:80\r\n",
	"650 BW 1024 2048\r\n",
	"650 ORCONN $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~guard CONNECTED ID=7\r\n",
}

// writeEvents writes m events of eventMix, round-robin, in writes of about
// chunk bytes.
func writeEvents(f *ctltest.FakeControlPort, m, chunk int) error {
	buf := make([]byte, 0, chunk+512)
	for k := range m {
		buf = append(buf, eventMix[k%len(eventMix)]...)
		if len(buf) >= chunk {
			if err := f.Send(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	if len(buf) > 0 {
		return f.Send(buf)
	}
	return nil
}

// events is measurement events.
func (b *bench) events(r *Result) (err error) {
	m := b.cfg.events
	s, err := b.launch("events.star", strconv.Itoa(m))
	if err != nil {
		return err
	}
	defer s.finish(r, &err)
	_, _, err = s.fake.WaitCommand(0, readyTimeout, s.exited(), func(c ctltest.Command) bool {
		return c.Keyword() == "SETEVENTS" && c.HasArg("CIRC") && c.HasArg("STREAM") && c.HasArg("BW") && c.HasArg("ORCONN")
	})
	if err != nil {
		return fmt.Errorf("waiting for SETEVENTS with CIRC, STREAM, BW and ORCONN: %w; commands seen: %s", err, summary(s.fake.Commands()))
	}
	from := s.fake.Len()
	cpu0, cpuErr := cpuTime(s.proc.Pid())
	t0 := time.Now()
	if err := writeEvents(s.fake, m, 64<<10); err != nil {
		return err
	}
	written := time.Since(t0)
	_, done, err := s.fake.WaitCommand(from, eventsTimeout, s.exited(), func(c ctltest.Command) bool {
		return c.Keyword() == "GETINFO" && c.HasArg("bench/done")
	})
	if err != nil {
		msg := fmt.Sprintf("the script's GETINFO bench/done did not arrive within %v of the last event (%d events written in %v)", eventsTimeout, m, written.Round(time.Millisecond))
		if n := droppedLogged(s.proc.log()); n > 0 {
			msg += fmt.Sprintf("; torscript logged dropping at least %d BW events (it logs at 1, 2, 4, 8, …), so the count cannot reach %d", n, m)
		} else {
			msg += "; torscript may have dropped BW events, how many is unknown"
		}
		return fmt.Errorf("%s: %w", msg, err)
	}
	elapsed := done.At.Sub(t0)
	cpu1, err := cpuTime(s.proc.Pid())
	if err != nil {
		cpuErr = err
	}
	peak, peakErr := memMiB(s.proc.Pid(), "VmHWM")
	var others []ctltest.Command
	for _, c := range s.fake.Commands()[from:] {
		if !(c.Keyword() == "GETINFO" && c.HasArg("bench/done")) {
			others = append(others, c)
		}
	}
	if len(others) > 0 {
		r.note("commands while events were flowing: %s", summary(others))
	}
	r.Figures = []Figure{
		fig("rate", float64(m)/elapsed.Seconds(), "events/s").atLeast(1_000_000),
		fig("elapsed", ms(elapsed), "ms"),
		fig("write", ms(written), "ms"),
	}
	if cpuErr == nil {
		r.Figures = append(r.Figures, fig("cpu", float64(cpu1-cpu0)/float64(m), "ns/event"))
	}
	if peakErr == nil {
		r.Figures = append(r.Figures, fig("peak-rss", peak, "MiB"))
	}
	r.note("%d events (CIRC, STREAM, BW, ORCONN round-robin) in writes of 64 KiB; from the first write to the arrival of GETINFO bench/done; 'write' is how long the writes took (torscript reading); cpu is torscript's user+system time per event; peak-rss its VmHWM", m)
	return nil
}

// droppedLogged is the highest "dropped=N" in torscript's log: ctl logs
// the count of dropped events each time it reaches a power of two.
func droppedLogged(log string) int {
	most := 0
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "dropping") {
			continue
		}
		for _, w := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(w, "dropped="); ok {
				if n, err := strconv.Atoi(v); err == nil {
					most = max(most, n)
				}
			}
		}
	}
	return most
}
