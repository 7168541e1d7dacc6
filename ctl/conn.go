package ctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Conn. The zero value is usable.
type Options struct {
	Limits Limits
	// Trace, if set, receives the raw transcript: every line written
	// prefixed "C: " and every line read prefixed "S: ". Secrets in
	// AUTHENTICATE are replaced by "[scrubbed]".
	Trace io.Writer
	// Timeout bounds a command whose context has no deadline. Default 2m.
	Timeout time.Duration
	// EventBacklog is how many events may wait for the consumer before
	// high-volume telemetry (BW, *_BW, CELL_STATS, TB_EMPTY, DEBUG, INFO)
	// is dropped and counted. Other events are never dropped. Default 65536.
	EventBacklog int
	// EventBytes bounds the memory of the events waiting for the consumer
	// (about twice their text). Past a sixteenth of it (4 MiB by default)
	// the reader stops reading and leaves the rest to wait in tor until
	// the consumer takes events, unless a command waits for its reply
	// (its reply is behind them): then it reads on, dropping telemetry
	// (counted); if the events that are never dropped (STREAM, CIRC, ...)
	// alone reach EventBytes, the connection fails with ErrEventOverflow
	// rather than grow without bound. Default 64 MiB.
	EventBytes int
	Logger     *slog.Logger
}

// ErrEventOverflow ends a connection whose consumer fell so far behind
// that the events it must not lose no longer fit in Options.EventBytes.
var ErrEventOverflow = errors.New("control connection: the event consumer fell too far behind (events that cannot be dropped passed the queue's bound)")

// Conn is a control-port connection. One goroutine reads the socket:
// replies complete pending commands in order, so commands may be issued
// from many goroutines at once and are pipelined; asynchronous events go to
// Events. A read or write error is sticky: it fails every pending command
// and every later one.
type Conn struct {
	rwc  io.ReadWriteCloser
	opts Options
	log  *slog.Logger

	// wsem (capacity 1) serialises writes and their place in the FIFO; a
	// channel rather than a mutex so that a command waiting to write still
	// honours its context.
	wsem chan struct{}
	wbuf bytes.Buffer // under wsem: what is to be written, held while corked
	// corked holds the commands Start writes until Flush (see Cork), or
	// corkDelay after the first is held; those StartGuarded holds wait
	// for the timer only once Guard has armed it.
	corked    atomic.Bool
	holdTimer *time.Timer // under wsem
	holdArmed atomic.Bool // holdTimer will fire; written under wsem
	// heldAt is when the oldest command held was (time since epoch), 0
	// when none is held.
	heldAt atomic.Int64
	epoch  time.Time

	waiters atomic.Int32 // commands waiting for their reply

	mu      sync.Mutex
	pending []*pending // FIFO of commands awaiting a reply
	err     error      // sticky; set once
	done    chan struct{}

	traceMu sync.Mutex

	events *eventQueue

	check atomic.Pointer[CheckFunc]

	deferred atomic.Pointer[[]string] // event types delivered unparsed (Defer)
}

// CheckFunc vets a command before it is written; an error stops it, and
// nothing is sent.
type CheckFunc func(ctx context.Context, line string) error

// SetCheck sets the function that vets every command written from now on
// (torscript's grants); nil for none.
func (c *Conn) SetCheck(f CheckFunc) {
	if f == nil {
		c.check.Store(nil)
		return
	}
	c.check.Store(&f)
}

type pending struct {
	ch chan result // buffered 1; nil when cb is set
	cb func(*Reply, error)
	// guarded: held on a corked connection, it arms no timer (StartGuarded).
	guarded bool
}

func (q *pending) complete(res result) {
	if q.cb != nil {
		if res.err == nil {
			res.err = res.r.Err()
		}
		q.cb(res.r, res.err)
		return
	}
	q.ch <- res
}

type result struct {
	r   *Reply
	err error
}

// Dial connects to a control port: "HOST:PORT", "tcp:HOST:PORT" or
// "unix:PATH". It does not authenticate (see Authenticate).
func Dial(ctx context.Context, addr string, opts Options) (*Conn, error) {
	network, address := "tcp", addr
	switch {
	case strings.HasPrefix(addr, "unix:"):
		network, address = "unix", strings.TrimPrefix(addr, "unix:")
	case strings.HasPrefix(addr, "tcp:"):
		address = strings.TrimPrefix(addr, "tcp:")
	case strings.HasPrefix(addr, "/"):
		network = "unix"
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("control port %s: %w", addr, err)
	}
	return NewConn(nc, opts), nil
}

// NewConn wraps an established connection and starts its reader goroutine.
func NewConn(rwc io.ReadWriteCloser, opts Options) *Conn {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	if opts.EventBacklog <= 0 {
		opts.EventBacklog = 1 << 16
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.EventBytes <= 0 {
		opts.EventBytes = 64 << 20
	}
	c := &Conn{rwc: rwc, opts: opts, log: opts.Logger, done: make(chan struct{}), wsem: make(chan struct{}, 1), epoch: time.Now()}
	c.events = newEventQueue(opts.EventBacklog, c.log)
	c.events.maxBytes = opts.EventBytes
	c.events.soft = opts.EventBytes / 16
	c.events.stop = c.done
	c.events.waiters = &c.waiters
	go c.readLoop()
	return c
}

// Events delivers asynchronous events in the order tor sent them. The
// channel is closed after the connection ends and every queued event has
// been delivered. Events are only sent after a SETEVENTS.
//
// Events and EventBatch are two ways to consume the same queue; a program
// uses one of them.
func (c *Conn) Events() <-chan Event { return c.events.channel() }

// EventReady receives a value when events may be waiting for EventBatch.
// Together they deliver events with one goroutine hand-off instead of two,
// in batches: wait on EventReady, then call EventBatch until it returns
// no events.
func (c *Conn) EventReady() <-chan struct{} { return c.events.notify }

// EventBatch appends the queued events to buf[:0], in the order tor sent
// them, and returns it. ok is false once the connection has ended and every
// event has been taken.
func (c *Conn) EventBatch(buf []Event) (evs []Event, ok bool) { return c.events.take(buf) }

// Stalls counts how often the reader stopped reading because the events
// waiting for the consumer passed a sixteenth of Options.EventBytes (the
// rest waited in tor).
func (c *Conn) Stalls() uint64 { return c.events.stallCount() }

// Behind reports whether the consumer is behind tor by much: from when the
// reader has waited a second for it (the events queued past the soft
// bound, a sixteenth of Options.EventBytes, and tor holding those that
// came after them, client streams' STREAM events among them) until the
// reader has read all tor had sent. A consumer may then hurry through the
// high-volume telemetry it has (Droppable) to reach those sooner. Cheap
// enough to ask for every event.
func (c *Conn) Behind() bool { return c.events.behind.Load() }

// Droppable reports whether events of type typ (BW, DEBUG, ...) are
// high-volume telemetry the connection drops rather than grow past its
// bound (see Options.EventBytes); never STREAM, CIRC or any event a
// program's state follows.
func Droppable(typ string) bool { return droppable(typ) }

// DroppedEvents counts the high-volume events dropped because the consumer
// fell behind by more than Options.EventBacklog.
func (c *Conn) DroppedEvents() uint64 { return c.events.droppedCount() }

// QueuedEvents says how many events wait for the consumer, and about how
// many bytes they hold. Safe to call from any goroutine.
func (c *Conn) QueuedEvents() (n, bytes int) {
	c.events.mu.Lock()
	defer c.events.mu.Unlock()
	return len(c.events.q), c.events.bytes
}

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is the sticky error that ended the connection, or nil while it is up.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection and fails every pending command with ErrClosed.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	return nil
}

func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	p := c.pending
	c.pending = nil
	close(c.done)
	c.mu.Unlock()
	c.rwc.Close()
	for _, q := range p {
		q.complete(result{err: err})
	}
}

func (c *Conn) readLoop() {
	defer c.events.close()
	defer func() {
		// As in ParseEvent: a bug below (in the reply reader, or in the
		// transport's Read) must not take the program down. It ends the
		// connection like a malformed reply: every pending command fails.
		if p := recover(); p != nil {
			c.log.Error("control connection reader failed", "panic", fmt.Sprint(p))
			c.fail(&ProtocolError{Msg: fmt.Sprintf("reading the control connection: %v: %v", errParserPanic, p)})
		}
	}()
	// Events are queued in batches (one lock and one wake-up for many),
	// up to maxReadBatch, and always before the reader could block on
	// the socket (readAhead) or hands a command its reply: an event is
	// never held back while the reader waits, nor overtaken by a reply.
	var batch []Event
	flush := func() bool {
		if len(batch) == 0 {
			return true
		}
		ok := c.events.pushBatch(batch)
		clear(batch)
		batch = batch[:0]
		return ok
	}
	overflow := func() {
		c.log.Error("event queue overflow: closing the connection", "bound_bytes", c.opts.EventBytes)
		c.fail(ErrEventOverflow)
	}
	failed := false // a flush before a read found the queue full
	rr := NewReplyReader(&readAhead{r: c.rwc, before: func() bool {
		failed = failed || !flush()
		return !failed
	}, drained: func() {
		if c.events.behind.Load() {
			c.events.behind.Store(false)
		}
	}}, c.opts.Limits)
	rr.eventScratch = true
	for {
		r, err := rr.ReadReply()
		if failed {
			overflow()
			return
		}
		if err == ErrEventTooLarge {
			// Read and left out: an event that big is not kept in memory.
			n := c.events.dropOne()
			if n&(n-1) == 0 {
				c.log.Warn("event over the size bound left out", "bound_bytes", rr.lim.MaxEventBytes, "dropped", n)
			}
			continue
		}
		if err != nil {
			if !flush() {
				overflow()
				return
			}
			c.mu.Lock()
			closed := c.err != nil
			c.mu.Unlock()
			if !closed {
				if err == io.EOF {
					err = fmt.Errorf("control connection closed by tor: %w", io.EOF)
				} else if _, ok := err.(*ProtocolError); !ok {
					err = fmt.Errorf("control connection: %w", err)
				}
				c.log.Debug("control connection ended", "err", err)
			}
			c.fail(err)
			return
		}
		if c.opts.Trace != nil {
			c.trace("S: ", scrubReply(r.String()))
		}
		if r.IsAsync() {
			ev := c.parseEvent(r)
			keepReply(ev, &rr.scratch)
			if batch = append(batch, ev); len(batch) >= maxReadBatch && !flush() {
				overflow()
				return
			}
			continue
		}
		if !flush() {
			overflow()
			return
		}
		c.mu.Lock()
		if len(c.pending) == 0 {
			c.mu.Unlock()
			c.fail(&ProtocolError{Msg: "reply with no command pending", Line: r.Lines[0].Text})
			return
		}
		q := c.pending[0]
		c.pending[0] = nil
		if len(c.pending) == 1 {
			// Keep the array: the next command goes in it without an
			// allocation (one command at a time is the common case).
			c.pending = c.pending[:0]
		} else {
			c.pending = c.pending[1:]
		}
		c.mu.Unlock()
		q.complete(result{r: r})
	}
}

// maxReadBatch is the most events the reader queues at once.
const maxReadBatch = 64

// readAhead is the connection as the reader reads it: before each read
// from the socket, which may block, it runs before (which queues the
// events read so far; false stops the reading), and drained too when the
// read before did not fill its buffer: the reader has then read all the
// socket had.
type readAhead struct {
	r       io.Reader
	before  func() bool
	drained func()
	short   bool // the last read did not fill its buffer
}

// errStopRead ends a read that before stopped.
var errStopRead = errors.New("reading stopped")

func (ra *readAhead) Read(p []byte) (int, error) {
	if !ra.before() {
		return 0, errStopRead
	}
	if ra.short {
		ra.drained()
	}
	n, err := ra.r.Read(p)
	ra.short = n < len(p)
	return n, err
}

func (c *Conn) trace(prefix, raw string) {
	c.traceMu.Lock()
	defer c.traceMu.Unlock()
	for raw != "" {
		i := strings.IndexByte(raw, '\n')
		var line string
		if i < 0 {
			line, raw = raw, ""
		} else {
			line, raw = raw[:i+1], raw[i+1:]
		}
		io.WriteString(c.opts.Trace, prefix+strings.TrimRight(line, "\r\n")+"\n")
	}
}

// Do sends one command line (without CRLF) and waits for its reply. A 4yz
// or 5yz reply returns both the reply and an *Error. The line may not
// contain CR, LF or NUL; nothing is written if it does.
func (c *Conn) Do(ctx context.Context, line string) (*Reply, error) {
	if err := CheckArg("command", line); err != nil {
		return nil, err
	}
	return c.roundTrip(ctx, line, "", false)
}

// DoData sends a multi-line command: "+" line CRLF, then data dot-stuffed
// and terminated by "." (control-spec 2.2).
func (c *Conn) DoData(ctx context.Context, line, data string) (*Reply, error) {
	if err := CheckArg("command", line); err != nil {
		return nil, err
	}
	if strings.IndexByte(data, 0) >= 0 {
		return nil, fmt.Errorf("command data: %w: contains NUL", ErrUnsafeArgument)
	}
	return c.roundTrip(ctx, "+"+strings.TrimPrefix(line, "+"), data, true)
}

// Raw sends a command as a user typed it. A command whose keyword starts
// with "+" is multi-line: its first line is the command and the rest is its
// data. Any other command must be a single line.
func (c *Conn) Raw(ctx context.Context, text string) (*Reply, error) {
	text = strings.TrimRight(text, "\r\n")
	if strings.HasPrefix(text, "+") {
		line, data, _ := strings.Cut(text, "\n")
		return c.DoData(ctx, strings.TrimSuffix(line, "\r"), data)
	}
	return c.Do(ctx, text)
}

func (c *Conn) roundTrip(ctx context.Context, line, data string, hasData bool) (*Reply, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.Timeout)
		defer cancel()
	}
	q := &pending{ch: make(chan result, 1)}
	// The reply may be behind events the reader holds back: it reads on
	// while a command waits.
	c.waiters.Add(1)
	defer c.waiters.Add(-1)
	c.events.hurry()
	if err := c.write(ctx, line, data, hasData, q); err != nil {
		return nil, err
	}
	select {
	case res := <-q.ch:
		if res.err != nil {
			return nil, res.err
		}
		return res.r, res.r.Err()
	case <-ctx.Done():
		// The reply will still arrive and be discarded: q stays in the
		// FIFO so later replies keep their order.
		return nil, fmt.Errorf("%s: %w", commandName(line), ctx.Err())
	}
}

// write queues q in the FIFO and writes the command: at once, or, for a
// command started with Start on a corked connection, with the next Flush.
// After it returns nil, q is completed exactly once.
func (c *Conn) write(ctx context.Context, line, data string, hasData bool, q *pending) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if check := c.check.Load(); check != nil {
		if err := (*check)(ctx, line); err != nil {
			return err
		}
	}
	select {
	case c.wsem <- struct{}{}:
	default:
		// Another writer holds it: wait, as long as ctx lets.
		select {
		case c.wsem <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting to write: %w", commandName(line), ctx.Err())
		case <-c.done:
			return c.Err()
		}
	}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		<-c.wsem
		return err
	}
	c.pending = append(c.pending, q)
	c.mu.Unlock()
	start := c.wbuf.Len()
	c.wbuf.WriteString(line)
	c.wbuf.WriteString("\r\n")
	if hasData {
		stuff(&c.wbuf, data)
	}
	if c.opts.Trace != nil {
		c.trace("C: ", scrub(string(c.wbuf.Bytes()[start:])))
	}
	if q.cb != nil && c.corked.Load() && c.wbuf.Len() < corkMax {
		if start == 0 {
			c.heldAt.Store(max(int64(time.Since(c.epoch)), 1))
		}
		if !q.guarded {
			c.armHold()
		}
		<-c.wsem
		return nil
	}
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(c.opts.Timeout)
	}
	c.flushLocked(d, commandName(line))
	<-c.wsem
	return nil
}

// corkMax is how much Start holds on a corked connection before it writes
// anyway, and corkDelay how long.
const (
	corkMax   = 16 << 10
	corkDelay = time.Millisecond
)

// flushHeld writes what Start held, corkDelay after the first: a batch
// whose handlers take long does not delay its first decisions.
func (c *Conn) flushHeld() {
	if !c.takeWsem() {
		return
	}
	c.holdArmed.Store(false)
	c.flushLocked(time.Now().Add(c.opts.Timeout), "commands")
	<-c.wsem
}

// armHold arms the hold timer, under wsem, unless it is armed: to fire
// corkDelay after the first command held.
func (c *Conn) armHold() {
	if c.holdArmed.Load() {
		return
	}
	d := max(corkDelay-c.HeldFor(), 0)
	c.holdArmed.Store(true)
	if c.holdTimer == nil {
		c.holdTimer = time.AfterFunc(d, c.flushHeld)
	} else {
		c.holdTimer.Reset(d)
	}
}

// Guard makes what a corked connection holds go out at most corkDelay
// after the first of it was held, Flush or not: the caller of StartGuarded
// calls it before work that may take long (a script's call) while commands
// are held. It costs two atomic loads when nothing is held or the timer is
// armed already.
func (c *Conn) Guard() {
	if c.heldAt.Load() == 0 || c.holdArmed.Load() {
		return
	}
	if !c.takeWsem() {
		return
	}
	if c.wbuf.Len() > 0 {
		c.armHold()
	}
	<-c.wsem
}

// takeWsem waits for wsem, and reports false when the connection ended
// first.
func (c *Conn) takeWsem() bool {
	select {
	case c.wsem <- struct{}{}:
		return true
	default:
	}
	select {
	case c.wsem <- struct{}{}:
		return true
	case <-c.done:
		return false
	}
}

// flushLocked writes what wbuf holds, under wsem. A write that cannot
// finish by deadline (tor stopped reading) ends the connection: a
// half-written command cannot be taken back.
func (c *Conn) flushLocked(deadline time.Time, what string) {
	if c.wbuf.Len() == 0 {
		return
	}
	dl, hasDL := c.rwc.(interface{ SetWriteDeadline(time.Time) error })
	if hasDL {
		dl.SetWriteDeadline(deadline)
	}
	_, werr := c.rwc.Write(c.wbuf.Bytes())
	if hasDL {
		dl.SetWriteDeadline(time.Time{})
	}
	c.wbuf.Reset()
	c.heldAt.Store(0)
	if werr != nil {
		c.fail(fmt.Errorf("control connection: write %s: %w", what, werr))
	}
}

// Cork makes Start hold the commands it writes (up to 16 KiB) until Flush,
// so that the commands a batch of events causes go out in one write.
// Commands that wait for their reply are never held: they write what is
// held first.
func (c *Conn) Cork() { c.corked.Store(true) }

// HeldFor is how long the oldest command Start holds has waited, 0 when
// it holds none: a loop that handles a long batch corked flushes when its
// decisions have waited long enough, with one clock read now and then.
func (c *Conn) HeldFor() time.Duration {
	t := c.heldAt.Load()
	if t == 0 {
		return 0
	}
	return time.Since(c.epoch) - time.Duration(t)
}

// Flush writes the commands Start held, and ends Cork.
func (c *Conn) Flush() {
	c.corked.Store(false)
	if !c.takeWsem() {
		return
	}
	// Nothing is held past here: the timer would only put a wait of a
	// millisecond in the scheduler's way (a poll with a timeout, which
	// costs a virtual machine more than one without) at every pause.
	if c.holdArmed.Load() {
		c.holdTimer.Stop()
		c.holdArmed.Store(false)
	}
	if c.wbuf.Len() > 0 {
		c.flushLocked(time.Now().Add(c.opts.Timeout), "commands")
	}
	<-c.wsem
}

func commandName(line string) string {
	name, _, _ := strings.Cut(line, " ")
	return strings.TrimPrefix(name, "+")
}

// ScrubCommand returns a command line with the secrets scrub hides in the
// transcript (AUTHENTICATE's, a key of ADD_ONION or ONION_CLIENT_AUTH_ADD)
// replaced by "[scrubbed]", for echoing a command a user typed.
func ScrubCommand(line string) string {
	return strings.TrimRight(scrub(strings.TrimRight(line, "\r\n")+"\r\n"), "\r\n")
}

// scrub hides the secret of an AUTHENTICATE command in the transcript.
func scrub(s string) string {
	if len(s) >= 12 && strings.EqualFold(s[:12], "AUTHENTICATE") && strings.TrimSpace(s[12:]) != "" {
		return s[:12] + " [scrubbed]\r\n"
	}
	// ADD_ONION KeyType:KeyBlob and ONION_CLIENT_AUTH_ADD's private key:
	// keep the command and the key type, never the key.
	up := strings.ToUpper(s)
	for kw, at := range map[string]int{"ADD_ONION ": 1, "ONION_CLIENT_AUTH_ADD ": 2} {
		if !strings.HasPrefix(up, kw) {
			continue
		}
		fields := strings.Split(strings.TrimRight(s, "\r\n"), " ")
		if at < len(fields) {
			if t, blob, ok := strings.Cut(fields[at], ":"); ok && blob != "" && !strings.EqualFold(t, "NEW") && !strings.Contains(t, "=") {
				fields[at] = t + ":[scrubbed]"
			}
		}
		for i, f := range fields {
			// ClientAuth=NAME:COOKIE (a shared secret).
			if v, ok := strings.CutPrefix(f, "ClientAuth="); ok {
				if name, _, ok := strings.Cut(v, ":"); ok {
					fields[i] = "ClientAuth=" + name + ":[scrubbed]"
				}
			}
		}
		return strings.Join(fields, " ") + "\r\n"
	}
	return s
}

// scrubReply keeps a private key tor sends (ADD_ONION's PrivateKey=,
// ONION_CLIENT_AUTH_VIEW's keys) out of the transcript.
func scrubReply(s string) string {
	for _, k := range []string{"PrivateKey=", "ClientAuthV3="} {
		i := strings.Index(s, k)
		if i < 0 {
			continue
		}
		rest := s[i+len(k):]
		end := strings.IndexAny(rest, " \r\n")
		if end < 0 {
			end = len(rest)
		}
		val := rest[:end]
		if t, _, ok := strings.Cut(val, ":"); ok {
			val = t + ":[scrubbed]"
		} else {
			val = "[scrubbed]"
		}
		s = s[:i+len(k)] + val + rest[end:]
	}
	return s
}

// eventQueue stands between the reader and the consumer. Past soft bytes
// the reader waits for the consumer (tor keeps the rest), unless a command
// waits for its reply: then it queues on, dropping high-volume telemetry,
// up to maxBytes. The consumer either takes batches (take, woken by
// notify) or reads a channel fed by a pump goroutine started on first use.
type eventQueue struct {
	mu       sync.Mutex
	q        []Event
	closed   bool
	backlog  int
	bytes    int // about what the queued events hold
	soft     int // past it the reader waits; 0: never
	maxBytes int // 0: no bound
	dropped  uint64
	stalls   uint64 // how often the reader waited for the consumer
	// behind is set once the reader has waited for the consumer for
	// behindAfter, until it has read all tor had sent (see Conn.Behind).
	behind atomic.Bool
	log    *slog.Logger
	notify chan struct{} // capacity 1

	space   chan struct{}   // capacity 1: take made room
	urgent  chan struct{}   // capacity 1: a command waits for its reply
	waiters *atomic.Int32   // commands waiting for their reply, or nil
	stop    <-chan struct{} // the connection ended

	pumpOnce sync.Once
	out      chan Event
}

func newEventQueue(backlog int, log *slog.Logger) *eventQueue {
	return &eventQueue{backlog: backlog, log: log, notify: make(chan struct{}, 1), out: make(chan Event, 256),
		space: make(chan struct{}, 1), urgent: make(chan struct{}, 1)}
}

// eventSize is about what an event holds in memory: its text and its
// parsed fields.
func eventSize(ev Event) int {
	if r := ev.Reply(); r != nil {
		return 2*r.Size() + 128
	}
	return 256
}

// pushBatch queues evs in order under one lock; it returns false when an
// event that may not be dropped does not fit in the bound (those before it
// are queued).
func (e *eventQueue) pushBatch(evs []Event) bool {
	type drop struct {
		n   uint64
		typ string
	}
	var drops []drop
	defer func() {
		for _, d := range drops {
			e.log.Warn("event consumer is behind; dropping high-volume events", "dropped", d.n, "type", d.typ)
		}
	}()
	e.mu.Lock()
	before, queued := len(e.q), false
	for _, ev := range evs {
		size := eventSize(ev)
		if e.soft > 0 && e.bytes+size > e.soft && !e.wait(size) {
			e.mu.Unlock()
			return true // the connection ended: nobody will take it
		}
		// Past the soft bound only while a command waits for its reply.
		full := e.soft > 0 && e.bytes+size > e.soft
		if (len(e.q) >= e.backlog || full) && droppable(ev.EventType()) {
			e.dropped++
			if n := e.dropped; n&(n-1) == 0 { // 1, 2, 4, 8, ...: loud but bounded
				drops = append(drops, drop{n, ev.EventType()})
			}
			continue
		}
		if e.maxBytes > 0 && e.bytes+size > e.maxBytes {
			e.mu.Unlock()
			e.wake()
			return false
		}
		e.q = append(e.q, ev)
		e.bytes += size
		queued = true
	}
	n := len(e.q)
	e.mu.Unlock()
	if !queued {
		return true
	}
	e.wake()
	if n/yieldAt > before/yieldAt {
		// The consumer is behind: give it the processor now and then
		// rather than parse far ahead of it (with GOMAXPROCS=1 the reader
		// would otherwise keep it for whole time slices).
		runtime.Gosched()
	}
	return true
}

// wait waits, with e.mu held (and released meanwhile), until an event of
// size fits under the soft bound or a command waits for its reply. It
// returns false when the connection ended.
func (e *eventQueue) wait(size int) bool {
	var long *time.Timer // behindAfter from the first wait
	defer func() {
		if long != nil {
			long.Stop()
		}
	}()
	for e.bytes+size > e.soft && !e.closed && (e.waiters == nil || e.waiters.Load() == 0) {
		if long == nil {
			e.stalls++
			long = time.NewTimer(behindAfter)
		}
		e.mu.Unlock()
		e.wake()
		select {
		case <-e.space:
		case <-e.urgent:
		case <-long.C:
			e.behind.Store(true)
			e.mu.Lock()
			continue
		case <-e.stop:
			e.mu.Lock()
			return false
		}
		e.mu.Lock()
	}
	return true
}

// behindAfter is how long the reader waits for the consumer before the
// connection says it is behind (Conn.Behind).
const behindAfter = time.Second

// hurry tells a reader waiting for the consumer that a command waits for
// its reply.
func (e *eventQueue) hurry() {
	select {
	case e.urgent <- struct{}{}:
	default:
	}
}

// stallCount is how often the reader waited for the consumer.
func (e *eventQueue) stallCount() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stalls
}

// yieldAt is the queue length past which the reader yields to the consumer
// every yieldAt events.
const yieldAt = 1024

func (e *eventQueue) wake() {
	select {
	case e.notify <- struct{}{}:
	default:
	}
}

func (e *eventQueue) close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.wake()
	e.hurry()
}

// dropOne counts an event left out before it was queued.
func (e *eventQueue) dropOne() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dropped++
	return e.dropped
}

func (e *eventQueue) droppedCount() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dropped
}

// take moves every queued event to buf.
func (e *eventQueue) take(buf []Event) ([]Event, bool) {
	buf = buf[:0]
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.q) == 0 {
		return buf, !e.closed
	}
	buf = append(buf, e.q...)
	clear(e.q)
	e.q = e.q[:0]
	e.bytes = 0
	select {
	case e.space <- struct{}{}:
	default:
	}
	return buf, true
}

func (e *eventQueue) channel() <-chan Event {
	e.pumpOnce.Do(func() { go e.pump() })
	return e.out
}

func (e *eventQueue) pump() {
	defer close(e.out)
	var batch []Event
	for {
		var ok bool
		batch, ok = e.take(batch)
		if !ok {
			return
		}
		if len(batch) == 0 {
			<-e.notify
			continue
		}
		for i, ev := range batch {
			e.out <- ev
			batch[i] = nil
		}
	}
}

func droppable(typ string) bool {
	switch typ {
	case "BW", "STREAM_BW", "CIRC_BW", "CONN_BW", "CELL_STATS", "TB_EMPTY", "DEBUG", "INFO":
		return true
	}
	return false
}
