package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"time"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/ctl/ctltest"
	"github.com/torscript/torscript/runtime"
)

// inprocController is a controller running in the bench process against
// its own fake control port: torscript's runtime, or the Go controller of
// baseline-go.
type inprocController struct {
	fake *ctltest.FakeControlPort
	done chan struct{} // closed when the controller has ended
	err  error         // valid after done is closed
	stop context.CancelFunc
}

// startInproc starts a fake control port and run(ctx, its address) in a
// goroutine.
func startInproc(run func(ctx context.Context, addr string) error) (*inprocController, error) {
	f, err := ctltest.NewFakeControlPort()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &inprocController{fake: f, done: make(chan struct{}), stop: cancel}
	go func() {
		defer close(c.done)
		c.err = run(ctx, f.Addr())
	}()
	return c, nil
}

// close ends the controller and its fake, and fails if the controller
// does not end or had failed.
func (c *inprocController) close() error {
	c.stop()
	defer c.fake.Close()
	select {
	case <-c.done:
	case <-time.After(stopTimeout):
		return errors.New("did not stop")
	}
	if c.err != nil && !errors.Is(c.err, context.Canceled) {
		return c.err
	}
	return nil
}

// startRuntimeInproc starts torscript's runtime (the package cmd/torscript
// runs, with run's default limits and --log-level warn) on policy.star in
// the bench process, and waits until its policy is ready.
func (b *bench) startRuntimeInproc() (*inprocController, error) {
	src, err := scripts.ReadFile("scripts/policy.star")
	if err != nil {
		return nil, err
	}
	file := filepath.Join(b.dir, "policy.star")
	c, err := startInproc(func(ctx context.Context, addr string) error {
		log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
		rt := runtime.New(runtime.Options{
			Connect: func(ctx context.Context) (*ctl.Conn, error) {
				c, _, err := ctl.Connect(ctx, addr, ctl.Credentials{}, ctl.Options{Logger: log})
				return c, err
			},
			Logger:          log,
			Stdout:          io.Discard,
			MaxSteps:        10_000_000,
			HandlerTimeout:  2 * time.Second,
			TopLevelTimeout: 30 * time.Second,
		})
		return rt.Run(ctx, file, src)
	})
	if err != nil {
		return nil, err
	}
	if _, err := waitPolicyReady(c.fake, c.done); err != nil {
		if cerr := c.close(); cerr != nil {
			err = fmt.Errorf("%w (the runtime: %v)", err, cerr)
		}
		return nil, err
	}
	return c, nil
}

// startGoInproc starts baseline-go's Go controller in the bench process,
// and waits until it has subscribed to STREAM.
func startGoInproc() (*inprocController, error) {
	c, err := startInproc(baselineController)
	if err != nil {
		return nil, err
	}
	if _, _, err := c.fake.WaitCommand(0, readyTimeout, c.done, func(cmd ctltest.Command) bool {
		return cmd.Keyword() == "SETEVENTS" && cmd.HasArg("STREAM")
	}); err != nil {
		if cerr := c.close(); cerr != nil {
			err = fmt.Errorf("%w (the Go controller: %v)", err, cerr)
		}
		return nil, err
	}
	return c, nil
}

// vsGoInproc is measurement vs-go-inproc: vs-go with both controllers in
// the bench process, torscript's runtime and baseline-go's Go controller,
// each against its own fake control port, so that neither round trip
// crosses a process (the in-process Go baseline of the target). The
// Go runtime is set as torscript sets it (one processor, GOGC 400) for the
// measurement, as for every other controller the bench measures: the
// bench's two processors would otherwise let a spinning thread of its
// scheduler catch a controller's wake-ups, which no torscript has. The two
// take blocks of streams in turns as in vs-go.
func (b *bench) vsGoInproc(r *Result) (err error) {
	defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(1))
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	t, err := b.startRuntimeInproc()
	if err != nil {
		return fmt.Errorf("the runtime: %w", err)
	}
	defer func() {
		if cerr := t.close(); cerr != nil && err == nil {
			err = fmt.Errorf("the runtime: %w", cerr)
		}
	}()
	g, err := startGoInproc()
	if err != nil {
		return fmt.Errorf("the Go controller: %w", err)
	}
	defer func() {
		if cerr := g.close(); cerr != nil && err == nil {
			err = fmt.Errorf("the Go controller: %w", cerr)
		}
	}()
	block := max(1, b.cfg.closedN/vsGoRounds)
	tNext, gNext := 1, 1
	run := func(c *inprocController, next *int, n int) (latencies, error) {
		lat, _, err := closedLoop(c.fake, c.done, *next, n, false)
		*next += n
		return lat, err
	}
	if _, err := run(t, &tNext, b.cfg.warmup); err != nil {
		return fmt.Errorf("the runtime: warm-up: %w", err)
	}
	if _, err := run(g, &gNext, b.cfg.warmup); err != nil {
		return fmt.Errorf("the Go controller: warm-up: %w", err)
	}
	var ts, gs latencies
	for range vsGoRounds {
		lat, err := run(t, &tNext, block)
		if err != nil {
			return fmt.Errorf("the runtime: %w", err)
		}
		ts = append(ts, lat...)
		if lat, err = run(g, &gNext, block); err != nil {
			return fmt.Errorf("the Go controller: %w", err)
		}
		gs = append(gs, lat...)
	}
	slices.Sort(ts)
	slices.Sort(gs)
	r.Figures = vsGoFigures(ts, gs)
	r.note("torscript's runtime (the package cmd/torscript runs, on policy.star) and baseline-go's Go controller, both in the bench process with the Go runtime set as torscript sets it (GOMAXPROCS 1, GOGC 400), each against its own fake, closed loops as attach-closed taken in turns: %d blocks of %d streams each, after %d warm-up streams each; the ratios are the runtime's p50 and p99 over the Go controller's; counted in the exit status with vs-go", vsGoRounds, block, b.cfg.warmup)
	return nil
}
