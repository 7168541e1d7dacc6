package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/torscript/torscript/ctl"
)

// rawOptions are the inputs of `torscript raw`.
type rawOptions struct {
	f        *factory
	commands []string // empty: read commands from standard input
	json     bool
}

func newCmdRaw(f *factory, runF func(context.Context, *rawOptions) error) *cobra.Command {
	opts := &rawOptions{f: f}
	cmd := &cobra.Command{
		Use:   "raw 'COMMAND' ...",
		Short: "Send raw control commands and print tor's replies",
		Long: `Send each argument to tor as one control command and print the reply as tor
wrote it. Without arguments, commands are read from standard input, one a
line. A command starting with "+" is multi-line: use a literal newline to
separate its data. After a successful SETEVENTS, events are printed until
Ctrl-C, as tor-prompt --run does. With --json each reply is one JSON object
a line ({"time", "command", "status", "lines", "raw"}), and each event as
torscript events --json prints it.`,
		Example: `  torscript raw 'GETINFO version' 'GETINFO circuit-status'
  torscript raw --json 'GETINFO version'
  torscript raw 'SETEVENTS STREAM CIRC'`,
		ValidArgsFunction: completeRaw,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.commands = args
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return rawRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print each reply, and each event, as one JSON object a line")
	return cmd
}

func rawRun(ctx context.Context, opts *rawOptions) error {
	c, err := opts.f.connect(ctx)
	if err != nil {
		return err
	}
	out := opts.f.out
	var failed error
	watching := false
	send := func(cmd string) error {
		r, err := c.Raw(ctx, cmd)
		if r != nil {
			if opts.json {
				b, jerr := replyJSON(cmd, r)
				if jerr != nil {
					return jerr
				}
				out.Write(append(b, '\n'))
			} else {
				io.WriteString(out, toLF(r.String()))
			}
		}
		var te *ctl.Error
		switch {
		case errors.As(err, &te):
			failed = err
			return nil
		case err != nil:
			return err
		}
		// Read as tor read it ("SETEVENTS\tCIRC" is SETEVENTS too).
		if cl, err := ctl.ParseCommandLine(strings.TrimSpace(cmd)); err == nil && cl.Keyword == "SETEVENTS" {
			watching = strings.TrimSpace(cl.Args) != ""
		}
		return nil
	}
	if len(opts.commands) > 0 {
		for _, cmd := range opts.commands {
			if err := send(cmd); err != nil {
				return err
			}
		}
	} else {
		sc := bufio.NewScanner(opts.f.in)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
				if err := send(line); err != nil {
					return err
				}
			}
		}
		if err := sc.Err(); err != nil {
			return err
		}
	}
	if watching {
		if err := printEvents(ctx, c, out, opts.json); err != nil {
			return err
		}
	}
	if failed != nil {
		return silentError{code: exitCode(failed)}
	}
	return nil
}

// printEvents prints events until ctx ends or the connection drops.
func printEvents(ctx context.Context, c *ctl.Conn, out io.Writer, asJSON bool) error {
	w := bufio.NewWriter(out)
	defer w.Flush()
	for {
		var ev ctl.Event
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case ev, ok = <-c.Events():
		}
		if !ok {
			if err := c.Err(); err != nil && !errors.Is(err, ctl.ErrClosed) {
				return fmt.Errorf("while watching events: %w", err)
			}
			return nil
		}
		if asJSON {
			if err := writeEventJSON(w, ev); err != nil {
				return err
			}
		} else {
			w.WriteString(toLF(ev.Reply().String()))
		}
		if len(c.Events()) == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
}

func toLF(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }
