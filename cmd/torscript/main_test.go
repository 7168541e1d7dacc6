package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/torscript/torscript/ctl"
)

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want exitCodeT
	}{
		{nil, exitOK},
		{errors.New("boom"), exitError},
		{usageError{errors.New("bad flag")}, exitUsage},
		{connectError{errors.New("no tor")}, exitConnect},
		{fmt.Errorf("GETINFO: %w", &ctl.Error{Code: 552, Msg: "Unrecognized key"}), exitTorError},
		{silentError{code: exitTorError}, exitTorError},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func runRoot(t *testing.T, args ...string) (*factory, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := newFactory(strings.NewReader(""), &out, &errOut)
	root := newCmdRoot(f)
	root.SetArgs(args)
	return f, root.ExecuteContext(context.Background())
}

func TestRawFlags(t *testing.T) {
	var got *rawOptions
	var out, errOut bytes.Buffer
	f := newFactory(strings.NewReader(""), &out, &errOut)
	root := newCmdRoot(f)
	for _, c := range root.Commands() {
		if c.Name() == "raw" {
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(newCmdRaw(f, func(_ context.Context, o *rawOptions) error { got = o; return nil }))
	root.SetArgs([]string{"raw", "--control", "unix:/x/control", "--cookie", "/c", "--trace", "-", "GETINFO version", "GETINFO config-file"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got == nil || strings.Join(got.commands, "|") != "GETINFO version|GETINFO config-file" {
		t.Fatalf("commands %+v", got)
	}
	if f.conn.control != "unix:/x/control" || f.conn.cookie != "/c" || f.conn.trace != "-" {
		t.Errorf("connection flags %+v", f.conn)
	}
}

func TestUsageErrors(t *testing.T) {
	if _, err := runRoot(t, "raw", "--no-such-flag"); exitCode(err) != exitUsage {
		t.Errorf("unknown flag: %v (exit %d)", err, exitCode(err))
	}
	if _, err := runRoot(t, "events"); exitCode(err) != exitUsage {
		t.Errorf("events without types: %v", err)
	}
	if _, err := runRoot(t, "--log-level", "loud", "raw", "x"); exitCode(err) != exitUsage {
		t.Errorf("bad log level: %v", err)
	}
	if _, err := runRoot(t, "raw", "--launch", "--control", "127.0.0.1:1", "GETINFO version"); exitCode(err) != exitUsage {
		t.Errorf("--launch with --control: %v", err)
	}
}
