package ctl

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl/ctltest"
)

// FakeControlPort is ctl's view of the one fake control port
// (ctltest.FakeControlPort, scripted: it answers nothing by itself): it
// records every byte the client writes, checks them against what the test
// expects, and sends exactly the bytes the test gives it, reporting
// failures to the test. The client side is a real *Conn on a loopback TCP
// connection.
type FakeControlPort struct {
	*ctltest.FakeControlPort
	t testing.TB
}

// fakeTimeout bounds every wait of the fake, so that a broken client fails
// its test instead of hanging it.
const fakeTimeout = 5 * time.Second

// NewFakeControlPort returns a fake control port and a *Conn talking to it.
// Both are closed when the test ends.
func NewFakeControlPort(t testing.TB, opts Options) (*FakeControlPort, *Conn) {
	t.Helper()
	fp, cli := ctltest.DialScripted(t)
	c := NewConn(cli, opts)
	t.Cleanup(func() { c.Close() })
	return &FakeControlPort{FakeControlPort: fp, t: t}, c
}

// Expect waits for the client to write exactly want next, and reports
// (with t.Errorf) any difference.
func (f *FakeControlPort) Expect(want string) bool {
	f.t.Helper()
	got, ok := f.FakeControlPort.Expect(want, fakeTimeout)
	if !ok {
		f.t.Errorf("fake control port: client wrote %q, want %q", got, want)
	}
	return ok
}

// NextCommand waits for the next line the client writes and returns it
// with its CRLF.
func (f *FakeControlPort) NextCommand() (string, bool) {
	return f.FakeControlPort.NextCommand(fakeTimeout)
}

// Send writes s to the client as it is.
func (f *FakeControlPort) Send(s string) {
	f.t.Helper()
	if err := f.FakeControlPort.Send([]byte(s)); err != nil {
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
	f2, c2 := NewFakeControlPort(t, Options{})
	f2.t = rec
	go c2.Do(t.Context(), "GETINFO x")
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
