package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
)

// eventsOptions are the inputs of `torscript events`.
type eventsOptions struct {
	f     *factory
	types []string
	json  bool
}

func newCmdEvents(f *factory, runF func(context.Context, *eventsOptions) error) *cobra.Command {
	opts := &eventsOptions{f: f}
	cmd := &cobra.Command{
		Use:   "events TYPE ...",
		Short: "Subscribe to events and print them until Ctrl-C",
		Long: `Subscribe to the named events (SETEVENTS) and print each as tor sent it, or
with --json as one JSON object a line: when torscript read it (time), its type,
its raw text, and its fields under the names scripts see them by. "all" stands
for every event this tor lists in events/names.`,
		Example: `  torscript events STREAM CIRC
  torscript events --json STREAM`,
		ValidArgsFunction: completeEvents,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("events: name at least one event type (or all)")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.types = args
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return eventsRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print one JSON object a line")
	return cmd
}

func eventsRun(ctx context.Context, opts *eventsOptions) error {
	c, err := opts.f.connect(ctx)
	if err != nil {
		return err
	}
	var types []string
	for _, t := range opts.types {
		if strings.EqualFold(t, "all") {
			names, err := c.GetInfoOne(ctx, "events/names")
			if err != nil {
				return fmt.Errorf("events/names: %w", err)
			}
			types = append(types, strings.Fields(names)...)
			continue
		}
		types = append(types, strings.ToUpper(t))
	}
	if err := c.SetEvents(ctx, types...); err != nil {
		if ctl.ErrorCode(err) == 552 {
			// "552 Unrecognized event": say which ones tor knows.
			if names, nerr := c.GetInfoOne(ctx, "events/names"); nerr == nil {
				return fmt.Errorf("%w; tor's events are: %s (or all)", err, strings.Join(strings.Fields(names), " "))
			}
		}
		return err
	}
	return printEvents(ctx, c, opts.f.out, opts.json)
}

// eventJSON is the --json form of an event: when torscript read it, its
// type, its raw text and its fields under the names a script sees them
// by (stream.target_host, circuit.build_flags, event.args).
type eventJSON struct {
	Time   string `json:"time"`
	Type   string `json:"type"`
	Raw    string `json:"raw"`
	Fields any    `json:"fields"`
}

func writeEventJSON(w *bufio.Writer, ev ctl.Event) error {
	b, err := json.Marshal(eventJSON{
		Time:   time.Now().UTC().Format(time.RFC3339Nano),
		Type:   ev.EventType(),
		Raw:    toLF(ev.Reply().String()),
		Fields: starlarkJSON(builtins.EventValue(ev, nil), 0),
	})
	if err != nil {
		return err
	}
	w.Write(b)
	return w.WriteByte('\n')
}

// valueJSON is eval --json's form of a value: {"time", "value"}, the
// value as starlarkJSON makes it.
func valueJSON(v starlark.Value) string {
	b, err := json.Marshal(struct {
		Time  string `json:"time"`
		Value any    `json:"value"`
	}{time.Now().UTC().Format(time.RFC3339Nano), starlarkJSON(v, 0)})
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	return string(b)
}

// replyJSON is raw --json's form of a reply: when torscript read it, the
// command, the status code, the lines (code, separator, text, and the
// data of a "+" line) and the raw text.
func replyJSON(cmd string, r *ctl.Reply) ([]byte, error) {
	type line struct {
		Code int    `json:"code"`
		Sep  string `json:"sep"`
		Text string `json:"text"`
		Data string `json:"data,omitempty"`
	}
	lines := make([]line, len(r.Lines))
	for i, l := range r.Lines {
		lines[i] = line{l.Code, string(l.Sep), l.Text, l.Data}
	}
	return json.Marshal(struct {
		Time    string `json:"time"`
		Command string `json:"command"`
		Status  int    `json:"status"`
		Lines   []line `json:"lines"`
		Raw     string `json:"raw"`
	}{time.Now().UTC().Format(time.RFC3339Nano), ctl.ScrubCommand(cmd), r.Code(), lines, toLF(r.String())})
}

// starlarkJSON is v as JSON encodes it: a record (a tor.stream, a
// tor.event) as an object of its fields, without its methods; records
// inside records (a stream's circuit) down to a few levels.
func starlarkJSON(v starlark.Value, depth int) any {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil
	case starlark.Bool:
		return bool(x)
	case starlark.Int:
		if i, ok := x.Int64(); ok {
			return i
		}
		return x.String()
	case starlark.Float:
		return float64(x)
	case starlark.String:
		return string(x)
	case starlark.Bytes:
		return string(x)
	case startime.Time:
		return time.Time(x).UTC().Format(time.RFC3339Nano)
	case startime.Duration:
		return time.Duration(x).Seconds()
	case *starlark.Dict:
		m := make(map[string]any, x.Len())
		for _, kv := range x.Items() {
			k, ok := starlark.AsString(kv[0])
			if !ok {
				k = kv[0].String()
			}
			m[k] = starlarkJSON(kv[1], depth+1)
		}
		return m
	case starlark.Indexable:
		out := make([]any, x.Len())
		for i := range out {
			out[i] = starlarkJSON(x.Index(i), depth+1)
		}
		return out
	case starlark.HasAttrs:
		if depth > 3 {
			return v.String()
		}
		m := map[string]any{}
		for _, name := range x.AttrNames() {
			a, err := x.Attr(name)
			if err != nil || a == nil {
				continue
			}
			if _, ok := a.(starlark.Callable); ok {
				continue
			}
			m[name] = starlarkJSON(a, depth+1)
		}
		return m
	}
	return v.String()
}
