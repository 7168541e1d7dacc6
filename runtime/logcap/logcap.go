// Package logcap bounds what a log can cost, whatever a script does: a
// slog.Handler that coalesces repeated records, cuts long values, and
// keeps the bytes written in a minute under a budget.
//
//   - Repeats: past PerWindow records with the same level, message and
//     attributes (the error, the stream, ...) within Window, they are not
//     printed; they are counted, and
//     when the window closes one record says "repeated N times" (with the
//     last one's attributes). A handler failing every millisecond writes
//     a line or two a window, not a thousand a second.
//   - Values: a string value longer than MaxValue is cut in the middle.
//   - Budget: past Budget bytes in a minute, records are dropped and
//     counted; the first record of the next minute says how many were.
//
// Its state is shared by the handlers WithAttrs and WithGroup derive.
package logcap

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Defaults.
const (
	Window    = 5 * time.Second
	PerWindow = 3 // records with the same key printed in a window
	MaxValue  = 4096
	Budget    = 512 << 10 // bytes a minute
)

type repeat struct {
	first, last time.Time
	printed     int         // records of the window printed
	n           int         // repeats not printed
	rec         slog.Record // the last of them
	h           slog.Handler
}

type state struct {
	mu      sync.Mutex
	seen    map[string]*repeat
	minute  time.Time
	used    int
	dropped int
	now     func() time.Time
}

// Handler is the bounded handler.
type Handler struct {
	next slog.Handler
	st   *state
}

// New wraps next.
func New(next slog.Handler) *Handler {
	return &Handler{next: next, st: &state{seen: map[string]*repeat{}, now: time.Now}}
}

// Enabled reports what next does.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// WithAttrs and WithGroup share the state.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(boundAttrs(as)), st: h.st}
}

func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), st: h.st}
}

// Handle prints r unless it repeats a record printed within Window or the
// minute's budget is spent.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	r = boundRecord(r)
	st := h.st
	st.mu.Lock()
	now := st.now()
	out := st.flushLocked(ctx, now, false)
	key := keyOf(r)
	rp := st.seen[key]
	if rp != nil && now.Sub(rp.first) < Window && rp.printed >= PerWindow {
		rp.n++
		rp.last, rp.rec, rp.h = now, r, h.next
		st.mu.Unlock()
		return emit(ctx, out)
	}
	if rp == nil {
		rp = &repeat{first: now, h: h.next}
		st.seen[key] = rp
	}
	rp.printed++
	if st.minute.IsZero() || now.Sub(st.minute) >= time.Minute {
		if st.dropped > 0 {
			out = append(out, pending{h.next, note(now, slog.LevelWarn, fmt.Sprintf("log: %d records left out in the last minute, past the log budget of %d KiB a minute", st.dropped, Budget>>10))})
		}
		st.minute, st.used, st.dropped = now, 0, 0
	}
	size := sizeOf(r)
	if st.used+size > Budget {
		st.dropped++
		st.mu.Unlock()
		return emit(ctx, out)
	}
	st.used += size
	out = append(out, pending{h.next, r})
	st.mu.Unlock()
	return emit(ctx, out)
}

// Flush prints the repeat counts still open (at exit).
func (h *Handler) Flush() {
	st := h.st
	st.mu.Lock()
	out := st.flushLocked(context.Background(), st.now(), true)
	st.mu.Unlock()
	emit(context.Background(), out)
}

type pending struct {
	h slog.Handler
	r slog.Record
}

func emit(ctx context.Context, out []pending) error {
	var first error
	for _, p := range out {
		if err := p.h.Handle(ctx, p.r); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// flushLocked closes the windows that have ended (all of them with all),
// returning the "repeated" records to print.
func (st *state) flushLocked(_ context.Context, now time.Time, all bool) []pending {
	var out []pending
	for k, rp := range st.seen {
		if !all && now.Sub(rp.first) < Window {
			continue
		}
		delete(st.seen, k)
		if rp.n == 0 {
			continue
		}
		r := rp.rec.Clone()
		r.Message = fmt.Sprintf("%s (repeated %d times in %v)", r.Message, rp.n, rp.last.Sub(rp.first).Round(time.Millisecond))
		r.Time = rp.last
		out = append(out, pending{rp.h, r})
	}
	return out
}

func note(t time.Time, l slog.Level, msg string) slog.Record {
	return slog.NewRecord(t, l, msg, 0)
}

// keyOf is what makes two records repeats: level, message and every
// attribute but the counters that change from one repeat to the next. So
// a record about another stream or circuit is not a repeat (the byte
// budget bounds those).
func keyOf(r slog.Record) string {
	var b strings.Builder
	b.WriteString(r.Level.String())
	b.WriteByte(0)
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "failures_in_a_row", "took", "dropped", "attempt":
			return true
		}
		b.WriteByte(0)
		b.WriteString(a.Key)
		b.WriteByte('=')
		b.WriteString(a.Value.String())
		return true
	})
	return b.String()
}

func sizeOf(r slog.Record) int {
	n := 48 + len(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		n += len(a.Key) + len(a.Value.String()) + 2
		return true
	})
	return n
}

func boundRecord(r slog.Record) slog.Record {
	long := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Value.Kind() == slog.KindString && len(a.Value.String()) > MaxValue || a.Value.Kind() == slog.KindAny {
			long = true
			return false
		}
		return true
	})
	if !long && len(r.Message) <= MaxValue {
		return r
	}
	nr := slog.NewRecord(r.Time, r.Level, cut(r.Message), r.PC)
	var as []slog.Attr
	r.Attrs(func(a slog.Attr) bool {
		as = append(as, a)
		return true
	})
	nr.AddAttrs(boundAttrs(as)...)
	return nr
}

func boundAttrs(as []slog.Attr) []slog.Attr {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		switch a.Value.Kind() {
		case slog.KindString, slog.KindAny:
			if s := a.Value.String(); len(s) > MaxValue {
				a = slog.String(a.Key, cut(s))
			}
		}
		out[i] = a
	}
	return out
}

// cut keeps the start and the end of a long text.
func cut(s string) string {
	if len(s) <= MaxValue {
		return s
	}
	head, tail := MaxValue*2/3, MaxValue/4
	return s[:head] + fmt.Sprintf(" …(%d bytes left out)… ", len(s)-head-tail) + s[len(s)-tail:]
}
