package sim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime"
	"github.com/torscript/torscript/runtime/simtor"
	"go.starlark.net/starlark"
)

// StreamDecisions is what a script decided about each stream of a
// transcript: the commands it sent about it (ATTACHSTREAM, CLOSESTREAM,
// REDIRECTSTREAM), in order, with the stream's target. Streams are in the
// order of their NEW events in the transcript.
type StreamDecisions struct {
	Streams []string            // ids
	Target  map[string]string   // id -> HOST:PORT
	Sent    map[string][]string // id -> command lines
}

// Decide runs script (with args after its path in argv) against the
// simulated tor answering as the traced one did (sim.run(..., trace=)),
// feeds it the transcript's events, and returns what it decided about
// each stream. What the script prints and logs goes to out.
func Decide(ctx context.Context, script string, args []string, tracePath string, out io.Writer, opts runtime.Options) (*StreamDecisions, error) {
	src, err := os.ReadFile(script)
	if err != nil {
		return nil, err
	}
	st := simtor.New()
	defer st.Close()
	opts.Connect = st.Dial
	opts.Stdout = out
	opts.Logger = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn, ReplaceAttr: dropTime}))
	opts.Bootstrap, opts.DryRun = nil, false
	opts.Allow = []string{"all"} // the simulated tor is the replay's own
	opts.Clock = &runtime.VirtualClock{}
	r := runtime.New(opts)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	end := r.Begin(ctx, script, src)
	defer end()
	sm := &simModule{r: r, tor: st, testFile: script}
	if err := sm.useTrace(tracePath); err != nil {
		return nil, err
	}
	events := sm.traceEvs
	argv := []starlark.Value{starlark.String(script)}
	for _, a := range args {
		argv = append(argv, starlark.String(a))
	}
	err = r.Supervise(ctx, "replay of "+script, func() error {
		if _, err := r.ExecFile(r.Thread(), script, src, argv); err != nil {
			return err
		}
		sm.settle()
		for _, ev := range events {
			st.SendEvent(ev)
			sm.settle()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s", runtime.FormatError(err))
	}
	d := &StreamDecisions{Target: map[string]string{}, Sent: map[string][]string{}}
	for _, raw := range events {
		f := strings.Fields(raw)
		// 650 STREAM ID NEW CIRC TARGET ...
		if len(f) >= 6 && f[1] == "STREAM" && (f[3] == "NEW" || f[3] == "NEWRESOLVE") {
			if _, seen := d.Target[f[2]]; !seen {
				d.Streams = append(d.Streams, f[2])
				d.Target[f[2]] = f[5]
			}
		}
	}
	for _, c := range st.Since(sm.traceFrom) {
		f := strings.Fields(c.Line)
		if len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "ATTACHSTREAM", "CLOSESTREAM", "REDIRECTSTREAM":
			line := c.Line
			if strings.EqualFold(f[0], "CLOSESTREAM") && len(f) >= 3 {
				if n, err := strconv.Atoi(f[2]); err == nil {
					line += " (" + ctl.RelayEndReason(n).String() + ")"
				}
			}
			d.Sent[f[1]] = append(d.Sent[f[1]], line)
		}
	}
	return d, nil
}

// Describe says what the commands about a stream did, for a person: "none"
// when there were none.
func Describe(sent []string) string {
	if len(sent) == 0 {
		return "nothing sent (left waiting, or tor's own stream)"
	}
	return strings.Join(sent, "; ")
}
