package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime/owner"
)

// ownerOptions are the inputs of `torscript repair` and `torscript status`.
type ownerOptions struct {
	f *factory
}

func newCmdRepair(f *factory, runF func(context.Context, *ownerOptions) error) *cobra.Command {
	opts := &ownerOptions{f: f}
	return &cobra.Command{
		Use:   "repair",
		Short: "Undo what a dead torscript left on tor, and exit",
		Long: `Undo what torscripts that died without cleaning up (kill -9, a crash, a
power cut of the machine but not of tor) left on the tor: restore
__LeaveStreamsUnattached, hand the streams waiting for a controller to tor
(or close them, when the dead run's on_error said so), remove the address
mappings it made and restore the config keys it set. It reads the records
each run keeps under $TORSCRIPT_STATE_DIR (default
$XDG_STATE_HOME/torscript). A torscript that is still running is left
alone. torscript run does the same before it starts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return repairRun(cmd.Context(), opts)
		},
	}
}

// openRecords connects to tor and opens the records kept of it.
func openRecords(ctx context.Context, f *factory) (*ctl.Conn, *owner.Tor, error) {
	c, control, err := f.dialGuard(ctx)
	if err != nil {
		return nil, nil, err
	}
	t, err := owner.OpenTor(owner.Dir(), owner.Key(ctx, c, control))
	return c, t, err
}

func repairRun(ctx context.Context, opts *ownerOptions) error {
	f := opts.f
	c, t, err := openRecords(ctx, f)
	if err != nil {
		return err
	}
	done, err := t.Repair(ctx, c)
	for _, d := range done {
		fmt.Fprintf(f.out, "undid: %s\n", d)
	}
	if err != nil {
		return err
	}
	live, _, _ := t.Runs()
	for _, h := range live {
		fmt.Fprintf(f.out, "left alone: %s (alive)\n", h)
	}
	if len(done) == 0 {
		fmt.Fprintln(f.out, "nothing to repair")
	}
	return nil
}

func newCmdStatus(f *factory, runF func(context.Context, *ownerOptions) error) *cobra.Command {
	opts := &ownerOptions{f: f}
	return &cobra.Command{
		Use:   "status",
		Short: "Say which torscript holds the stream policy of tor, if any",
		Long: `Say which torscript (pid, host, script, since when) holds the stream policy
of the tor, which other torscripts are running against it, and whether a
dead one left changes that torscript repair would undo.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return statusRun(cmd.Context(), opts)
		},
	}
}

func statusRun(ctx context.Context, opts *ownerOptions) error {
	f := opts.f
	c, t, err := openRecords(ctx, f)
	if err != nil {
		return err
	}
	pol, err := t.OpenPolicy()
	if err != nil {
		return err
	}
	defer pol.Close()
	if h, held := pol.Holder(); held {
		fmt.Fprintf(f.out, "policy: held by %s\n", h)
	} else {
		fmt.Fprintln(f.out, "policy: no torscript holds it")
	}
	leave := "unknown"
	if conf, err := c.GetConf(ctx, "__LeaveStreamsUnattached"); err == nil {
		if e, ok := conf.Lookup("__LeaveStreamsUnattached"); ok {
			leave = e.Value
			if e.NoValue {
				leave = "(default)"
			}
		}
	}
	fmt.Fprintf(f.out, "__LeaveStreamsUnattached: %s\n", leave)
	live, dead, err := t.Runs()
	if err != nil {
		return err
	}
	for _, h := range live {
		fmt.Fprintf(f.out, "running: %s\n", h)
	}
	for _, d := range dead {
		if !d.State.Empty() {
			who := "a torscript"
			if d.State.Holder != nil {
				who = d.State.Holder.String()
			}
			fmt.Fprintf(f.out, "dead: %s left changes: %s (torscript repair undoes them)\n", who, d.State.Summary())
		}
		d.Close()
	}
	return nil
}
