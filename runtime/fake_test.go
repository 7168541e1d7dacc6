package runtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/ctl/ctltest"
)

// fakeControlPort stands in for tor's control port in the runtime's tests.
// Every Connect makes a new connection (a net.Pipe) served by a goroutine
// that records each command line and answers it from a programmable table:
// per-test overrides first, then defaults that behave like an idle tor
// (250 OK, GETCONF and GETINFO circuit-status/stream-status from the
// fake's fields, EXTENDCIRCUIT with fresh ids, MAPADDRESS echoed). The test
// sends events with Event and drops the connection with Drop.
type fakeControlPort struct {
	t testing.TB

	mu      sync.Mutex
	cmds    []fakeCommand
	changed chan struct{} // closed and replaced when cmds or conns change
	conns   []*fakeSession
	// connects counts Connect calls; failConnects makes that many of the
	// next ones fail.
	connects     []time.Time
	failConnects int

	// leave is what GETCONF __LeaveStreamsUnattached answers: a value, or
	// "" for an option without one ("250 __LeaveStreamsUnattached").
	leave string
	// circuitStatus and streamStatus are the answers to GETINFO
	// circuit-status and stream-status: lines without CRLF, "\n" between.
	circuitStatus, streamStatus string
	// replies answers a command line exactly; answer is asked first and
	// may answer any line (ok false: not handled). A reply is one or more
	// lines separated by "\n"; CRLF is added.
	replies map[string]string
	answer  func(line string) (reply string, ok bool)
	// nextCirc is the id the next EXTENDCIRCUIT gets.
	nextCirc int
	backlog  int // ctl.Options.EventBacklog for new connections
}

// fakeCommand is a command line the fake received.
type fakeCommand struct {
	Line string
	Conn int // 1 for the first connection
	At   time.Time
}

type fakeSession struct {
	id  int
	srv net.Conn
	wmu sync.Mutex
}

func newFakeControlPort(t testing.TB) *fakeControlPort {
	f := &fakeControlPort{t: t, changed: make(chan struct{}), leave: "0", replies: map[string]string{}, nextCirc: 12}
	t.Cleanup(func() {
		f.mu.Lock()
		conns := f.conns
		f.mu.Unlock()
		for _, s := range conns {
			s.srv.Close()
		}
	})
	return f
}

// Connect is an Options.Connect that dials the fake.
func (f *fakeControlPort) Connect(ctx context.Context) (*ctl.Conn, error) {
	f.mu.Lock()
	f.connects = append(f.connects, time.Now())
	if f.failConnects > 0 {
		f.failConnects--
		f.mu.Unlock()
		return nil, errors.New("fake: connection refused")
	}
	cli, srv := net.Pipe()
	s := &fakeSession{id: len(f.conns) + 1, srv: srv}
	f.conns = append(f.conns, s)
	f.notifyLocked()
	backlog := f.backlog
	f.mu.Unlock()
	go f.serve(s)
	return ctl.NewConn(cli, ctl.Options{Logger: discardLogger(), EventBacklog: backlog}), nil
}

func (f *fakeControlPort) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeControlPort) serve(s *fakeSession) {
	br := bufio.NewReader(s.srv)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		f.mu.Lock()
		f.cmds = append(f.cmds, fakeCommand{Line: line, Conn: s.id, At: time.Now()})
		f.notifyLocked()
		f.mu.Unlock()
		reply := f.reply(line)
		if err := s.write(reply); err != nil {
			return
		}
	}
}

func (s *fakeSession) write(text string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.srv.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(s.srv, text)
	return err
}

// crlf ends every line of text ("\n"-separated) with CRLF.
func crlf(text string) string {
	text = strings.TrimRight(text, "\n")
	return strings.ReplaceAll(text, "\n", "\r\n") + "\r\n"
}

func (f *fakeControlPort) reply(line string) string {
	f.mu.Lock()
	answer := f.answer
	r, ok := f.replies[line]
	f.mu.Unlock()
	if answer != nil {
		if r, ok := answer(line); ok {
			return crlf(r)
		}
	}
	if ok {
		return crlf(r)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	kw, rest, _ := strings.Cut(line, " ")
	switch kw {
	case "GETCONF":
		if rest == leaveStreams {
			if f.leave == "" {
				return crlf("250 " + leaveStreams)
			}
			return crlf("250 " + leaveStreams + "=" + f.leave)
		}
		// Like tor: each key under its name, here with no value.
		keys := strings.Fields(rest)
		for i := range keys {
			sep := "-"
			if i == len(keys)-1 {
				sep = " "
			}
			keys[i] = "250" + sep + keys[i]
		}
		if len(keys) > 0 {
			return crlf(strings.Join(keys, "\n"))
		}
	case "GETINFO":
		var b strings.Builder
		for _, k := range strings.Fields(rest) {
			var v string
			switch k {
			case "circuit-status":
				v = f.circuitStatus
			case "stream-status":
				v = f.streamStatus
			default:
				return crlf(fmt.Sprintf("552 Unrecognized key %q", k))
			}
			v = strings.TrimRight(v, "\n")
			if strings.Contains(v, "\n") {
				b.WriteString("250+" + k + "=\n" + v + "\n.\n")
			} else {
				b.WriteString("250-" + k + "=" + v + "\n")
			}
		}
		b.WriteString("250 OK")
		return crlf(b.String())
	case "EXTENDCIRCUIT":
		id := f.nextCirc
		f.nextCirc++
		return crlf(fmt.Sprintf("250 EXTENDED %d", id))
	case "MAPADDRESS":
		pairs := strings.Fields(rest)
		for i := range pairs {
			if i == len(pairs)-1 {
				pairs[i] = "250 " + pairs[i]
			} else {
				pairs[i] = "250-" + pairs[i]
			}
		}
		return crlf(strings.Join(pairs, "\n"))
	}
	return crlf("250 OK")
}

// set runs fn with the fake locked, to change its fields.
func (f *fakeControlPort) set(fn func(f *fakeControlPort)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// Event sends event lines ("650 STREAM 7 NEW ...", or without "650 ") on
// the current connection, in one write.
func (f *fakeControlPort) Event(lines ...string) {
	f.t.Helper()
	var b strings.Builder
	for _, l := range lines {
		if !strings.HasPrefix(l, "650") {
			l = "650 " + l
		}
		b.WriteString(l + "\r\n")
	}
	s := f.current()
	if s == nil {
		f.t.Errorf("fake: event with no connection: %q", lines)
		return
	}
	if err := s.write(b.String()); err != nil {
		f.t.Errorf("fake: sending events %q: %v", lines, err)
	}
}

func (f *fakeControlPort) current() *fakeSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.conns) == 0 {
		return nil
	}
	return f.conns[len(f.conns)-1]
}

// Drop closes the current connection: the runtime reads EOF.
func (f *fakeControlPort) Drop() {
	if s := f.current(); s != nil {
		s.srv.Close()
	}
}

// Commands is every command line received so far.
func (f *fakeControlPort) Commands() []fakeCommand {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCommand(nil), f.cmds...)
}

// Lines is every command line received so far that starts with one of
// the prefixes (all of them when none is given).
func (f *fakeControlPort) Lines(prefixes ...string) []string {
	var out []string
	for _, c := range f.Commands() {
		if len(prefixes) == 0 {
			out = append(out, c.Line)
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(c.Line, p) {
				out = append(out, c.Line)
				break
			}
		}
	}
	return out
}

// ConnectCount is how often Connect was called.
func (f *fakeControlPort) ConnectCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.connects)
}

// WaitCommand waits until a command line equal to line has been received
// (the n-th one, counting from 1, when n is given) and returns it.
func (f *fakeControlPort) WaitCommand(line string, n ...int) fakeCommand {
	f.t.Helper()
	want := 1
	if len(n) > 0 {
		want = n[0]
	}
	var got fakeCommand
	ok := f.waitFor(5*time.Second, func() bool {
		seen := 0
		for _, c := range f.cmds {
			if c.Line == line {
				seen++
				if seen == want {
					got = c
					return true
				}
			}
		}
		return false
	})
	if !ok {
		f.t.Fatalf("fake: no command %q (#%d) within 5s; got:\n%s", line, want, strings.Join(f.Lines(), "\n"))
	}
	return got
}

// WaitConns waits until n connections were made.
func (f *fakeControlPort) WaitConns(n int) {
	f.t.Helper()
	if !f.waitFor(5*time.Second, func() bool { return len(f.conns) >= n }) {
		f.t.Fatalf("fake: %d connections, want %d", len(f.conns), n)
	}
}

// waitFor waits until cond (called with f.mu held) holds or timeout.
func (f *fakeControlPort) waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		ok, ch := cond(), f.changed
		f.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// waitUntil polls cond until it holds or timeout passes.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// scriptRun is a script running in the background against a fake.
type scriptRun struct {
	t      testing.TB
	f      *fakeControlPort
	rt     *Runtime
	log    *ctltest.SyncBuffer
	out    *ctltest.SyncBuffer
	cancel context.CancelFunc
	done   chan struct{}
	code   int
	runErr error // what Run returned
	err    error
}

// startScript runs src as "x.star" with opts (Connect, Logger and Stdout
// filled in when unset) until stop or the script ends.
func startScript(t testing.TB, f *fakeControlPort, src string, opts Options) *scriptRun {
	t.Helper()
	r := &scriptRun{t: t, f: f, log: &ctltest.SyncBuffer{}, out: &ctltest.SyncBuffer{}, done: make(chan struct{})}
	if opts.Connect == nil && f != nil {
		opts.Connect = f.Connect
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.Stdout == nil {
		opts.Stdout = r.out
	}
	r.rt = New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		r.runErr = r.rt.Run(ctx, "x.star", []byte(src))
		r.code, r.err = exitOf(r.runErr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(20 * time.Second):
			t.Errorf("Run did not return after its context was cancelled")
		}
	})
	return r
}

// stop cancels the script's context, as SIGTERM does, and waits for Run.
func (r *scriptRun) stop() (int, error) {
	r.t.Helper()
	r.cancel()
	return r.wait(10 * time.Second)
}

// wait waits for Run to return.
func (r *scriptRun) wait(timeout time.Duration) (int, error) {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(timeout):
		r.t.Fatalf("Run did not return within %v; log:\n%s", timeout, r.log.String())
	}
	return r.code, r.err
}

// waitOut waits until the script has printed s.
func (r *scriptRun) waitOut(s string) {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(r.out.String(), s) {
		if time.Now().After(deadline) {
			r.t.Fatalf("script did not print %q within 5s; stdout:\n%s\nlog:\n%s", s, r.out.String(), r.log.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitLog waits until the log contains s.
func (r *scriptRun) waitLog(s string) {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(r.log.String(), s) {
		if time.Now().After(deadline) {
			r.t.Fatalf("log has no %q within 5s; log:\n%s", s, r.log.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// started waits until the policy has started: GETINFO stream-status is the
// last command startPolicy sends before any MAPADDRESS.
func (r *scriptRun) started() {
	r.t.Helper()
	r.f.WaitCommand("GETINFO stream-status")
	r.waitLog("policy started")
}
