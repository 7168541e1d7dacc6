package main

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/ctl/ctltest"
	"github.com/torscript/torscript/runtime"
)

// BenchmarkTorMix runs the events-tor scripts in this process, on the same
// event stream, against the fake control port: the figures to compare
// changes to the event path by (go test -bench TorMix -cpuprofile); the
// bench command measures the real binary.
func BenchmarkTorMix(b *testing.B) {
	for _, sc := range []struct{ name, file string }{
		{"handlers", "scripts/events_tor.star"},
		{"policy", "scripts/events_tor_policy.star"},
	} {
		b.Run(sc.name, func(b *testing.B) {
			src, err := scripts.ReadFile(sc.file)
			if err != nil {
				b.Fatal(err)
			}
			// The script asks GETINFO bench/done when it has counted
			// them all; here it exits.
			text := strings.Replace(string(src), `tor.get_info("bench/done")`, "exit(0)", 1)
			mix := newTorMix(1, 2000)
			data := chunks(b.N, 64<<10, func(buf []byte, _ int) []byte { return mix.next(buf) })
			runMix(b, text, data, mix.Counted)
		})
	}
}

func runMix(b *testing.B, src string, data [][]byte, want int) {
	f, err := ctltest.NewFakeControlPort()
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})) // as torscript run --log-level warn
	rt := runtime.New(runtime.Options{
		Connect: func(ctx context.Context) (*ctl.Conn, error) {
			c, _, err := ctl.Connect(ctx, f.Addr(), ctl.Credentials{}, ctl.Options{Logger: log})
			return c, err
		},
		Logger: log, Stdout: io.Discard, Args: []string{strconv.Itoa(want)},
	})
	done := make(chan error, 1)
	go func() { done <- rt.Run(context.Background(), "bench.star", []byte(src)) }()
	if strings.Contains(src, "tor.policy") {
		if _, err := waitPolicyReady(f, nil); err != nil {
			b.Fatal(err)
		}
	}
	if _, _, err := f.WaitCommand(0, readyTimeout, nil, func(c ctltest.Command) bool {
		return c.Keyword() == "SETEVENTS" && c.HasArg("ORCONN")
	}); err != nil {
		select {
		case err := <-done:
			b.Fatalf("Run: %v", err)
		default:
		}
		b.Fatalf("%v; commands: %s", err, summary(f.Commands()))
	}
	b.ResetTimer()
	t0 := time.Now()
	go func() {
		for _, c := range data {
			if f.Send(c) != nil {
				return
			}
		}
	}()
	select {
	case err := <-done:
		if err != nil && !strings.Contains(err.Error(), "exit") {
			b.Logf("Run: %v", err)
		}
	case <-time.After(time.Minute):
		b.Fatal("the script did not count every event within a minute")
	}
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "events/s")
	attached := 0
	for _, c := range f.Commands() {
		if c.Keyword() == "ATTACHSTREAM" {
			attached++
		}
	}
	b.ReportMetric(float64(attached), "attaches")
}

// BenchmarkAttachInproc runs vs-go-inproc's two controllers as Go
// benchmarks, each a closed loop as attach-closed in this process against
// its own fake control port: torscript's runtime with policy.star, and the
// Go controller written by hand. Their instructions a stream (valgrind
// --tool=callgrind, the fake's included in both) compare the two
// controllers' work without this machine's swings in speed.
func BenchmarkAttachInproc(b *testing.B) {
	for _, c := range []struct {
		name  string
		start func(*bench) (*inprocController, error)
	}{
		{"torscript", (*bench).startRuntimeInproc},
		{"go", func(*bench) (*inprocController, error) { return startGoInproc() }},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctrl, err := c.start(&bench{dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				if err := ctrl.close(); err != nil {
					b.Error(err)
				}
			}()
			if _, _, err := closedLoop(ctrl.fake, ctrl.done, 1, 200, false); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			if _, _, err := closedLoop(ctrl.fake, ctrl.done, 201, b.N, false); err != nil {
				b.Fatal(err)
			}
		})
	}
}
