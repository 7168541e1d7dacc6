package runtime

import (
	"context"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"time"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime/owner"
	"go.starlark.net/starlark"
)

// host is the Runtime as the tor module sees it.
type host Runtime

var _ builtins.Host = (*host)(nil)

func (h *host) rt() *Runtime { return (*Runtime)(h) }

func (h *host) Conn() (*ctl.Conn, error) {
	if h.conn == nil {
		if h.opts.Connect == nil {
			return nil, fmt.Errorf("%w (no control connection in this mode)", builtins.ErrNotConnected)
		}
		return nil, fmt.Errorf("%w (reconnecting)", builtins.ErrNotConnected)
	}
	return h.conn, nil
}

func (h *host) On(typ string, fn starlark.Callable) (func() bool, error) {
	r := h.rt()
	hd := &handler{fn: fn}
	r.handlers.set(typ, append(r.handlers.get(typ), hd))
	if err := r.subscribe(); err != nil {
		hs := r.handlers.get(typ)
		r.handlers.set(typ, hs[:len(hs)-1])
		return nil, err
	}
	return func() bool { return r.removeHandlers(typ, func(x *handler) bool { return x == hd }) > 0 }, nil
}

func (h *host) Off(typ string, fn starlark.Callable) int {
	return h.rt().removeHandlers(typ, func(x *handler) bool { return x.fn == fn })
}

// removeHandlers removes the handlers of typ that match, and unsubscribes
// from what no one needs any more. The slice is copied, not changed in
// place: a dispatch may be iterating the old one.
func (r *Runtime) removeHandlers(typ string, match func(*handler) bool) int {
	hs := r.handlers.get(typ)
	kept := make([]*handler, 0, len(hs))
	for _, x := range hs {
		if !match(x) {
			kept = append(kept, x)
		}
	}
	n := len(hs) - len(kept)
	if n == 0 {
		return 0
	}
	r.handlers.set(typ, kept)
	if err := r.subscribe(); err != nil {
		r.log.Debug("unsubscribing after a handler was removed", "err", err)
	}
	return n
}

func (h *host) Schedule(d time.Duration, repeat bool, fn starlark.Callable) (func(), error) {
	return h.rt().schedule(d, repeat, fn), nil
}

func (h *host) SetPolicy(p *builtins.Policy) error { return h.rt().startPolicy(p) }

// track starts keeping the live state when it is not kept yet.
func (h *host) track(ctx context.Context) error {
	r := h.rt()
	if r.state.tracking {
		return nil
	}
	if r.conn == nil {
		_, err := h.Conn()
		return err
	}
	r.state.tracking = true
	if err := r.subscribe(); err != nil {
		r.state.tracking = false
		return err
	}
	if err := r.state.resync(ctx, r.conn); err != nil {
		r.state.tracking = false
		return err
	}
	return nil
}

func (h *host) Circuits(ctx context.Context) (*builtins.Live[ctl.Circuit], error) {
	if err := h.track(ctx); err != nil {
		return nil, err
	}
	return h.state.circs, nil
}

func (h *host) Streams(ctx context.Context) (*builtins.Live[ctl.Stream], error) {
	if err := h.track(ctx); err != nil {
		return nil, err
	}
	return h.state.streams, nil
}

func (h *host) Circuit(id string) *ctl.Circuit { return h.state.circs.Get(id) }

func (h *host) StreamHandled(id string) {
	if h.policy != nil {
		h.policy.forget(id)
	}
}

func (h *host) Require(commands, config []string, keep bool) error {
	return h.rt().require(commands, config, keep)
}

func (h *host) AtExit(fn starlark.Callable) { h.atExit = append(h.atExit, fn) }

// Instance is builtins.Host's.
func (h *host) Instance() string { return h.opts.Instance }

// Metric is builtins.Host's: the metric is made in Options.Metrics, or,
// without it, in a registry of the runtime's own that nobody scrapes.
func (h *host) Metric(kind builtins.MetricKind, name, help string, labels []string, buckets []float64) (builtins.MetricSink, error) {
	m := h.metrics
	if m == nil {
		if h.unexported == nil {
			var err error
			if h.unexported, err = NewMetrics(prometheus.NewRegistry(), ""); err != nil {
				return nil, err
			}
		}
		m = h.unexported
	}
	return m.scriptMetric(kind, name, help, labels, buckets)
}

func (h *host) Launched(id string) {
	if h.state.tracking {
		h.state.launched(id)
	}
}

func (h *host) Mapped(pairs []ctl.AddrMap, keep bool) {
	r := h.rt()
	for _, p := range pairs {
		r.maps = append(r.maps, mapping{AddrMap: p, keep: keep})
	}
	if r.own.run != nil {
		addrs := make([]string, len(pairs))
		for i, p := range pairs {
			addrs[i] = p.From
		}
		if keep {
			// Kept on purpose: not to be undone after a crash either.
			r.own.run.Record(owner.Entry{Op: "unmap", Addrs: addrs})
		} else {
			// As tor answered: a virtual address (0.0.0.0, ".") is only
			// known now.
			r.own.run.Record(owner.Entry{Op: "map", Addrs: addrs})
		}
	}
}
