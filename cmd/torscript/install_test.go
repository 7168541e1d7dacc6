package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/torscript/torscript/cmd/torscript/testnet"
)

// TestSystemdUnit: `torscript unit` prints a template unit that
// systemd-analyze verify accepts without a word (an unknown key is only
// a warning there, so any output fails the test), with the hardening the
// README promises.
func TestSystemdUnit(t *testing.T) {
	var out, errOut bytes.Buffer
	root := newCmdRoot(newFactory(strings.NewReader(""), &out, &errOut))
	root.SetArgs([]string{"unit"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	unit := out.String()
	for _, want := range []string{"BindsTo=tor@%i.service", "NoNewPrivileges=yes", "ProtectSystem=strict",
		"SupplementaryGroups=_tor-%i", "TORSCRIPT_CONTROL=unix:/run/tor-instances/%i/control", "KillSignal=SIGTERM"} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the unit is not verified")
	}
	// verify wants the unit it binds to, which Debian's tor package
	// installs.
	if _, err := os.Stat("/lib/systemd/system/tor@.service"); err != nil {
		testnet.SkipWithoutTor(t)
		t.Skip("tor@.service is not installed: the unit is not verified")
	}
	// verify wants ExecStart's program to exist: this test's binary
	// stands in for /usr/local/bin/torscript.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "torscript@test.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/torscript", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(res)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, res)
	}
}

// TestMan: torscript man DIR writes a page for every command.
func TestMan(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	root := newCmdRoot(newFactory(strings.NewReader(""), &out, &errOut))
	root.SetArgs([]string{"man", dir})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, page := range []string{"torscript.1", "torscript-run.1", "torscript-testnet-up.1", "torscript-unit.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Errorf("%s: %v", page, err)
			continue
		}
		if !bytes.Contains(b, []byte(".TH \"TORSCRIPT\" \"1\"")) {
			t.Errorf("%s is not a manual page:\n%s", page, b[:min(200, len(b))])
		}
	}
}
