package main

import (
	_ "embed"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// systemdUnit is dist/torscript@.service: a policy for one tor instance,
// beside Debian's tor@.service.
//
//go:embed dist/torscript@.service
var systemdUnit string

func newCmdUnit(f *factory) *cobra.Command {
	return &cobra.Command{
		Use:   "unit",
		Short: "Print a systemd template unit, torscript@.service, that runs a policy beside tor@NAME.service",
		Long: `Print torscript@.service: a systemd template unit that runs
/etc/torscript/NAME.star against the tor instance NAME (Debian's
tor-instance-create and tor@NAME.service), as a dynamic user in the
instance's group, with systemd's hardening options. Its comments say how to
install it.`,
		Example: `  torscript unit > /etc/systemd/system/torscript@.service`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprint(f.out, systemdUnit)
			return err
		},
	}
}

func newCmdMan(f *factory) *cobra.Command {
	return &cobra.Command{
		Use:     "man DIR",
		Short:   "Write torscript's manual pages (torscript.1, torscript-run.1, ...) into DIR",
		Example: `  torscript man /usr/local/share/man/man1 && man torscript-run`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			if err := doc.GenManTree(root, &doc.GenManHeader{Title: "TORSCRIPT", Section: "1", Source: "torscript " + version()}, dir); err != nil {
				return err
			}
			fmt.Fprintf(f.errOut, "torscript: manual pages written to %s\n", dir)
			return nil
		},
	}
}
