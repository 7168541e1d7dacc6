package ctltest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// FakeControlPort is the fake control port of ctl's tests and of the
// benchmark. It is not tor: it speaks the control protocol's framing
// (control-spec 2, CRLF) on 127.0.0.1, records every byte the controller
// writes and the arrival time and text of every command line, and either
// answers every command at once with a canned reply that is just good
// enough for a controller to get going (NewFakeControlPort: the benchmark)
// or leaves the answers to the test, which reads what the controller wrote
// (Expect, NextCommand) and sends exact bytes (Send: NewScriptedFakeControlPort,
// ctl's transcript tests). It accepts every connection; events go to the
// latest, and the bytes recorded are the latest's.
//
// One goroutine reads the connection and answers commands. Events are
// written by the driver with Send. Writes from both are serialised by a
// mutex and each message is flushed whole, so a reply never lands inside an
// event.
type FakeControlPort struct {
	ln  net.Listener
	pid string

	wmu  sync.Mutex
	conn net.Conn
	w    *bufio.Writer
	// main is the connection events go to: the latest. Set under wmu;
	// read without it, so that the command reader never waits for an
	// event being written (tor reads commands whatever it is sending).
	main atomic.Pointer[fakeConn]

	onAttach atomic.Pointer[AttachFunc]

	mu       sync.Mutex
	cmds     []Command
	infoKeys map[string]int    // every GETINFO key asked, with how often
	infos    map[string]string // answers given with SetInfo
	wire     map[string]string // whole answers to GETINFO of those of several lines
	unknown  map[string]int    // the GETINFO keys the fake has no value for
	ended    error             // set when the connection has ended
	notify   chan struct{}     // capacity 1: a command was recorded or the connection ended

	connected chan struct{} // closed when a controller has connected

	// scripted: the test answers; nothing is answered by the fake.
	scripted bool
	// What the latest connection's controller wrote, for Expect and
	// NextCommand (under mu).
	got     []byte
	off     int           // how much of got Expect and NextCommand consumed
	eof     bool          // the latest connection's controller side is gone
	changed chan struct{} // closed and replaced when got or eof changes
	readErr error         // injected into the reads of a Dial'd connection by FailReads
}

// Command is one command line the controller sent, as the fake received it.
type Command struct {
	At   time.Time // when the fake read it
	Line string    // without CRLF; for a multi-line command, its first line
}

// Keyword is the command's keyword in upper case ("GETINFO").
func (c Command) Keyword() string {
	kw, _, _ := strings.Cut(c.Line, " ")
	return strings.ToUpper(strings.TrimPrefix(kw, "+"))
}

// Args are the command's words after the keyword.
func (c Command) Args() []string {
	f := strings.Fields(c.Line)
	if len(f) == 0 {
		return nil
	}
	return f[1:]
}

// HasArg reports whether the command has the argument a (case-insensitive).
func (c Command) HasArg(a string) bool {
	for _, x := range c.Args() {
		if strings.EqualFold(x, a) {
			return true
		}
	}
	return false
}

// AttachFunc is called from the fake's reader goroutine for every
// ATTACHSTREAM, with the time the command arrived, just before the fake
// writes its answer. What it returns goes out in the same write, after the
// "250 OK", as tor sends the events it has queued behind a reply. It must
// not block.
type AttachFunc func(stream, circuit string, at time.Time) []byte

// The fake's canned answers.
const (
	// FakeTorVersion is the version the canned answers give.
	FakeTorVersion  = "0.4.9.11"
	fakeBootstrap   = `NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`
	fakeCircuitLine = "1 BUILT $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~guard,$BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB~middle,$CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC~exit BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL TIME_CREATED=2026-11-22T10:00:00.000000"
	protocolInfo    = "250-PROTOCOLINFO 1\r\n250-AUTH METHODS=NULL\r\n250-VERSION Tor=\"" + FakeTorVersion + "\"\r\n250 OK\r\n"
)

// fakeWriteTimeout bounds one write of the fake: a controller that stops
// reading fails the measurement instead of hanging it.
const fakeWriteTimeout = 30 * time.Second

// NewFakeControlPort listens on a free loopback port and answers every
// controller that connects with canned replies.
func NewFakeControlPort() (*FakeControlPort, error) { return newFake(false) }

// NewScriptedFakeControlPort listens on a free loopback port and answers
// nothing: the test reads what the controller wrote and sends the reply.
func NewScriptedFakeControlPort() (*FakeControlPort, error) { return newFake(true) }

func newFake(scripted bool) (*FakeControlPort, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fake control port: %w", err)
	}
	f := &FakeControlPort{
		ln:        ln,
		pid:       strconv.Itoa(os.Getpid()),
		infoKeys:  map[string]int{},
		infos:     map[string]string{},
		unknown:   map[string]int{},
		notify:    make(chan struct{}, 1),
		connected: make(chan struct{}),
		scripted:  scripted,
		changed:   make(chan struct{}),
	}
	go f.accept()
	return f, nil
}

// Addr is the fake's "127.0.0.1:PORT".
func (f *FakeControlPort) Addr() string { return f.ln.Addr().String() }

// SetOnAttach sets the function told of every ATTACHSTREAM; nil for none.
func (f *FakeControlPort) SetOnAttach(fn AttachFunc) {
	if fn == nil {
		f.onAttach.Store(nil)
		return
	}
	f.onAttach.Store(&fn)
}

// Connected is closed when a controller has connected.
func (f *FakeControlPort) Connected() <-chan struct{} { return f.connected }

// Close stops listening and closes the connection.
func (f *FakeControlPort) Close() error {
	f.ln.Close()
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.conn != nil {
		f.conn.Close()
	}
	return nil
}

// accept serves every controller that connects. torscript run connects
// twice: its guardian first (an idle connection that only asks who tor
// is), then the interpreter. The latest connection is the one events go
// to and whose end ends the run; earlier ones are still answered.
func (f *FakeControlPort) accept() {
	first := true
	for {
		conn, err := f.ln.Accept()
		if err != nil {
			if first {
				f.end(fmt.Errorf("fake control port: accept: %w", err))
			}
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		c := &fakeConn{conn: conn, w: bufio.NewWriterSize(conn, 64<<10), ready: make(chan struct{}, 1), done: make(chan struct{})}
		f.wmu.Lock()
		f.conn, f.w = conn, c.w
		f.main.Store(c)
		f.wmu.Unlock()
		f.mu.Lock()
		f.got, f.off, f.eof = nil, 0, false
		f.mu.Unlock()
		if first {
			close(f.connected)
			first = false
		}
		go f.serve(c)
	}
}

// fakeConn is one controller's connection.
type fakeConn struct {
	conn net.Conn
	w    *bufio.Writer
	// Replies waiting for the writer (replies): the reader goes on
	// reading commands while events being sent hold the connection, as
	// tor appends its replies to what it has queued and never stops
	// reading commands because its output is backed up.
	rmu     sync.Mutex
	replies []byte
	spare   []byte        // the other buffer, under the write lock
	ready   chan struct{} // capacity 1: replies has something
	done    chan struct{} // closed when serve returns
	// used: it sent more than the guardian's setup (PROTOCOLINFO,
	// AUTHENTICATE, GETCONF DataDirectory); only then does its end end
	// the run.
	used bool
}

// isMain says whether c is the connection events go to.
func (f *FakeControlPort) isMain(c *fakeConn) bool {
	return f.main.Load() == c
}

func (f *FakeControlPort) end(err error) {
	f.mu.Lock()
	if f.ended == nil {
		f.ended = err
	}
	f.mu.Unlock()
	f.wake()
}

func (f *FakeControlPort) wake() {
	select {
	case f.notify <- struct{}{}:
	default:
	}
}

// serve reads command lines and answers each one before reading the next.
func (f *FakeControlPort) serve(c *fakeConn) {
	defer close(c.done)
	go f.writeReplies(c)
	conn := c.conn
	br := bufio.NewReaderSize(conn, 64<<10)
	var reply bytes.Buffer
	var long []byte
	var answered []Command // answered, in reply, not yet written
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		at := time.Now()
		f.record(c, line, err != nil)
		if err != nil {
			if err == io.EOF {
				err = errors.New("the controller closed the connection")
			}
			if f.isMain(c) && c.used {
				f.end(err)
			}
			return
		}
		text := string(bytes.TrimRight(line, "\r\n"))
		cmd := Command{At: at, Line: text}
		if strings.HasPrefix(text, "+") {
			// A multi-line command: its data runs to a "." line.
			for {
				d, err := br.ReadBytes('\n')
				f.record(c, d, err != nil)
				if err != nil {
					f.end(fmt.Errorf("reading the data of %q: %w", text, err))
					return
				}
				if string(bytes.TrimRight(d, "\r\n")) == "." {
					break
				}
			}
		}
		switch kw := cmd.Keyword(); {
		case kw == "PROTOCOLINFO", kw == "AUTHENTICATE", kw == "AUTHCHALLENGE", text == "GETCONF DataDirectory":
		default:
			c.used = true
		}
		if f.scripted {
			f.mu.Lock()
			f.cmds = append(f.cmds, cmd)
			f.mu.Unlock()
			f.wake()
			continue
		}
		if doc, ok := f.document(cmd); ok {
			// Written from where it is, as tor writes a document
			// it has: a copy of megabytes would cost the fake more
			// than the controller reading it.
			answered = append(answered, cmd)
			if err := f.writeTo(c, reply.Bytes(), doc); err != nil {
				f.end(fmt.Errorf("fake control port: answering %q: %w", text, err))
				return
			}
			reply.Reset()
			f.answered(answered)
			answered = answered[:0]
			continue
		}
		quit := f.answer(&reply, cmd)
		if cmd.Keyword() == "ATTACHSTREAM" {
			if fn := f.onAttach.Load(); fn != nil {
				args := cmd.Args()
				var stream, circuit string
				if len(args) > 0 {
					stream = args[0]
				}
				if len(args) > 1 {
					circuit = args[1]
				}
				reply.Write((*fn)(stream, circuit, at))
			}
		}
		answered = append(answered, cmd)
		if !quit && reply.Len() < 64<<10 && wholeLineBuffered(br) {
			// Like tor, answer every command already read in one
			// write: a reply waits for the events being sent, and
			// one reply per wait would leave commands piling up.
			continue
		}
		if quit {
			if err := f.writeTo(c, reply.Bytes(), ""); err != nil {
				f.end(fmt.Errorf("fake control port: answering %q: %w", text, err))
				return
			}
		} else if f.wmu.TryLock() {
			// Nothing being written: the reply goes at once.
			err := f.writeLocked(c, reply.Bytes())
			f.wmu.Unlock()
			if err != nil {
				f.end(fmt.Errorf("fake control port: answering %q: %w", text, err))
				return
			}
		} else {
			// Events are being written: the writer sends it after them,
			// and this goroutine goes on reading commands.
			c.rmu.Lock()
			c.replies = append(c.replies, reply.Bytes()...)
			c.rmu.Unlock()
			select {
			case c.ready <- struct{}{}:
			default:
			}
		}
		reply.Reset()
		f.answered(answered)
		answered = answered[:0]
		if quit {
			conn.Close()
			f.end(errors.New("the controller sent QUIT"))
			return
		}
	}
}

// answered records cmds as answered, and clears them.
func (f *FakeControlPort) answered(cmds []Command) {
	f.mu.Lock()
	f.cmds = append(f.cmds, cmds...)
	f.mu.Unlock()
	clear(cmds)
	f.wake()
}

// document is the whole answer to a GETINFO of one key whose value, set
// with SetInfo, has several lines.
func (f *FakeControlPort) document(cmd Command) (string, bool) {
	if cmd.Keyword() != "GETINFO" {
		return "", false
	}
	args := cmd.Args()
	if len(args) != 1 {
		return "", false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	doc, ok := f.wire[args[0]]
	if ok {
		f.infoKeys[args[0]]++
	}
	return doc, ok
}

// wholeLineBuffered says whether br holds a whole line already read.
func wholeLineBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n == 0 {
		return false
	}
	b, _ := br.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

// answer writes the reply to cmd to b. It reports whether the connection
// is to be closed after it.
func (f *FakeControlPort) answer(b *bytes.Buffer, cmd Command) (quit bool) {
	args := cmd.Args()
	switch cmd.Keyword() {
	case "PROTOCOLINFO":
		b.WriteString(protocolInfo)
	case "GETINFO":
		for _, k := range args {
			v, known := f.info(k)
			f.mu.Lock()
			f.infoKeys[k]++
			if !known {
				f.unknown[k]++
			}
			f.mu.Unlock()
			if multiLineInfo(k, v) {
				b.WriteString("250+" + k + "=\r\n")
				if v != "" {
					b.WriteString(strings.ReplaceAll(v, "\n", "\r\n"))
					b.WriteString("\r\n")
				}
				b.WriteString(".\r\n")
			} else {
				b.WriteString("250-" + k + "=" + v + "\r\n")
			}
		}
		b.WriteString("250 OK\r\n")
	case "GETCONF":
		lines := make([]string, len(args))
		for i, k := range args {
			lines[i] = k + "=0"
		}
		writeLines(b, lines)
	case "MAPADDRESS":
		writeLines(b, args)
	case "QUIT":
		b.WriteString("250 closing connection\r\n")
		return true
	default:
		// AUTHENTICATE, SETCONF, RESETCONF, SETEVENTS, SIGNAL,
		// USEFEATURE, ATTACHSTREAM, REDIRECTSTREAM, CLOSESTREAM and
		// anything else.
		b.WriteString("250 OK\r\n")
	}
	return false
}

// info is the fake's value for a GETINFO key; known is false for a key it
// has no value for, which it answers with an empty value.
// writeLines writes a reply of one 250 line each ("250 OK" for none).
func writeLines(b *bytes.Buffer, lines []string) {
	if len(lines) == 0 {
		b.WriteString("250 OK\r\n")
	}
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		b.WriteString("250" + sep + l + "\r\n")
	}
}

// SetInfo makes GETINFO key answer value (a data block when it has
// several lines).
func (f *FakeControlPort) SetInfo(key, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.infos[key] = value
	delete(f.wire, key)
	if strings.Contains(value, "\n") {
		// Like tor, which has its documents ready, answer without
		// converting them each time.
		if f.wire == nil {
			f.wire = map[string]string{}
		}
		f.wire[key] = "250+" + key + "=\r\n" + strings.ReplaceAll(value, "\n", "\r\n") + "\r\n.\r\n250 OK\r\n"
	}
}

func (f *FakeControlPort) info(key string) (v string, known bool) {
	f.mu.Lock()
	v, known = f.infos[key]
	f.mu.Unlock()
	if known {
		return v, true
	}
	switch key {
	case "version":
		return FakeTorVersion, true
	case "status/bootstrap-phase":
		return fakeBootstrap, true
	case "circuit-status":
		return fakeCircuitLine, true
	case "stream-status":
		return "", true
	case "process/pid":
		return f.pid, true
	}
	return "", false
}

// multiLineInfo reports whether the value of key is sent as a data block
// ("250+key=" CRLF, the value, "." CRLF). circuit-status always is, as a
// controller must read both forms.
func multiLineInfo(key, v string) bool {
	return key == "circuit-status" || strings.Contains(v, "\n")
}

// writeReplies writes c's replies as they come, each batch whole, between
// the events Send writes.
func (f *FakeControlPort) writeReplies(c *fakeConn) {
	for {
		select {
		case <-c.ready:
		case <-c.done:
			return
		}
		// Taken under the write lock, so that a Send writing them
		// first keeps them in order with its events.
		f.wmu.Lock()
		err := f.writeLocked(c, nil)
		f.wmu.Unlock()
		if err != nil {
			f.end(fmt.Errorf("fake control port: answering: %w", err))
			return
		}
	}
}

// writeLocked writes c's queued replies, then p, then more, and flushes;
// f.wmu is held.
func (f *FakeControlPort) writeLocked(c *fakeConn, p []byte, more ...string) error {
	// Swapped out under rmu, written without it: the reader may queue
	// more meanwhile.
	c.rmu.Lock()
	queued := c.replies
	c.replies = c.spare[:0]
	c.rmu.Unlock()
	defer func() { c.spare = queued[:0] }()
	if len(queued) == 0 && len(p) == 0 && len(more) == 0 {
		return nil
	}
	c.conn.SetWriteDeadline(time.Now().Add(fakeWriteTimeout))
	if _, err := c.w.Write(queued); err != nil {
		return err
	}
	if _, err := c.w.Write(p); err != nil {
		return err
	}
	for _, s := range more {
		if _, err := c.w.WriteString(s); err != nil {
			return err
		}
	}
	return c.w.Flush()
}

// writeTo writes one whole reply to c and flushes it.
func (f *FakeControlPort) writeTo(c *fakeConn, p []byte, then string) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	return f.writeLocked(c, p, then) // the replies queued before, first
}

// write writes one whole message to the latest connection and flushes it.
func (f *FakeControlPort) write(p []byte) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.conn == nil {
		return errors.New("fake control port: no controller connected")
	}
	f.conn.SetWriteDeadline(time.Now().Add(fakeWriteTimeout))
	if m := f.main.Load(); m != nil && m.w == f.w {
		// Replies already given go first, as in tor's output.
		return f.writeLocked(m, p)
	}
	if _, err := f.w.Write(p); err != nil {
		return err
	}
	return f.w.Flush()
}

// Send writes p (one or more whole events, with their CRLFs) to the
// controller.
func (f *FakeControlPort) Send(p []byte) error {
	if err := f.write(p); err != nil {
		return fmt.Errorf("fake control port: sending events: %w", err)
	}
	return nil
}

// Commands returns the commands received so far, in order.
func (f *FakeControlPort) Commands() []Command {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Command(nil), f.cmds...)
}

// Len is how many commands have been received.
func (f *FakeControlPort) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.cmds)
}

// InfoKeys returns every GETINFO key asked, with how often, and the subset
// of them the fake answered with an empty value for want of one.
func (f *FakeControlPort) InfoKeys() (asked, unknown map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	asked, unknown = map[string]int{}, map[string]int{}
	for k, n := range f.infoKeys {
		asked[k] = n
	}
	for k, n := range f.unknown {
		unknown[k] = n
	}
	return asked, unknown
}

// Ended is the reason the connection ended, or nil while it is up.
func (f *FakeControlPort) Ended() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ended
}

// WaitCommand waits until a command at index from or later has been
// received and answered and satisfies match, and returns its index. It
// gives up after timeout, when abort is closed or when the connection
// ends. Only one goroutine may wait at a time.
func (f *FakeControlPort) WaitCommand(from int, timeout time.Duration, abort <-chan struct{}, match func(Command) bool) (int, Command, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		f.mu.Lock()
		for i := from; i < len(f.cmds); i++ {
			if match(f.cmds[i]) {
				c := f.cmds[i]
				f.mu.Unlock()
				return i, c, nil
			}
		}
		from = max(from, len(f.cmds))
		ended := f.ended
		f.mu.Unlock()
		if ended != nil {
			return -1, Command{}, fmt.Errorf("fake control port: %w", ended)
		}
		select {
		case <-f.notify:
		case <-timer.C:
			return -1, Command{}, fmt.Errorf("fake control port: waited %v", timeout)
		case <-abort:
			return -1, Command{}, errors.New("the controller exited")
		}
	}
}

// record keeps what the controller of c wrote, when c is the latest
// connection; end says c's controller side is gone.
func (f *FakeControlPort) record(c *fakeConn, p []byte, end bool) {
	if !f.isMain(c) {
		return
	}
	f.mu.Lock()
	f.got = append(f.got, p...)
	if end {
		f.eof = true
	}
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// waitWritten waits until cond (called with f.mu held) holds, or the
// controller hangs up, or timeout passes. It reports whether cond held.
func (f *FakeControlPort) waitWritten(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
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

// Written is every byte the latest controller has written so far.
func (f *FakeControlPort) Written() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return string(f.got)
}

// Expect waits up to timeout for the controller to write len(want) more
// bytes and returns them (fewer if it hung up); ok says they are want.
func (f *FakeControlPort) Expect(want string, timeout time.Duration) (got string, ok bool) {
	f.waitWritten(timeout, func() bool { return len(f.got)-f.off >= len(want) })
	f.mu.Lock()
	defer f.mu.Unlock()
	end := min(f.off+len(want), len(f.got))
	got = string(f.got[f.off:end])
	f.off = end
	return got, got == want
}

// NextCommand waits up to timeout for the next line the controller writes
// and returns it with its CRLF.
func (f *FakeControlPort) NextCommand(timeout time.Duration) (string, bool) {
	var line string
	ok := f.waitWritten(timeout, func() bool {
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

// DialScripted starts a scripted fake (NewScriptedFakeControlPort) and
// connects to it as a controller (Dial); the test fails if it cannot, and
// the fake is closed when the test ends.
func DialScripted(t testing.TB) (*FakeControlPort, net.Conn) {
	t.Helper()
	f, err := NewScriptedFakeControlPort()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	c, err := f.Dial()
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

// Hangup closes the latest connection: its controller reads EOF.
func (f *FakeControlPort) Hangup() {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.conn != nil {
		f.conn.Close()
	}
}

// Dial connects to the fake as a controller. Reads on the connection it
// returns fail with the error given to FailReads, once that is called.
func (f *FakeControlPort) Dial() (net.Conn, error) {
	c, err := net.Dial("tcp", f.Addr())
	if err != nil {
		return nil, err
	}
	<-f.connected
	for { // wait until the fake has taken this connection as the latest
		f.wmu.Lock()
		ok := f.conn != nil && f.conn.RemoteAddr().String() == c.LocalAddr().String()
		f.wmu.Unlock()
		if ok {
			break
		}
		time.Sleep(time.Millisecond)
	}
	return &dialedConn{Conn: c, f: f}, nil
}

// dialedConn is a controller's end made by Dial: an error injected by
// FailReads replaces the EOF it reads when the fake hangs up.
type dialedConn struct {
	net.Conn
	f *FakeControlPort
}

func (c *dialedConn) Read(p []byte) (int, error) {
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

// FailReads makes the pending and later reads of a Dial'd connection fail
// with err, and hangs up.
func (f *FakeControlPort) FailReads(err error) {
	f.mu.Lock()
	f.readErr = err
	f.mu.Unlock()
	f.Hangup()
}
