package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/ctl/ctltest"
)

// baselineController is the least a Go controller built on ctl does to run
// the bench policy: subscribe to STREAM and attach every new stream to
// port 80 to circuit 1, pipelining the ATTACHSTREAMs without waiting for
// their replies. It returns when ctx is cancelled or the connection ends.
func baselineController(ctx context.Context, addr string) error {
	conn, _, err := ctl.Connect(ctx, addr, ctl.Credentials{}, ctl.Options{})
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetEvents(ctx, "STREAM"); err != nil {
		return err
	}
	return eachEvent(ctx, conn, func(ev ctl.Event) error {
		se, isStream := ev.(*ctl.StreamEvent)
		if !isStream || se.Status != ctl.StreamNew || se.TargetPort != 80 {
			return nil
		}
		cmd, err := ctl.AttachStreamCommand(se.ID, "1", 0)
		if err != nil {
			return err
		}
		return conn.Start(ctx, cmd, func(*ctl.Reply, error) {})
	})
}

// eachEvent calls f on each event conn delivers, in order, as a Go
// controller's loop does (EventReady, EventBatch), until ctx ends (nil),
// the connection does (its error), or f fails.
func eachEvent(ctx context.Context, conn *ctl.Conn, f func(ctl.Event) error) error {
	var buf []ctl.Event
	for {
		select {
		case <-conn.EventReady():
		case <-ctx.Done():
			return nil
		}
		for {
			evs, ok := conn.EventBatch(buf)
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return conn.Err()
			}
			if len(evs) == 0 {
				break
			}
			for _, ev := range evs {
				if err := f(ev); err != nil {
					return err
				}
			}
			clear(evs)
			buf = evs
		}
	}
}

// baselineGo is measurement baseline-go: attach-closed with
// baselineController in place of torscript, in the bench process, where it
// shares a Go scheduler with the fake control port.
func (b *bench) baselineGo(r *Result) error {
	f, err := ctltest.NewFakeControlPort()
	if err != nil {
		return err
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var ctlErr error
	go func() {
		defer close(done)
		ctlErr = baselineController(ctx, f.Addr())
	}()
	stop := func() error {
		cancel()
		select {
		case <-done:
		case <-time.After(stopTimeout):
			return errors.New("the Go controller did not stop")
		}
		return ctlErr
	}
	if err := b.baselineLoop(r, f, done, stop); err != nil {
		return err
	}
	r.note("a Go controller on ctl in the bench process (EventBatch, Send), closed loop as attach-closed: %d streams after %d warm-up; it shares the bench's Go scheduler with the fake control port, so a round trip can pass from one to the other without a process switch, which no controller of a real tor has", b.cfg.closedN, b.cfg.warmup)
	return nil
}

// goControllerEnv, set to a control port's address, makes the bench
// binary run baselineController against it and nothing else: the Go
// controller of baseline-go-proc.
const goControllerEnv = "TORSCRIPT_BENCH_GO_CONTROLLER"

// goControllerMain is the bench binary run as the Go controller of
// baseline-go-proc: the Go runtime set as torscript sets it (one
// processor, GOGC 400), stopped by SIGTERM.
func goControllerMain(addr string) int {
	return runAsTorscript("go controller", func(ctx context.Context) error { return baselineController(ctx, addr) })
}

// runAsTorscript runs a Go controller of the bench binary (baseline-go-proc's,
// the event floods') with the Go runtime set as torscript sets it (one
// processor, GOGC 400) until SIGTERM, and returns its exit status.
func runAsTorscript(name string, run func(context.Context) error) int {
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(400)
	// TORSCRIPT_CPUPROFILE=FILE profiles the Go controllers too, to
	// FILE-go.PID, for a comparison with torscript's FILE.PID.
	if path := os.Getenv("TORSCRIPT_CPUPROFILE"); path != "" {
		if pf, err := os.Create(fmt.Sprintf("%s-go.%d", path, os.Getpid())); err == nil {
			pprof.StartCPUProfile(pf)
			defer func() { pprof.StopCPUProfile(); pf.Close() }()
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	return 0
}

// baselineGoProc is measurement baseline-go-proc: baseline-go with the Go
// controller in a process of its own, the bench binary started again, as
// torscript and every controller of a real tor run.
func (b *bench) baselineGoProc(r *Result) (err error) {
	g, err := b.startGoController()
	if err != nil {
		return err
	}
	defer g.fake.Close()
	if err := b.baselineLoop(r, g.fake, g.proc.exited, g.stop); err != nil {
		return err
	}
	r.note("the Go controller of baseline-go in a process of its own (the bench binary started again, with GOMAXPROCS 1 and GOGC 400 as torscript sets them), closed loop as attach-closed: %d streams after %d warm-up", b.cfg.closedN, b.cfg.warmup)
	return nil
}

// goController is the Go controller of baseline-go-proc, running against
// its own fake control port.
type goController struct {
	fake *ctltest.FakeControlPort
	proc *proc
}

// startGoController starts a fake control port and the bench binary as
// the Go controller against it, on the CPUs of the measurement under way
// (b.cpus).
func (b *bench) startGoController() (*goController, error) {
	f, p, err := b.startSelf("go-controller", func(addr string) string { return goControllerEnv + "=" + addr }, b.cpus)
	if err != nil {
		return nil, err
	}
	return &goController{fake: f, proc: p}, nil
}

// startSelf starts a fake control port and the bench binary again, on
// cpus (nil: any), with env(the fake's address) in its environment (which
// makes it one of its Go controllers), its output in a log named after
// name.
func (b *bench) startSelf(name string, env func(addr string) string, cpus []int) (*ctltest.FakeControlPort, *proc, error) {
	f, err := ctltest.NewFakeControlPort()
	if err != nil {
		return nil, nil, err
	}
	self, err := os.Executable()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	logf, err := os.CreateTemp(b.dir, name+"-*.log")
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	defer logf.Close()
	cmd := exec.Command(self)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(cleanEnv(), env(f.Addr()))
	p := &proc{cmd: cmd, logPath: logf.Name(), exited: make(chan struct{}), started: time.Now(), name: "the Go controller"}
	if err := startOn(cmd, cpus); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("starting the Go controller: %w", err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return f, p, nil
}

// stop ends the Go controller, and fails if it had ended on its own.
func (g *goController) stop() error {
	if err := g.proc.stop(); err != nil {
		return err
	}
	if n := g.proc.exitNote(); n != "" {
		return fmt.Errorf("%s; its output: %s", n, firstLines(strings.TrimSpace(g.proc.log()), 5))
	}
	return nil
}

// baselineLoop runs attach-closed's closed loop against a Go controller
// on f: done is closed when the controller has ended, and stop ends it.
func (b *bench) baselineLoop(r *Result, f *ctltest.FakeControlPort, done <-chan struct{}, stop func() error) error {
	fail := func(err error) error {
		if serr := stop(); serr != nil {
			err = fmt.Errorf("%w (controller: %v)", err, serr)
		}
		return err
	}
	if _, _, err := f.WaitCommand(0, readyTimeout, done, func(c ctltest.Command) bool {
		return c.Keyword() == "SETEVENTS" && c.HasArg("STREAM")
	}); err != nil {
		return fail(fmt.Errorf("waiting for SETEVENTS STREAM: %w", err))
	}
	if _, _, err := closedLoop(f, done, 1, b.cfg.warmup, false); err != nil {
		return fail(fmt.Errorf("warm-up: %w", err))
	}
	lat, wall, err := closedLoop(f, done, 1+b.cfg.warmup, b.cfg.closedN, false)
	if err != nil {
		return fail(err)
	}
	if err := stop(); err != nil {
		return err
	}
	r.Figures = closedLoopFigures(lat, wall)
	return nil
}

// loopback is measurement loopback: a line bounced between two goroutines
// over loopback TCP, the floor under any attach latency.
func (b *bench) loopback(r *Result) error {
	lat, err := pingPong(b.cfg.warmup, b.cfg.closedN)
	if err != nil {
		return err
	}
	slices.Sort(lat)
	r.Figures = []Figure{
		fig("p50", us(lat.percentile(50)), "µs"),
		fig("p99", us(lat.percentile(99)), "µs"),
	}
	r.note("round trip of one line over loopback TCP between two goroutines, %d times after %d warm-up", b.cfg.closedN, b.cfg.warmup)
	return nil
}

// pingPong returns the round-trip times of n lines after warmup more.
func pingPong(warmup, n int) (latencies, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	echoErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			echoErr <- err
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				echoErr <- nil
				return
			}
			if _, err := c.Write(line); err != nil {
				echoErr <- err
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(c)
	line := appendStreamNew(nil, 1)
	lat := make(latencies, 0, n)
	for i := range warmup + n {
		t0 := time.Now()
		if _, err := c.Write(line); err != nil {
			c.Close()
			return nil, err
		}
		if _, err := br.ReadSlice('\n'); err != nil {
			c.Close()
			return nil, err
		}
		if i >= warmup {
			lat = append(lat, time.Since(t0))
		}
	}
	c.Close()
	if err := <-echoErr; err != nil {
		return nil, err
	}
	return lat, nil
}
