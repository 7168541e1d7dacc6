package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime"
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
		// What runtime.Run, Eval and Session.Close return.
		{&runtime.ExitError{Code: 7}, 7},
		{&runtime.ConnectError{Err: connectError{errors.New("no tor")}}, exitConnect},
		{&runtime.ConnectError{Err: errors.New("GETINFO circuit-status: connection reset")}, exitConnect},
		{&runtime.ScriptError{Err: errors.New("x.star:1:1: undefined: y")}, exitError},
		{&runtime.ScriptError{Err: fmt.Errorf("tor.get_info: %w", &ctl.Error{Code: 552, Msg: "Unrecognized key"})}, exitTorError},
		{&runtime.BootstrapError{Err: &ctl.Error{Code: 551, Msg: "Internal error"}}, exitTorError},
		{&runtime.BootstrapError{Err: errors.New("connection lost")}, exitError},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// TestErrorText: a script's failure is printed as the script's error, with
// no prefix; torscript's own errors after "torscript: "; an exit() and a
// failure already reported print nothing.
func TestErrorText(t *testing.T) {
	for _, tc := range []struct {
		err    error
		want   string
		script bool
	}{
		{nil, "", false},
		{silentError{exitError}, "", false},
		{&runtime.ExitError{Code: 3}, "", false},
		{usageError{errors.New("--max-memory \"x\": want a size")}, "torscript: --max-memory \"x\": want a size", false},
		{&runtime.ConnectError{Err: connectError{errors.New("dial tcp 127.0.0.1:1: connection refused")}}, "torscript: dial tcp 127.0.0.1:1: connection refused", false},
		{&runtime.ScriptError{Err: errors.New("x.star:1:7: got end of file, want primary expression")}, "x.star:1:7: got end of file, want primary expression", true},
		{&runtime.BootstrapError{Err: errors.New("lost")}, "lost", true},
	} {
		msg, script := errorText(tc.err)
		if msg != tc.want || script != tc.script {
			t.Errorf("errorText(%v) = %q, %v; want %q, %v", tc.err, msg, script, tc.want, tc.script)
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

// parseFlags runs the root command with args, the subcommand newCmd makes
// being given a runF that keeps its options instead of running, and
// returns them and the factory.
func parseFlags[O any](t *testing.T, newCmd func(*factory, func(context.Context, O) error) *cobra.Command, args []string) (O, *factory, error) {
	t.Helper()
	var got O
	var out, errOut bytes.Buffer
	f := newFactory(strings.NewReader(""), &out, &errOut)
	root := newCmdRoot(f)
	sub := newCmd(f, func(_ context.Context, o O) error { got = o; return nil })
	for _, c := range root.Commands() {
		if c.Name() == sub.Name() {
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(sub)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return got, f, err
}

func TestRawFlags(t *testing.T) {
	got, f, err := parseFlags(t, newCmdRaw, []string{"raw", "--control", "unix:/x/control", "--cookie", "/c", "--trace", "-", "GETINFO version", "GETINFO config-file"})
	if err != nil {
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
	// Cobra's own checks: arguments, an unknown command.
	for _, args := range [][]string{{"run"}, {"eval"}, {"check"}, {"version", "x"}, {"no-such-command"}, {"testnet", "bogus"}} {
		if _, err := runRoot(t, args...); exitCode(asUsage(err)) != exitUsage {
			t.Errorf("%q: %v (exit %d), want a usage error", args, err, exitCode(asUsage(err)))
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out, errOut bytes.Buffer
		root := newCmdRoot(newFactory(strings.NewReader(""), &out, &errOut))
		root.SetArgs(args)
		if err := root.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		got := out.String()
		first, rest, _ := strings.Cut(got, "\n")
		if first != "torscript "+version() || !strings.Contains(first, "(go1.") {
			t.Errorf("%q printed %q", args, got)
		}
		if args[0] == "version" && (!strings.Contains(rest, "module   github.com/torscript/torscript") || !strings.Contains(rest, "commit   ") || !strings.Contains(rest, "go       go1.")) {
			t.Errorf("torscript version lacks the module, commit or Go lines:\n%s", got)
		}
	}
}

func TestReplFlags(t *testing.T) {
	got, _, err := parseFlags(t, newCmdRepl, []string{"repl", "--dry-run", "--max-steps", "5", "--allow", "SAVECONF,load", "--take-over", "--max-memory", "2GiB", "--no-guardian"})
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || !got.allowGiven || strings.Join(got.sf.allow, " ") != "SAVECONF load" {
		t.Fatalf("options %+v", got)
	}
	if !got.sf.dryRun || got.sf.maxSteps != 5 || !got.sf.takeOver || got.sf.maxMemory != "2GiB" || !got.sf.noGuardian {
		t.Errorf("script flags %+v", got.sf)
	}
	if _, err := runRoot(t, "repl", "extra"); err == nil {
		t.Errorf("repl with an argument: no error")
	}
}

func TestJoinsPrivateNetwork(t *testing.T) {
	for _, tc := range []struct {
		lines []string
		want  bool
	}{
		{nil, false},
		{[]string{"SocksPort 0", "Log notice stderr"}, false},
		{[]string{"TestingTorNetwork 1", "DirAuthority auth1 orport=1 127.0.0.1:2 AAAA"}, true},
		{[]string{"dirauthority auth1 orport=1 127.0.0.1:2 AAAA"}, true},
		{[]string{"AlternateDirAuthority x 127.0.0.1:2 AAAA"}, true},
		{[]string{"DirAuthorityFallbackRate 1"}, false},
	} {
		if got := joinsPrivateNetwork(tc.lines); got != tc.want {
			t.Errorf("joinsPrivateNetwork(%q) = %v, want %v", tc.lines, got, tc.want)
		}
	}
}

// TestHelpShowsOwnFlags: commands that do not connect to tor do not list
// the connection flags; those that do, do.
func TestHelpShowsOwnFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		control bool
	}{
		{[]string{"check", "--help"}, false},
		{[]string{"test", "--help"}, false},
		{[]string{"testnet", "up", "--help"}, false},
		{[]string{"version", "--help"}, false},
		{[]string{"raw", "--help"}, true},
		{[]string{"run", "--help"}, true},
	} {
		var out, errOut bytes.Buffer
		root := newCmdRoot(newFactory(strings.NewReader(""), &out, &errOut))
		root.SetArgs(tc.args)
		if err := root.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		help := out.String()
		if got := strings.Contains(help, "--control"); got != tc.control {
			t.Errorf("%q: --control listed %v, want %v:\n%s", tc.args, got, tc.control, help)
		}
		if !strings.Contains(help, "--log-level") {
			t.Errorf("%q: --log-level not listed", tc.args)
		}
	}
}

// TestEventJSON: events --json names fields as scripts see them.
func TestEventJSON(t *testing.T) {
	rr := ctl.NewReplyReader(strings.NewReader("650 STREAM 42 NEW 0 example.com:443 SOURCE_ADDR=127.0.0.1:5000 PURPOSE=USER\r\n"), ctl.Limits{})
	r, err := rr.ReadReply()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := writeEventJSON(w, ctl.ParseEvent(r)); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	var got struct {
		Time   string         `json:"time"`
		Type   string         `json:"type"`
		Fields map[string]any `json:"fields"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if got.Type != "STREAM" || got.Time == "" || got.Fields["target_host"] != "example.com" || got.Fields["target_port"] != float64(443) ||
		got.Fields["source_addr"] != "127.0.0.1:5000" || got.Fields["circuit"] != nil {
		t.Errorf("got %s", buf.String())
	}
	if _, ok := got.Fields["TargetHost"]; ok {
		t.Errorf("Go field names: %s", buf.String())
	}
}

func TestCompactLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(newCompactHandler(&buf, slog.LevelInfo))
	log.Debug("hidden")
	log.Info("policy started", "on_error", "tor.attach(None)", "timeout", "30s")
	log.With("stream", "42").Warn("circuit gone", "err", `551 "x y"`)
	log.WithGroup("g").Error("boom", "k", 1)
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	want := []string{
		`INFO policy started on_error=tor.attach(None) timeout=30s`,
		`WARN circuit gone stream=42 err="551 \"x y\""`,
		`ERROR boom g.k=1`,
	}
	if len(lines) != len(want) {
		t.Fatalf("got %q", buf.String())
	}
	for i, l := range lines {
		// "15:04:05 " first.
		if len(l) < 9 || l[2] != ':' || l[5] != ':' || l[8] != ' ' || l[9:] != want[i] {
			t.Errorf("line %d: %q, want HH:MM:SS %s", i, l, want[i])
		}
	}
	if _, err := logHandler("xml", io.Discard, false, slog.LevelInfo); err == nil {
		t.Error("--log-format xml accepted")
	}
	if _, err := runRoot(t, "--log-format", "xml", "raw", "x"); exitCode(err) != exitUsage {
		t.Errorf("--log-format xml: %v", err)
	}
}

// TestCompletion: the shell's completion offers event names after events,
// grants after --allow (after a comma too), .star files for scripts,
// control commands and signal names for raw, and no files for eval.
func TestCompletion(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		want      []string // among the candidates
		directive string   // the directive line
	}{
		{[]string{"events", "ST"}, []string{"STREAM", "STATUS_CLIENT"}, ":4"},
		{[]string{"events", "stream", "ci"}, []string{"circ", "circ_minor"}, ":4"},
		{[]string{"run", "--allow", "n"}, []string{"net"}, ":6"},
		{[]string{"run", "--allow", "net,sig"}, []string{"net,signal:halt"}, ":6"},
		{[]string{"run", ""}, []string{"star"}, ":8"},
		{[]string{"check", "x"}, []string{"star"}, ":8"},
		{[]string{"test", ""}, []string{"star"}, ":8"},
		{[]string{"raw", "SIGNAL NE"}, []string{"SIGNAL NEWNYM"}, ":4"},
		{[]string{"raw", "geti"}, []string{"GETINFO"}, ":4"},
		{[]string{"eval", ""}, nil, ":4"},
	} {
		var out, errOut bytes.Buffer
		root := newCmdRoot(newFactory(strings.NewReader(""), &out, &errOut))
		root.SetArgs(append([]string{"__complete"}, tc.args...))
		if err := root.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if got := lines[len(lines)-1]; got != tc.directive {
			t.Errorf("%q: directive %s, want %s", tc.args, got, tc.directive)
		}
		for _, w := range tc.want {
			if !slices.Contains(lines, w) {
				t.Errorf("%q: candidates %q lack %q", tc.args, lines, w)
			}
		}
	}
}
