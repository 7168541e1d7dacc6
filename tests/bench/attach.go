package main

import (
	"fmt"
	"github.com/torscript/torscript/ctl/ctltest"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// readyTimeout bounds the wait for a controller to subscribe.
	readyTimeout = 10 * time.Second
	// attachTimeout bounds the wait for one ATTACHSTREAM in a closed loop.
	attachTimeout = 5 * time.Second
	// openDrain is how long an open loop waits for ATTACHSTREAMs after
	// its last send.
	openDrain = 2 * time.Second
	// openRuns is how often an open loop runs at most: again while the
	// machine stalled during a run.
	openRuns = 3
)

// session is one torscript run against its own fake control port.
type session struct {
	fake *ctltest.FakeControlPort
	proc *proc
}

// launch starts a fake control port and torscript running script (a file
// of scripts/) with args.
func (b *bench) launch(script string, args ...string) (*session, error) {
	return b.launchWith(script, nil, args...)
}

// launchWith is launch with setup run on the fake before torscript starts.
func (b *bench) launchWith(script string, setup func(*ctltest.FakeControlPort), args ...string) (*session, error) {
	f, err := ctltest.NewFakeControlPort()
	if err != nil {
		return nil, err
	}
	if setup != nil {
		setup(f)
	}
	p, err := startTorscript(b.bin, b.dir, f.Addr(), b.flags, b.cpus, filepath.Join(b.dir, script), args...)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &session{fake: f, proc: p}, nil
}

// finish stops torscript and the fake. It records in r what looked off,
// keeps torscript's output for the report if the measurement failed, and
// turns a torscript that will not stop into an error.
func (s *session) finish(r *Result, err *error) {
	stopErr := s.proc.stop()
	s.fake.Close()
	if stopErr != nil && *err == nil {
		*err = stopErr
	}
	if n := s.proc.exitNote(); n != "" {
		r.note("%s", n)
	}
	_, unknown := s.fake.InfoKeys()
	delete(unknown, "bench/done")
	if len(unknown) > 0 {
		r.note("GETINFO keys the fake had no value for (answered empty): %s", countList(unknown))
	}
	out := strings.TrimSpace(s.proc.log())
	if *err != nil {
		r.Log = out
	} else if out != "" {
		r.note("%s wrote to stderr: %s", s.proc.what(), firstLines(out, 5))
	}
}

// exited is closed when torscript has exited.
func (s *session) exited() <-chan struct{} { return s.proc.exited }

// waitPolicyReady waits until torscript has subscribed to STREAM events
// and then resynchronised with GETINFO stream-status, and returns the index
// of the first command after that.
func waitPolicyReady(f *ctltest.FakeControlPort, abort <-chan struct{}) (int, error) {
	i, _, err := f.WaitCommand(0, readyTimeout, abort, func(c ctltest.Command) bool {
		return c.Keyword() == "SETEVENTS" && c.HasArg("STREAM")
	})
	if err != nil {
		return 0, fmt.Errorf("waiting for SETEVENTS with STREAM: %w; commands seen: %s", err, summary(f.Commands()))
	}
	j, _, err := f.WaitCommand(i+1, readyTimeout, abort, func(c ctltest.Command) bool {
		return c.Keyword() == "GETINFO" && c.HasArg("stream-status")
	})
	if err != nil {
		return 0, fmt.Errorf("waiting for GETINFO stream-status after SETEVENTS STREAM: %w; commands seen: %s", err, summary(f.Commands()))
	}
	return j + 1, nil
}

// summary lists commands compactly: "PROTOCOLINFO 1, AUTHENTICATE, …".
func summary(cmds []ctltest.Command) string {
	if len(cmds) == 0 {
		return "none"
	}
	const most = 30
	var parts []string
	for i, c := range cmds {
		if i == most {
			parts = append(parts, fmt.Sprintf("… (%d more)", len(cmds)-most))
			break
		}
		parts = append(parts, c.Line)
	}
	return strings.Join(parts, ", ")
}

// setupNote describes the commands before index ready, with their times
// since the first.
func setupNote(cmds []ctltest.Command) string {
	if len(cmds) == 0 {
		return "none"
	}
	var parts []string
	for _, c := range cmds {
		parts = append(parts, fmt.Sprintf("%q +%.1fms", c.Line, ms(c.At.Sub(cmds[0].At))))
	}
	return strings.Join(parts, ", ")
}

// extraCommands notes the commands other than ATTACHSTREAM that arrived
// during a measured phase.
func extraCommands(r *Result, cmds []ctltest.Command) {
	n := map[string]int{}
	for _, c := range cmds {
		if c.Keyword() != "ATTACHSTREAM" {
			n[c.Line]++
		}
	}
	if len(n) > 0 {
		r.note("commands other than ATTACHSTREAM while streams were flowing: %s", countList(n))
	}
}

func countList(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = fmt.Sprintf("%q×%d", k, m[k])
	}
	return strings.Join(keys, ", ")
}

func firstLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append(lines[:n], fmt.Sprintf("… (%d more lines)", len(lines)-n))
	}
	return strings.Join(lines, " | ")
}

// Stream events the drivers send.

func appendStreamNew(b []byte, id int) []byte {
	b = append(b, "650 STREAM "...)
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, " NEW 0 example.com:80 SOURCE_ADDR=127.0.0.1:"...)
	b = strconv.AppendInt(b, int64(10000+id%50000), 10)
	return append(b, " PURPOSE=USER\r\n"...)
}

func appendStreamDone(b []byte, id int) []byte {
	b = append(b, "650 STREAM "...)
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, " SUCCEEDED 1 example.com:80\r\n650 STREAM "...)
	b = strconv.AppendInt(b, int64(id), 10)
	return append(b, " CLOSED 1 example.com:80 REASON=DONE\r\n"...)
}

// closedLoop sends streams one at a time, each when the previous one has
// been attached: NEW for stream id, then wait for ATTACHSTREAM id 1. The
// fake answers that ATTACHSTREAM, sends the stream's SUCCEEDED and CLOSED
// (so the controller's table of live streams stays small) and the NEW of
// the next stream in one write, from its reader goroutine, as a busy tor
// would; the driver adds no hand-off of its own to each round trip. With
// split, the next NEW goes out in a write of its own from the driver's
// goroutine instead, so the controller reads the reply and the next event
// separately. It returns each stream's latency, from just before the write
// carrying its NEW to the arrival of its ATTACHSTREAM, and the time the n
// streams took.
func closedLoop(f *ctltest.FakeControlPort, abort <-chan struct{}, firstID, n int, split bool) (latencies, time.Duration, error) {
	if n == 0 {
		return latencies{}, 0, nil
	}
	lat := make(latencies, n)
	base := time.Now()
	var (
		next     int          // index of the stream awaited; the reader goroutine's
		sentAt   atomic.Int64 // when the awaited stream's NEW was written, ns since base
		progress atomic.Int64 // streams attached
		endAt    time.Duration
		loopErr  error
		buf      = make([]byte, 0, 512)
		done     = make(chan struct{})
	)
	f.SetOnAttach(func(stream, circuit string, at time.Time) []byte {
		if next >= n {
			if next == n {
				next++
				loopErr = fmt.Errorf("ATTACHSTREAM %s %s after the last stream was attached", stream, circuit)
			}
			return nil
		}
		id := firstID + next
		if want := strconv.Itoa(id); stream != want || circuit != "1" {
			loopErr = fmt.Errorf("got ATTACHSTREAM %s %s, want ATTACHSTREAM %s 1", stream, circuit, want)
			next = n + 1
			close(done)
			return nil
		}
		lat[next] = at.Sub(base) - time.Duration(sentAt.Load())
		next++
		progress.Store(int64(next))
		buf = appendStreamDone(buf[:0], id)
		if next == n {
			endAt = time.Since(base)
			close(done)
			return buf
		}
		if split {
			return buf
		}
		buf = appendStreamNew(buf, id+1)
		sentAt.Store(int64(time.Since(base)))
		return buf
	})
	defer f.SetOnAttach(nil)

	from := f.Len()
	sentAt.Store(int64(time.Since(base)))
	if err := f.Send(appendStreamNew(nil, firstID)); err != nil {
		return nil, 0, err
	}
	if split {
		// The fake records a command after it has written its answer.
		for i := 1; i < n; i++ {
			j, _, err := f.WaitCommand(from, attachTimeout, abort, func(c ctltest.Command) bool { return c.Keyword() == "ATTACHSTREAM" })
			if err != nil {
				return nil, 0, fmt.Errorf("waiting for ATTACHSTREAM %d: %w", firstID+i-1, err)
			}
			from = j + 1
			select {
			case <-done:
				return nil, 0, loopErr
			default:
			}
			sentAt.Store(int64(time.Since(base)))
			if err := f.Send(appendStreamNew(nil, firstID+i)); err != nil {
				return nil, 0, err
			}
		}
	}
	tick := time.NewTicker(attachTimeout)
	defer tick.Stop()
	seen := int64(0)
	for {
		select {
		case <-done:
			if loopErr != nil {
				return nil, 0, loopErr
			}
			// The hook ran before the fake's last write: wait for that
			// write, so the caller sees every command and the last
			// stream's CLOSED has gone out.
			last := strconv.Itoa(firstID + n - 1)
			if _, _, err := f.WaitCommand(from, attachTimeout, abort, func(c ctltest.Command) bool {
				return c.Keyword() == "ATTACHSTREAM" && c.HasArg(last)
			}); err != nil {
				return nil, 0, err
			}
			return lat, endAt, nil
		case <-tick.C:
			p := progress.Load()
			if p == seen {
				return nil, 0, fmt.Errorf("no ATTACHSTREAM for stream %d within %v (%d attached)", firstID+int(p), attachTimeout, p)
			}
			seen = p
		case <-abort:
			return nil, 0, fmt.Errorf("the controller exited after %d attaches", progress.Load())
		}
	}
}

// closedLoopFigures are the figures of a closed loop.
func closedLoopFigures(lat latencies, wall time.Duration) []Figure {
	figs := latencyFigures("", lat, 50, 90, 99, 99.9, 100)
	return append(figs, fig("rate", float64(len(lat))/wall.Seconds(), "attaches/s"))
}

// attachClosed is measurement attach-closed, and with split
// attach-closed-split (no targets: it shows what a second read per stream
// costs).
func attachClosed(split bool) func(*bench, *Result) error {
	return func(b *bench, r *Result) error { return b.attachClosed(r, split) }
}

// attachClosedNoGuardian is attach-closed with the script in torscript's
// own process (--no-guardian): the difference is what the guardian costs.
func attachClosedNoGuardian(b *bench, r *Result) error {
	b.flags = []string{"--no-guardian"}
	defer func() { b.flags = nil }()
	return b.attachClosed(r, false)
}

func (b *bench) attachClosed(r *Result, split bool) (err error) {
	s, err := b.launch("policy.star")
	if err != nil {
		return err
	}
	defer s.finish(r, &err)
	ready, err := waitPolicyReady(s.fake, s.exited())
	if err != nil {
		return err
	}
	r.note("torscript's setup, as the fake control port saw it: %s", setupNote(s.fake.Commands()[:ready]))
	if _, _, err := closedLoop(s.fake, s.exited(), 1, b.cfg.warmup, split); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	from := s.fake.Len()
	cpu0, cpuErr := cpuTime(s.proc.Pid())
	lat, wall, err := closedLoop(s.fake, s.exited(), 1+b.cfg.warmup, b.cfg.closedN, split)
	if err != nil {
		return err
	}
	cpu1, err := cpuTime(s.proc.Pid())
	extraCommands(r, s.fake.Commands()[from:])
	figs := closedLoopFigures(lat, wall)
	if cpuErr == nil && err == nil {
		figs = append(figs, fig("cpu", us(cpu1-cpu0)/float64(len(lat)), "µs/attach"))
	}
	if !split {
		figs = withTarget(figs, "p50", func(f Figure) Figure { return f.atMost(60) })
		figs = withTarget(figs, "p99", func(f Figure) Figure { return f.atMost(200) })
		figs = withTarget(figs, "rate", func(f Figure) Figure { return f.atLeast(11000) })
	}
	r.Figures = figs
	how := "the next NEW in the same write as the reply to the last ATTACHSTREAM"
	if split {
		how = "the reply to ATTACHSTREAM and the next NEW in separate writes"
	}
	r.note("%d streams after %d warm-up streams, %s; latency from just before the write of NEW to the arrival of ATTACHSTREAM", b.cfg.closedN, b.cfg.warmup, how)
	return nil
}

// openResult is what an open loop saw.
type openResult struct {
	sent, attached int
	late           int // attached, but more than openDrain after the last send
	dup, wrong     int // repeated ATTACHSTREAMs; ones for streams not sent or circuits other than 1
	lat            latencies
	lag            latencies // from due time to the write: the driver's own lateness
	fromWrite      latencies // from the write to the arrival of ATTACHSTREAM
	writes         int
}

// openLoop sends NEW events at rate per second for dur, whatever the
// controller does: stream i is due at start + i/rate, and every write
// carries all the streams due by then (and the SUCCEEDED and CLOSED of the
// streams attached since the last write). It then waits up to openDrain
// for the stragglers.
func openLoop(f *ctltest.FakeControlPort, abort <-chan struct{}, firstID, rate int, dur time.Duration, spin time.Duration) (*openResult, error) {
	total := int(float64(rate) * dur.Seconds())
	base := time.Now()
	arrived := make([]atomic.Int64, total) // ns since base, plus 1; 0 for none yet
	var (
		dup, wrong atomic.Int64
		closeMu    sync.Mutex
		toClose    []int
	)
	f.SetOnAttach(func(stream, circuit string, at time.Time) []byte {
		id, err := strconv.Atoi(stream)
		i := id - firstID
		if err != nil || i < 0 || i >= total || circuit != "1" {
			wrong.Add(1)
			return nil
		}
		if !arrived[i].CompareAndSwap(0, int64(at.Sub(base))+1) {
			dup.Add(1)
			return nil
		}
		closeMu.Lock()
		toClose = append(toClose, i)
		closeMu.Unlock()
		return nil
	})
	defer f.SetOnAttach(nil)
	var closing []int
	appendCloses := func(buf []byte) []byte {
		closeMu.Lock()
		closing, toClose = toClose, closing[:0]
		closeMu.Unlock()
		for _, i := range closing {
			buf = appendStreamDone(buf, firstID+i)
		}
		return buf
	}

	p := newPacer(spin)
	defer p.close()
	sentAt := make([]time.Duration, total) // since base
	res := &openResult{sent: total}
	start := base.Add(time.Millisecond)
	due := func(i int) time.Duration {
		return start.Sub(base) + time.Duration(int64(i)*int64(time.Second)/int64(rate))
	}
	buf := make([]byte, 0, 64<<10)
	for i := 0; i < total; {
		select {
		case <-abort:
			return nil, fmt.Errorf("the controller exited after %d of %d streams were sent", i, total)
		default:
		}
		p.waitUntil(base.Add(due(i)))
		now := time.Since(base)
		j := i + 1
		for j < total && due(j) <= now {
			j++
		}
		buf = appendCloses(buf[:0])
		for k := i; k < j; k++ {
			buf = appendStreamNew(buf, firstID+k)
		}
		at := time.Since(base)
		if err := f.Send(buf); err != nil {
			return nil, err
		}
		for k := i; k < j; k++ {
			sentAt[k] = at
		}
		res.writes++
		i = j
	}
	lastSend := time.Since(base)
	for deadline := lastSend + openDrain; time.Since(base) < deadline; {
		all := true
		for i := range arrived {
			if arrived[i].Load() == 0 {
				all = false
				break
			}
		}
		if all {
			break
		}
		time.Sleep(10 * time.Millisecond)
		if buf = appendCloses(buf[:0]); len(buf) > 0 {
			if err := f.Send(buf); err != nil {
				return nil, err
			}
		}
	}
	f.SetOnAttach(nil)
	if buf = appendCloses(buf[:0]); len(buf) > 0 {
		if err := f.Send(buf); err != nil {
			return nil, err
		}
	}
	for i := range arrived {
		a := arrived[i].Load()
		if a == 0 {
			continue
		}
		at := time.Duration(a - 1)
		if at > lastSend+openDrain {
			res.late++
			continue
		}
		res.attached++
		res.lat = append(res.lat, at-due(i))
		res.lag = append(res.lag, sentAt[i]-due(i))
		res.fromWrite = append(res.fromWrite, at-sentAt[i])
	}
	res.dup, res.wrong = int(dup.Load()), int(wrong.Load())
	return res, nil
}

// attachOpen is measurement attach-open-5k or attach-open-20k.
func attachOpen(rate int) func(*bench, *Result) error {
	return func(b *bench, r *Result) (err error) {
		s, err := b.launch("policy.star")
		if err != nil {
			return err
		}
		defer s.finish(r, &err)
		if _, err := waitPolicyReady(s.fake, s.exited()); err != nil {
			return err
		}
		if _, _, err := closedLoop(s.fake, s.exited(), 1, b.cfg.warmup, false); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		from := s.fake.Len()
		// A run in which the machine stopped a CPU (stallWatch) is run
		// again, up to openRuns times: its p99 is the stall's, not
		// torscript's. Streams lost count in every run.
		total := int(float64(rate) * b.cfg.openDur.Seconds())
		var res *openResult
		lost, runs := 0, 0
		for runs < openRuns {
			runtime.GC()
			w := watchStalls()
			res, err = openLoop(s.fake, s.exited(), 1+b.cfg.warmup+runs*total, rate, b.cfg.openDur, b.cfg.spin)
			stalls := w.end()
			if err != nil {
				return err
			}
			runs++
			lost += res.sent - res.attached
			if len(stalls) == 0 {
				break
			}
			slices.Sort(res.lat)
			verdict := "run again"
			if runs == openRuns {
				verdict = "the figures are this run's: every run had a stall"
			}
			r.note("run %d: p99 %.0f µs, max %.0f µs, but the machine stalled (%s), seen by a sleeper on each CPU that woke %v or more late; %s",
				runs, us(res.lat.percentile(99)), us(res.lat.percentile(100)), stallList(stalls), stallMin, verdict)
		}
		extraCommands(r, s.fake.Commands()[from:])
		r.Figures = []Figure{
			fig("sent", float64(res.sent), ""),
			fig("attached", float64(res.attached), ""),
			fig("lost", float64(lost), "").atMost(0),
			fig("runs", float64(runs), ""),
		}
		slices.Sort(res.lat)
		slices.Sort(res.lag)
		slices.Sort(res.fromWrite)
		if len(res.lat) > 0 {
			p99 := fig("p99", us(res.lat.percentile(99)), "µs")
			if rate <= 5000 {
				p99 = p99.atMost(1000) // 1 ms at up to 5,000 streams/s
			}
			r.Figures = append(r.Figures,
				fig("p50", us(res.lat.percentile(50)), "µs"),
				p99,
				fig("max", us(res.lat.percentile(100)), "µs"),
				fig("p99-from-write", us(res.fromWrite.percentile(99)), "µs"),
				fig("send-lag-p99", us(res.lag.percentile(99)), "µs"),
			)
		}
		r.note("%d streams/s for %v in %d writes; latency from each stream's due time (p99-from-write: from its write); send-lag is how late the driver itself wrote (pacing: sleep, then spin the last %v); runs: how many it took to get one in which the machine did not stall (at most %d), lost: over all of them",
			rate, b.cfg.openDur, res.writes, b.cfg.spin, openRuns)
		if res.late > 0 {
			r.note("%d ATTACHSTREAMs arrived later than %v after the last send and count as lost", res.late, openDrain)
		}
		if res.dup > 0 || res.wrong > 0 {
			r.note("%d repeated ATTACHSTREAMs, %d for unknown streams or circuits other than 1", res.dup, res.wrong)
		}
		return nil
	}
}
