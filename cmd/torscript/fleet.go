package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime"
)

// fleetAddrs is the tors a run drives: every --control, and the control
// sockets --control-glob matches ("unix:/run/tor-instances/*/control").
func fleetAddrs(controls []string, glob string) ([]string, error) {
	addrs := slices.Clone(controls)
	if glob != "" {
		path, unix := strings.CutPrefix(glob, "unix:")
		if !unix && !strings.HasPrefix(glob, "/") {
			return nil, usageError{fmt.Errorf("--control-glob %q: want unix:PATTERN (a control socket's path, with * and ?)", glob)}
		}
		matches, err := filepath.Glob(path)
		if err != nil {
			return nil, usageError{fmt.Errorf("--control-glob %q: %w", glob, err)}
		}
		if len(matches) == 0 {
			return nil, connectError{fmt.Errorf("--control-glob %q matches no control socket", glob)}
		}
		for _, m := range matches {
			addrs = append(addrs, "unix:"+m)
		}
	}
	slices.Sort(addrs)
	return slices.Compact(addrs), nil
}

// runFleet runs the script against several tors at once: each gets a copy
// of the script of its own (its globals, handlers, policy), its own live
// state, connection, reconnects, guardian and journal, so that one tor
// going away never stalls the others. tor.instance names the tor; what a
// copy prints is prefixed with it, and its log lines carry it. The run
// ends when every copy has ended; its status is the worst of theirs.
func runFleet(ctx context.Context, opts *runOptions, src []byte, addrs []string) error {
	f := opts.f
	switch {
	case f.conn.cookie != "":
		return usageError{errors.New("--cookie with several tors: each tor's PROTOCOLINFO names its own cookie")}
	case f.conn.launch:
		return usageError{errors.New("--launch drives one tor of its own, not several")}
	case f.conn.trace != "":
		return usageError{errors.New("--trace with several tors: run one per tor to record a transcript")}
	}
	if err := limitMemory(opts.sf.maxMemoryBytes); err != nil {
		f.log.Warn("cannot limit memory", "err", err)
	}
	// Metrics first: nothing runs yet if they cannot be served.
	metrics := make([]*runtime.Metrics, len(addrs))
	if opts.sf.metrics != "" {
		reg, err := serveMetricsRegistry(ctx, f, opts.sf.metrics)
		if err != nil {
			return err
		}
		for i, addr := range addrs {
			if metrics[i], err = runtime.NewMetrics(reg, addr); err != nil {
				return err
			}
		}
	}
	var outMu sync.Mutex
	type copyRun struct {
		r   *runtime.Runtime
		err error
	}
	runs := make([]*copyRun, len(addrs))
	var wg sync.WaitGroup
	f.log.Info("running the script on several tors", "tors", strings.Join(addrs, " "))
	for i, addr := range addrs {
		cr := &copyRun{}
		runs[i] = cr
		fi := f.forInstance(addr)
		var own *runtime.Ownership
		var onWedged func(string, time.Duration)
		if guardSupported && !opts.sf.noGuardian {
			var err error
			if own, onWedged, err = startGuardian(ctx, fi, opts.file, &opts.sf); err != nil {
				fi.log.Error("this tor is not driven: could not start", "err", err)
				cr.err = err
				continue
			}
		}
		ropts := runtime.Options{
			Connect:         func(ctx context.Context) (*ctl.Conn, error) { return fi.connect(ctx) },
			Logger:          fi.log,
			Stdout:          &prefixWriter{mu: &outMu, w: f.out, prefix: "[" + addr + "] "},
			MaxSteps:        opts.sf.maxSteps,
			HandlerTimeout:  opts.sf.handlerTimeout,
			TopLevelTimeout: opts.sf.topLevel,
			DryRun:          opts.sf.dryRun,
			QuietDecisions:  opts.sf.quiet,
			Instance:        addr,
			Args:            opts.args,
			Allow:           opts.sf.allow,
			Owner:           own,
			OnWedged:        onWedged,
			Metrics:         metrics[i],
		}
		if !opts.sf.noWait {
			ropts.Bootstrap = &prefixWriter{mu: &outMu, w: f.errOut, prefix: "[" + addr + "] "}
		}
		cr.r = runtime.New(ropts)
		wg.Add(1)
		go func() {
			defer wg.Done()
			cr.err = cr.r.Run(ctx, opts.file, src)
			if cr.err != nil {
				if msg, _ := errorText(cr.err); msg != "" {
					fi.log.Error("the script ended with an error on this tor", "err", msg)
				}
			}
		}()
	}
	reload, err := hupReloads(opts.hup, f)
	if err != nil {
		return err
	}
	if reload {
		var rs []*runtime.Runtime
		for _, cr := range runs {
			if cr.r != nil {
				rs = append(rs, cr.r)
			}
		}
		f.setHUP(func() { reloadScript(ctx, f, rs, opts) })
		defer f.setHUP(nil)
	}
	wg.Wait()
	var worst error
	for _, cr := range runs {
		if cr.err != nil && (worst == nil || exitCode(cr.err) > exitCode(worst)) {
			worst = cr.err
		}
	}
	if worst != nil {
		return silentError{code: exitCode(worst)}
	}
	return nil
}

// prefixWriter writes each line with a prefix, whole lines at a time, to
// a writer other prefixWriters share (mu).
type prefixWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		p.mu.Lock()
		_, err := io.WriteString(p.w, p.prefix+string(p.buf[:i+1]))
		p.mu.Unlock()
		p.buf = p.buf[i+1:]
		if err != nil {
			return len(b), err
		}
	}
	return len(b), nil
}
