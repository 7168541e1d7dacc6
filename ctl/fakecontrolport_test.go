package ctl

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// FakeControlPort stands in for tor's control port in unit tests. It is not
// tor and knows nothing of the protocol: it records every byte the client
// writes, checks them against what the test expects, and sends exactly the
// bytes the test gives it. The client side is one end of a net.Pipe wrapped
// in a real *Conn.
type FakeControlPort struct {
	t   testing.TB
	srv net.Conn // our end of the pipe

	mu      sync.Mutex
	got     []byte        // every byte the client wrote
	off     int           // how much of got Expect and NextCommand consumed
	eof     bool          // the client's side is gone
	changed chan struct{} // closed and replaced when got or eof changes
	readErr error         // injected into the client's reads by FailReads
}

// fakeTimeout bounds every wait of the fake, so that a broken client fails
// its test instead of hanging it.
const fakeTimeout = 5 * time.Second

// NewFakeControlPort returns a fake control port and a *Conn talking to it.
// Both are closed when the test ends.
func NewFakeControlPort(t testing.TB, opts Options) (*FakeControlPort, *Conn) {
	t.Helper()
	cli, srv := net.Pipe()
	f := &FakeControlPort{t: t, srv: srv, changed: make(chan struct{})}
	go f.record()
	c := NewConn(&fakeClientConn{Conn: cli, f: f}, opts)
	t.Cleanup(func() {
		c.Close()
		srv.Close()
	})
	return f, c
}

// fakeClientConn is the client's end: a read error injected by FailReads
// replaces the EOF the client sees when the fake closes its end.
type fakeClientConn struct {
	net.Conn
	f *FakeControlPort
}

func (c *fakeClientConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.f.mu.Lock()
		if c.f.readErr != nil {
			err = c.f.readErr
		}
		c.f.mu.Unlock()
	}
	return n, err
}

func (f *FakeControlPort) record() {
	buf := make([]byte, 4096)
	for {
		n, err := f.srv.Read(buf)
		f.mu.Lock()
		f.got = append(f.got, buf[:n]...)
		if err != nil {
			f.eof = true
		}
		close(f.changed)
		f.changed = make(chan struct{})
		f.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// wait waits until cond (called with f.mu held) holds, or the client hangs
// up, or fakeTimeout passes. It reports whether cond held.
func (f *FakeControlPort) wait(cond func() bool) bool {
	deadline := time.NewTimer(fakeTimeout)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		ok, eof, ch := cond(), f.eof, f.changed
		f.mu.Unlock()
		if ok {
			return true
		}
		if eof {
			return false
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

// Written is every byte the client has written so far.
func (f *FakeControlPort) Written() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return string(f.got)
}

// Expect waits for the client to write exactly want next, and reports
// (with t.Errorf) any difference.
func (f *FakeControlPort) Expect(want string) bool {
	f.t.Helper()
	ok := f.wait(func() bool { return len(f.got)-f.off >= len(want) })
	f.mu.Lock()
	defer f.mu.Unlock()
	end := min(f.off+len(want), len(f.got))
	got := string(f.got[f.off:end])
	f.off = end
	if !ok || got != want {
		f.t.Errorf("fake control port: client wrote %q, want %q", got, want)
		return false
	}
	return true
}

// NextCommand waits for the next line the client writes and returns it
// with its CRLF.
func (f *FakeControlPort) NextCommand() (string, bool) {
	var line string
	ok := f.wait(func() bool {
		i := bytes.IndexByte(f.got[f.off:], '\n')
		if i < 0 {
			return false
		}
		line = string(f.got[f.off : f.off+i+1])
		f.off += i + 1
		return true
	})
	return line, ok
}

// Send writes s to the client as it is.
func (f *FakeControlPort) Send(s string) {
	f.t.Helper()
	f.srv.SetWriteDeadline(time.Now().Add(fakeTimeout))
	if _, err := f.srv.Write([]byte(s)); err != nil {
		f.t.Errorf("fake control port: sending %q: %v", s, err)
	}
}

// Serve answers every command line with reply(line) until the client hangs
// up or n commands were answered (n < 0: no limit). It returns at once; the
// returned channel is closed when it stops.
func (f *FakeControlPort) Serve(n int, reply func(cmd string) string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; n < 0 || i < n; i++ {
			cmd, ok := f.NextCommand()
			if !ok {
				return
			}
			f.Send(reply(cmd))
		}
	}()
	return done
}

// Hangup closes the fake's end: the client reads EOF.
func (f *FakeControlPort) Hangup() { f.srv.Close() }

// FailReads makes the client's pending and later reads fail with err.
func (f *FakeControlPort) FailReads(err error) {
	f.mu.Lock()
	f.readErr = err
	f.mu.Unlock()
	f.srv.Close()
}

// step is one line of a transcript: 'C' for a line the client writes, 'S'
// for one the fake sends.
type step struct {
	dir  byte
	text string
}

// Transcript is a recorded conversation, read from testdata/transcripts.
type Transcript struct {
	Name  string
	Steps []step
}

// LoadTranscript reads testdata/transcripts/name. Each line is
// "C: text" (the client writes text and CRLF), "S: text" (the fake sends
// text and a line end) or, to give a line with nothing after the prefix,
// "C:" or "S:". Lines starting with "#" and blank lines are skipped.
func LoadTranscript(t testing.TB, name string) *Transcript {
	t.Helper()
	b, err := os.ReadFile("testdata/transcripts/" + name)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := ParseTranscript(name, string(b))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// ParseTranscript reads the text of a transcript file.
func ParseTranscript(name, text string) (*Transcript, error) {
	tr := &Transcript{Name: name}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(line) < 2 || (line[0] != 'C' && line[0] != 'S') || line[1] != ':' ||
			(len(line) > 2 && line[2] != ' ') {
			return nil, fmt.Errorf("%s:%d: not a C: or S: line: %q", name, n, line)
		}
		tr.Steps = append(tr.Steps, step{dir: line[0], text: strings.TrimPrefix(line[2:], " ")})
	}
	return tr, sc.Err()
}

// Client is what the client must write: every C line with CRLF.
func (tr *Transcript) Client() string { return tr.join('C', "\r\n") }

// Server is what the fake sends: every S line followed by eol.
func (tr *Transcript) Server(eol string) string { return tr.join('S', eol) }

// Trace is the transcript as Options.Trace writes it.
func (tr *Transcript) Trace() string {
	var b strings.Builder
	for _, s := range tr.Steps {
		// Secrets are scrubbed from a trace (conn.go scrub, scrubReply).
		text := s.text
		if s.dir == 'C' {
			text = strings.TrimRight(scrub(text+"\r\n"), "\r\n")
		} else {
			text = scrubReply(text)
		}
		fmt.Fprintf(&b, "%c: %s\n", s.dir, text)
	}
	return b.String()
}

func (tr *Transcript) join(dir byte, eol string) string {
	var b strings.Builder
	for _, s := range tr.Steps {
		if s.dir == dir {
			b.WriteString(s.text)
			b.WriteString(eol)
		}
	}
	return b.String()
}

// Play runs the transcript in the background: it waits for each run of C
// lines and then sends the S lines that follow, ending each with eol. The
// returned channel is closed when the transcript is done or has failed.
func (f *FakeControlPort) Play(tr *Transcript, eol string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		steps := tr.Steps
		for len(steps) > 0 {
			var b strings.Builder
			dir := steps[0].dir
			for len(steps) > 0 && steps[0].dir == dir {
				b.WriteString(steps[0].text)
				if dir == 'C' {
					b.WriteString("\r\n")
				} else {
					b.WriteString(eol)
				}
				steps = steps[1:]
			}
			if dir == 'C' {
				if !f.Expect(b.String()) {
					f.Hangup()
					return
				}
			} else {
				f.Send(b.String())
			}
		}
	}()
	return done
}

// waitDone waits for a channel returned by Play or Serve.
func waitDone(t testing.TB, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(2 * fakeTimeout):
		t.Fatal("fake control port: script did not finish")
	}
}

// TestFakeControlPort checks the fake itself: exact bytes both ways, and a
// difference reported.
func TestFakeControlPort(t *testing.T) {
	f, c := NewFakeControlPort(t, Options{})
	done := f.Serve(1, func(cmd string) string {
		if cmd != "GETINFO version\r\n" {
			return "510 unexpected\r\n"
		}
		return "250-version=Tor 0.4.8.9\r\n250 OK\r\n"
	})
	r, err := c.Do(t.Context(), "GETINFO version")
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, done)
	if r.Raw != "250-version=Tor 0.4.8.9\r\n250 OK\r\n" {
		t.Errorf("reply %q", r.Raw)
	}
	if got := f.Written(); got != "GETINFO version\r\n" {
		t.Errorf("written %q", got)
	}

	// A fake that expects something else must say so.
	rec := &recordingTB{TB: t}
	f2 := &FakeControlPort{t: rec, changed: make(chan struct{}), got: []byte("GETINFO x\r\n")}
	if f2.Expect("GETINFO y\r\n") {
		t.Error("Expect accepted the wrong bytes")
	}
	if !rec.failed {
		t.Error("Expect did not report the difference")
	}

	if _, err := ParseTranscript("bad", "X: nonsense\n"); err == nil {
		t.Error("ParseTranscript accepted a line that is neither C: nor S:")
	}
}

type recordingTB struct {
	testing.TB
	failed bool
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Errorf(string, ...any) {
	r.failed = true
}

var errInjected = errors.New("injected read error")
