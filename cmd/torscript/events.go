package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

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
with --json as one JSON object a line with its parsed fields. "all" stands
for every event this tor lists in events/names.`,
		Example: `  torscript events STREAM CIRC
  torscript events --json STREAM`,
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

// eventJSON is the --json form of an event: its type, its raw text and its
// parsed fields.
type eventJSON struct {
	Type   string    `json:"type"`
	Raw    string    `json:"raw"`
	Fields ctl.Event `json:"fields"`
}

func writeEventJSON(w *bufio.Writer, ev ctl.Event) error {
	b, err := json.Marshal(eventJSON{Type: ev.EventType(), Raw: toLF(ev.Reply().Raw), Fields: ev})
	if err != nil {
		return err
	}
	w.Write(b)
	return w.WriteByte('\n')
}
