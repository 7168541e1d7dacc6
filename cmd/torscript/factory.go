package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/chzyer/readline"
	"github.com/spf13/cobra"

	"github.com/torscript/torscript/cmd/torscript/testnet"
	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime/logcap"
)

// connFlags are the connection flags every command that talks to tor shares.
type connFlags struct {
	control      string   // HOST:PORT or unix:PATH: the first --control
	controls     []string // every --control (run drives a fleet)
	noEnvCookie  bool     // one tor of a fleet: TORSCRIPT_COOKIE is another's
	passwordFile string
	cookie       string
	trace        string // file for the raw transcript; "-" is stderr
	launch       bool
	launchTorrc  string
	logLevel     string
	logFormat    string
}

func (cf *connFlags) addFlags(cmd *cobra.Command) {
	fl := cmd.PersistentFlags()
	fl.StringArrayVar(&cf.controls, "control", nil, "control port: HOST:PORT or unix:PATH (env TORSCRIPT_CONTROL; default: try "+strings.Join(ctl.DefaultAddrs(), ", ")+"); run takes it again for each tor of a fleet")
	fl.StringVar(&cf.passwordFile, "password-file", "", "file whose first line is the control password (env TORSCRIPT_PASSWORD; else a prompt on a terminal)")
	fl.StringVar(&cf.cookie, "cookie", "", "control auth cookie file (env TORSCRIPT_COOKIE; default: the one tor names)")
	fl.StringVar(&cf.trace, "trace", "", "write the raw control-port transcript to this file (- for stderr)")
	fl.BoolVar(&cf.launch, "launch", false, "launch a tor process of its own for this run and stop it afterwards (on the public Tor network unless --launch-torrc names DirAuthority lines)")
	fl.StringVar(&cf.launchTorrc, "launch-torrc", "", "with --launch: extra torrc lines from this file")
	fl.StringVar(&cf.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fl.StringVar(&cf.logFormat, "log-format", "auto", "log format: text (key=value), json, compact (15:04:05 INFO message key=value), auto (compact on a terminal, else text)")
}

// factory holds what commands share: I/O streams, connection flags, and
// what must be undone when the command ends.
type factory struct {
	in          io.Reader
	out, errOut io.Writer
	conn        connFlags
	log         *slog.Logger
	logLevel    slog.Level
	cleanups    []func()
	launched    *testnet.Process // the tor --launch started, reused on reconnect
	traceFile   *os.File
	// firstConn is a connection made before the script ran (the
	// guardian's setup), handed to the first connect.
	firstConn *ctl.Conn
	// typedPassword is the control password typed at the prompt, kept to
	// reconnect and to hand to the interpreter child; never logged.
	typedPassword string

	hupMu  sync.Mutex
	reload func() // what SIGHUP does instead of ending the run; nil: end it
}

func newFactory(in io.Reader, out, errOut io.Writer) *factory {
	return &factory{in: in, out: out, errOut: errOut, log: slog.New(slog.NewTextHandler(errOut, nil))}
}

// forInstance is a factory for one tor of a fleet (run --control A
// --control B): its own connection, the cookie its tor names (not
// TORSCRIPT_COOKIE, another tor's), the same streams and log.
func (f *factory) forInstance(control string) *factory {
	fi := &factory{in: f.in, out: f.out, errOut: f.errOut, log: f.log.With("tor", control),
		logLevel: f.logLevel, conn: f.conn, typedPassword: f.typedPassword}
	fi.conn.control, fi.conn.controls, fi.conn.noEnvCookie = control, []string{control}, true
	f.cleanups = append(f.cleanups, fi.cleanup)
	return fi
}

func (f *factory) setup() error {
	if len(f.conn.controls) > 0 {
		f.conn.control = f.conn.controls[0]
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.conn.logLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level: %w", err)}
	}
	f.logLevel = lvl
	if _, err := logHandler(f.conn.logFormat, io.Discard, false, lvl); err != nil {
		return usageError{err}
	}
	f.log = f.boundedLog(f.errOut, isTerminal(f.errOut))
	return nil
}

// boundedLog is the log on w: repeated records coalesced, long values cut
// and the bytes a minute bounded (runtime/logcap), whatever a script does.
// term says w is a terminal.
func (f *factory) boundedLog(w io.Writer, term bool) *slog.Logger {
	base, err := logHandler(f.conn.logFormat, w, term, f.logLevel)
	if err != nil { // checked in setup
		base = slog.NewTextHandler(w, &slog.HandlerOptions{Level: f.logLevel})
	}
	h := logcap.New(base)
	f.cleanups = append(f.cleanups, h.Flush)
	return slog.New(h)
}

func (f *factory) cleanup() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	f.cleanups = nil
}

// onHUP is what SIGHUP does now: nil ends the run.
func (f *factory) onHUP() func() {
	f.hupMu.Lock()
	defer f.hupMu.Unlock()
	return f.reload
}

// setHUP makes SIGHUP call reload (nil: end the run again).
func (f *factory) setHUP(reload func()) {
	f.hupMu.Lock()
	f.reload = reload
	f.hupMu.Unlock()
}

// connect opens an authenticated control connection as the flags say.
func (f *factory) connect(ctx context.Context) (*ctl.Conn, error) {
	if c := f.firstConn; c != nil {
		f.firstConn = nil
		if c.Err() == nil {
			return c, nil
		}
		c.Close()
	}
	c, _, err := f.dial(ctx, true)
	return c, err
}

// dialGuard opens the guardian's connection: no transcript (its commands
// are not the script's), and the address it reached.
func (f *factory) dialGuard(ctx context.Context) (*ctl.Conn, string, error) {
	return f.dial(ctx, false)
}

func (f *factory) dial(ctx context.Context, traced bool) (*ctl.Conn, string, error) {
	cf := f.conn
	if !traced {
		cf.trace = ""
	}
	opts := ctl.Options{Logger: f.log}
	if cf.trace != "" {
		if cf.trace == "-" {
			opts.Trace = f.errOut
		} else {
			if f.traceFile == nil { // once: a reconnect appends to the same transcript
				tf, err := os.OpenFile(cf.trace, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
				if err != nil {
					return nil, "", usageError{fmt.Errorf("--trace: %w", err)}
				}
				f.cleanups = append(f.cleanups, func() { tf.Close() })
				f.traceFile = tf
			}
			opts.Trace = f.traceFile
		}
	}
	addr := cf.control
	if addr == "" {
		addr = os.Getenv("TORSCRIPT_CONTROL")
	}
	cred := ctl.Credentials{CookieFile: cf.cookie}
	if cred.CookieFile == "" {
		if !cf.noEnvCookie {
			cred.CookieFile = os.Getenv("TORSCRIPT_COOKIE")
		}
	}
	switch {
	case cf.passwordFile != "":
		cred.Password = ctl.PasswordFromFile(cf.passwordFile)
	case os.Getenv("TORSCRIPT_PASSWORD") != "":
		pw := os.Getenv("TORSCRIPT_PASSWORD")
		cred.Password = func() (string, error) { return pw, nil }
	case f.typedPassword != "":
		// Typed before (the guardian gets it from the interpreter).
		pw := f.typedPassword
		cred.Password = func() (string, error) { return pw, nil }
	case isTerminal(f.in):
		cred.Password = func() (string, error) {
			if f.typedPassword != "" {
				return f.typedPassword, nil
			}
			b, err := readline.Password("tor control password: ")
			f.typedPassword = string(b)
			return string(b), err
		}
	}
	if l := os.Getenv(launchedEnv); cf.launch && l != "" {
		// The guardian: the tor its interpreter launched.
		addr, cred.CookieFile, _ = strings.Cut(l, "\n")
	} else if cf.launch {
		if cf.control != "" {
			return nil, "", usageError{fmt.Errorf("--launch and --control exclude each other")}
		}
		p := f.launched
		if p == nil {
			var err error
			if p, err = f.launch(ctx); err != nil {
				return nil, "", connectError{err}
			}
			f.launched = p
		}
		addr, cred.CookieFile = p.ControlAddr, p.CookiePath
	}
	c, _, err := ctl.Connect(ctx, addr, cred, opts)
	if err != nil {
		return nil, "", connectError{err}
	}
	f.cleanups = append(f.cleanups, func() { c.Close() })
	return c, addr, nil
}

func (f *factory) launch(ctx context.Context) (*testnet.Process, error) {
	var extra []string
	if f.conn.launchTorrc != "" {
		b, err := os.ReadFile(f.conn.launchTorrc)
		if err != nil {
			return nil, fmt.Errorf("--launch-torrc: %w", err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				extra = append(extra, l)
			}
		}
	}
	if !joinsPrivateNetwork(extra) {
		f.log.Warn("--launch: this tor joins the public Tor network (its torrc names no DirAuthority); to launch one on a private network, give its lines with --launch-torrc")
	}
	dir, err := os.MkdirTemp("", "torscript-launch-")
	if err != nil {
		return nil, err
	}
	p, err := testnet.Launch(ctx, testnet.LaunchConfig{
		Dir:      filepath.Join(dir, "tor"),
		Torrc:    extra,
		Auth:     "cookie",
		Progress: func(s string) { f.log.Info("launch: " + s) },
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("--launch: %w", err)
	}
	f.cleanups = append(f.cleanups, func() { p.Stop(); os.RemoveAll(dir) })
	return p, nil
}

// joinsPrivateNetwork says whether torrc lines name the directory
// authorities of a network of their own (DirAuthority, or
// AlternateDirAuthority and AlternateBridgeAuthority, as tor reads them:
// keywords in any case).
func joinsPrivateNetwork(lines []string) bool {
	for _, l := range lines {
		kw, _, _ := strings.Cut(strings.TrimSpace(l), " ")
		switch strings.ToLower(kw) {
		case "dirauthority", "alternatedirauthority":
			return true
		}
	}
	return false
}

func isTerminal(r any) bool {
	f, ok := r.(*os.File)
	return ok && readline.IsTerminal(int(f.Fd()))
}
