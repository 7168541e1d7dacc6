package testnet

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// TB and M are the parts of testing.TB and *testing.M these helpers use:
// this package is linked into torscript (the testnet command), which must
// not carry the testing package.
type TB interface {
	Helper()
	Fatal(args ...any)
	Skip(args ...any)
}

// M is what MainWithNetwork needs of a *testing.M.
type M interface{ Run() int }

// verbose says whether go test runs with -v (testing.Verbose).
func verbose() bool {
	f := flag.Lookup("test.v")
	return f != nil && f.Value.String() != "false" && f.Value.String() != ""
}

// NotInstalled is the message printed when tor is missing.
const NotInstalled = "tor not installed: apt-get install -y tor; end-to-end tests skipped"

var (
	shared      *Network
	lastNetwork *Network // the network MainWithNetwork started, kept after Down (for this package's tests)
)

// RequireTor reports whether tor and tor-gencert are installed.
func RequireTor() bool {
	tor, err := findTor("")
	if err != nil {
		return false
	}
	_, err = findGencert(tor)
	return err == nil
}

func inCI() bool { return os.Getenv("CI") == "true" }

// SkipWithoutTor skips t when tor is not installed, or fails it when
// CI=true. It is for tests that use Launch but not the shared network.
func SkipWithoutTor(t TB) {
	t.Helper()
	if RequireTor() {
		return
	}
	if inCI() {
		t.Fatal(NotInstalled + " (CI=true: failing)")
	}
	t.Skip(NotInstalled)
}

// MainWithNetwork is for TestMain: it starts a network described by cfg
// (in a new temporary directory), runs the tests, stops the network and
// returns the exit code:
//
//	func TestMain(m *testing.M) { os.Exit(testnet.MainWithNetwork(m, testnet.Config{})) }
//
// If tor is missing it prints NotInstalled and runs the tests with
// Shared returning nil (so tests using it skip) — unless CI=true, where a
// missing tor fails (exit code 1). Progress is printed with go test -v.
func MainWithNetwork(m M, cfg Config) int {
	if !flag.Parsed() {
		flag.Parse()
	}
	if !RequireTor() {
		fmt.Fprintln(os.Stderr, NotInstalled)
		if inCI() {
			fmt.Fprintln(os.Stderr, "CI=true: a missing tor is a failure")
			return 1
		}
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "torscript-testnet-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testnet:", err)
		return 1
	}
	cfg.Dir = dir
	cfg.Detach = false
	if cfg.Progress == nil && verbose() {
		cfg.Progress = func(s string) { fmt.Fprintln(os.Stderr, "testnet:", s) }
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	n, err := Up(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		return 1
	}
	// Interrupted tests: stop the network before dying. (If the test
	// binary is killed outright, the parent-death signal kills tor.)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "testnet: %v: stopping the network\n", s)
		n.Down()
		os.Exit(1)
	}()
	shared, lastNetwork = n, n
	code := m.Run()
	signal.Stop(sig)
	shared = nil
	if err := n.Down(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Shared returns the network started by MainWithNetwork, or skips t if
// there is none (tor is not installed, or TestMain does not call
// MainWithNetwork).
func Shared(t TB) *Network {
	t.Helper()
	if shared == nil {
		if !RequireTor() {
			t.Skip(NotInstalled)
		}
		t.Skip("testnet: no shared network (TestMain must call testnet.MainWithNetwork)")
	}
	return shared
}
