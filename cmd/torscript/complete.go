package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime"
)

// Shell completion (torscript completion bash|zsh|fish): scripts where a
// script goes, event names after events, grants after --allow, and
// control commands (with signal names after SIGNAL) for raw. Nothing here
// asks tor: completion runs before any connection.

// completeStar completes .star files and directories.
func completeStar(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return []string{"star"}, cobra.ShellCompDirectiveFilterFileExt
}

// completeFirstStar completes a .star file for the first argument only;
// what follows (after --) is the script's own.
func completeFirstStar(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveDefault
	}
	return completeStar(cmd, args, toComplete)
}

// completeEvents completes tor's event names (and all), in the case the
// user started with.
func completeEvents(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	names := append(ctl.EventTypes(), "all")
	lower := toComplete != "" && toComplete == strings.ToLower(toComplete)
	var out []string
	for _, n := range names {
		if lower {
			n = strings.ToLower(n)
		}
		if strings.HasPrefix(strings.ToUpper(n), strings.ToUpper(toComplete)) && !containsFold(args, n) {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeGrants completes --allow's grants, after commas too.
func completeGrants(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	done, last := "", toComplete
	if i := strings.LastIndex(toComplete, ","); i >= 0 {
		done, last = toComplete[:i+1], toComplete[i+1:]
	}
	var out []string
	for _, g := range runtime.GrantNames() {
		if strings.HasPrefix(g, strings.ToLower(last)) {
			out = append(out, done+g)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

// completeRaw completes control commands: the keywords, and SIGNAL with
// each signal name.
func completeRaw(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	var cands []string
	for _, kw := range ctl.CommandKeywords() {
		if kw != "SIGNAL" {
			cands = append(cands, kw)
		}
	}
	for _, s := range ctl.Signals() {
		cands = append(cands, "SIGNAL "+string(s))
	}
	var out []string
	for _, c := range cands {
		if strings.HasPrefix(c, strings.ToUpper(toComplete)) {
			out = append(out, c)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
