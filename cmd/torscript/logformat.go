package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
)

// The log's formats (--log-format): "text" is slog's key=value lines,
// "json" slog's JSON objects, and "auto" (the default) the compact form on
// a terminal (term: w is one, or writes above the REPL's prompt), text
// otherwise. The compact form is for people:
//
//	18:35:15 INFO policy started on_error=tor.attach(None) timeout=30s
func logHandler(format string, w io.Writer, term bool, level slog.Leveler) (slog.Handler, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.NewTextHandler(w, opts), nil
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	case "compact":
		return newCompactHandler(w, level), nil
	case "auto", "":
		if term {
			return newCompactHandler(w, level), nil
		}
		return slog.NewTextHandler(w, opts), nil
	}
	return nil, fmt.Errorf("--log-format %q: want auto, text, json or compact", format)
}

// compactHandler writes "15:04:05 LEVEL message key=value ...": the
// attributes as slog's text handler writes them (quoting, groups), after
// the time, level and message it leaves out.
type compactHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	level slog.Leveler
	buf   *bytes.Buffer // the text handler's output, under mu
	text  slog.Handler  // writes the attributes alone into buf
}

func newCompactHandler(w io.Writer, level slog.Leveler) *compactHandler {
	buf := new(bytes.Buffer)
	text := slog.NewTextHandler(buf, &slog.HandlerOptions{
		Level: slog.LevelDebug - 4, // the level is ours to check
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
				return slog.Attr{}
			}
			return a
		},
	})
	return &compactHandler{mu: new(sync.Mutex), w: w, level: level, buf: buf, text: text}
}

func (h *compactHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *compactHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Reset()
	if err := h.text.Handle(ctx, r); err != nil {
		return err
	}
	attrs := bytes.TrimRight(h.buf.Bytes(), "\n")
	line := make([]byte, 0, 32+len(r.Message)+len(attrs))
	if !r.Time.IsZero() {
		line = r.Time.AppendFormat(line, "15:04:05 ")
	}
	line = append(line, r.Level.String()...)
	line = append(line, ' ')
	line = append(line, r.Message...)
	if len(attrs) > 0 {
		line = append(line, ' ')
		line = append(line, attrs...)
	}
	line = append(line, '\n')
	_, err := h.w.Write(line)
	return err
}

func (h *compactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.text = h.text.WithAttrs(as)
	return &c
}

func (h *compactHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.text = h.text.WithGroup(name)
	return &c
}
