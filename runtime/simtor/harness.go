package simtor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/torscript/torscript/ctl"
)

// The harness: what the runtime's own tests need besides the model. They
// drive the controller connection by connection (dropping it, failing
// dials), send raw event lines, override replies and wait for commands.
//
// A scripted simulated tor (NewScripted) models nothing the test does not
// say: it answers as an idle tor (250 OK; GETCONF and GETINFO from what the
// test set; EXTENDCIRCUIT with fresh ids, MAPADDRESS echoed) and sends no
// event of its own, so that every event the controller sees is one the
// test sent.

type harness struct {
	connOpts  ctl.Options
	dials     []time.Time
	failDials int
	changed   chan struct{} // closed and replaced when cmds or sessions change
	hook      func(line string) (reply string, ok bool)
	lines     map[string]string // exact command line → reply
	scripted  bool
	infos     map[string]string // scripted GETINFO answers
}

// session is one connection of the controller.
type session struct {
	id  int
	c   net.Conn
	w   *bufio.Writer // under Tor.mu
	wmu sync.Mutex    // for writes outside Tor.mu
}

// NewScripted is a simulated tor that answers as an idle tor and sends only
// the events the test sends (see the harness); its first EXTENDCIRCUIT
// gets id firstCircuit.
func NewScripted(firstCircuit int) *Tor {
	s := New()
	s.scripted = true
	s.nextID = firstCircuit - 1
	s.infos = map[string]string{}
	return s
}

// SetConnOptions sets the ctl.Options of the connections Dial makes.
func (s *Tor) SetConnOptions(o ctl.Options) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connOpts = o
}

// Dial is a runtime.Options.Connect: each call makes a new connection, the
// newest one the events go to, unless FailDials makes it fail.
func (s *Tor) Dial(ctx context.Context) (*ctl.Conn, error) {
	s.mu.Lock()
	s.dials = append(s.dials, time.Now())
	if s.failDials > 0 {
		s.failDials--
		s.mu.Unlock()
		return nil, errors.New("simtor: connection refused")
	}
	a, b := net.Pipe()
	sess := &session{id: len(s.sessions) + 1, c: b}
	// One write a reply or a batch of events, never split.
	sess.w = bufio.NewWriterSize(sessionWriter{sess}, 1<<20)
	s.sessions = append(s.sessions, sess)
	s.w = sess.w
	s.notifyLocked()
	opts := s.connOpts
	s.mu.Unlock()
	go s.serve(sess)
	return ctl.NewConn(a, opts), nil
}

// FailDials makes the next n dials fail (0: none).
func (s *Tor) FailDials(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failDials = n
}

// Dials is when each dial was made, failed or not.
func (s *Tor) Dials() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.dials...)
}

// CurrentConn is the number of the newest connection (1 for the first; 0
// before any).
func (s *Tor) CurrentConn() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Answer sets a hook asked first about every command line (with the
// simulated tor unlocked: it may send events or drop the connection); ok
// false leaves the line to the simulated tor. A reply is one or more
// lines separated by "\n"; CRLF is added.
func (s *Tor) Answer(hook func(line string) (reply string, ok bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = hook
}

// ReplyLine makes every command equal to line get reply ("\n" between
// lines), after the Answer hook.
func (s *Tor) ReplyLine(line, reply string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lines == nil {
		s.lines = map[string]string{}
	}
	s.lines[line] = reply
}

// SetInfo sets what a scripted simulated tor answers to GETINFO key
// (lines separated by "\n").
func (s *Tor) SetInfo(key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.infos[key] = value
}

// SetConf sets a setting (GETCONF answers KEY=VALUE), or with set false
// removes it (GETCONF answers KEY alone).
func (s *Tor) SetConf(key, value string, set bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if set {
		s.conf[key] = value
	} else {
		delete(s.conf, key)
	}
}

func (s *Tor) hookAnswer(line string) (string, bool) {
	s.mu.Lock()
	hook := s.hook
	reply, ok := s.lines[line]
	s.mu.Unlock()
	if hook != nil {
		if r, ok := hook(line); ok {
			return r, true
		}
	}
	return reply, ok
}

// record notes a command line received on connection conn.
func (s *Tor) record(line string, conn int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cmds = append(s.cmds, Command{Line: line, Conn: conn, At: time.Now(), index: len(s.cmds)})
	s.notifyLocked()
}

func (s *Tor) notifyLocked() {
	if s.changed != nil {
		close(s.changed)
	}
	s.changed = make(chan struct{})
}

// current is the newest connection's writer. Called with mu held.
func (s *Tor) current() *bufio.Writer {
	if len(s.sessions) == 0 {
		return nil
	}
	return s.sessions[len(s.sessions)-1].w
}

// sessionWriter writes to a session whole, between other writes.
type sessionWriter struct{ sess *session }

func (w sessionWriter) Write(p []byte) (int, error) {
	if err := w.sess.write(string(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (sess *session) write(text string) error {
	sess.wmu.Lock()
	defer sess.wmu.Unlock()
	sess.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(sess.c, text)
	return err
}

// crlf ends every line of text ("\n"-separated) with CRLF.
func crlf(text string) string {
	text = strings.TrimRight(text, "\n")
	return strings.ReplaceAll(text, "\n", "\r\n") + "\r\n"
}

// Event sends event lines ("650 STREAM 7 NEW ...", or without "650 ") on
// the newest connection, in one write, subscribed or not.
func (s *Tor) Event(lines ...string) error {
	var b strings.Builder
	for _, l := range lines {
		if !strings.HasPrefix(l, "650") {
			l = "650 " + l
		}
		b.WriteString(l + "\r\n")
	}
	return s.Send(b.String())
}

// Send writes raw text on the newest connection.
func (s *Tor) Send(text string) error {
	s.mu.Lock()
	var sess *session
	if len(s.sessions) > 0 {
		sess = s.sessions[len(s.sessions)-1]
	}
	s.mu.Unlock()
	if sess == nil {
		return errors.New("simtor: no connection")
	}
	return sess.write(text)
}

// Drop closes the newest connection: the controller reads EOF.
func (s *Tor) Drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sessions) > 0 {
		s.sessions[len(s.sessions)-1].c.Close()
	}
}

// Close closes every connection.
func (s *Tor) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sess := range s.sessions {
		sess.c.Close()
	}
	s.closeSOCKS()
}

// Commands is every command received so far.
func (s *Tor) Commands() []Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Command(nil), s.cmds...)
}

// WaitCommand waits up to timeout until the n-th command line (counting
// from 1) equal to line has come, and returns it.
func (s *Tor) WaitCommand(line string, n int, timeout time.Duration) (Command, bool) {
	var got Command
	ok := s.waitFor(timeout, func() bool {
		seen := 0
		for _, c := range s.cmds {
			if c.Line == line {
				seen++
				if seen == n {
					got = c
					return true
				}
			}
		}
		return false
	})
	return got, ok
}

// WaitConns waits up to timeout until n connections were made.
func (s *Tor) WaitConns(n int, timeout time.Duration) bool {
	return s.waitFor(timeout, func() bool { return len(s.sessions) >= n })
}

// waitFor waits until cond (called with mu held) holds or timeout.
func (s *Tor) waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		ok, ch := cond(), s.changed
		s.mu.Unlock()
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

// scriptedAnswer is a scripted simulated tor's reply to line ("\n"
// between lines). Called with mu held.
func (s *Tor) scriptedAnswer(line string) string {
	kw, rest, _ := strings.Cut(line, " ")
	switch kw {
	case "GETCONF":
		if rest == LeaveStreams {
			if v, ok := s.conf[LeaveStreams]; ok {
				return "250 " + LeaveStreams + "=" + v
			}
			return "250 " + LeaveStreams
		}
		// Like tor: each key under its name, here with no value.
		if keys := strings.Fields(rest); len(keys) > 0 {
			return multiLines(keys)
		}
	case "GETINFO":
		var b strings.Builder
		for _, k := range strings.Fields(rest) {
			v, ok := s.infos[k]
			if !ok && k != "circuit-status" && k != "stream-status" {
				return fmt.Sprintf("552 Unrecognized key %q", k)
			}
			v = strings.TrimRight(v, "\n")
			if strings.Contains(v, "\n") {
				b.WriteString("250+" + k + "=\n" + v + "\n.\n")
			} else {
				b.WriteString("250-" + k + "=" + v + "\n")
			}
		}
		return b.String() + "250 OK"
	case "EXTENDCIRCUIT":
		return "250 EXTENDED " + s.newID()
	case "MAPADDRESS":
		return multiLines(strings.Fields(rest))
	}
	return "250 OK"
}

// multiLines is a reply of one line an item ("250-a\n250 b").
func multiLines(items []string) string {
	for i := range items {
		sep := "-"
		if i == len(items)-1 {
			sep = " "
		}
		items[i] = "250" + sep + items[i]
	}
	return strings.Join(items, "\n")
}
