package ctl

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Line is one line of a reply (control-spec 2.3): a MidReplyLine ('-'), a
// DataReplyLine ('+') with its CmdData, or the EndReplyLine (' ').
type Line struct {
	Code int
	Sep  byte   // '-', '+' or ' '
	Text string // the ReplyText after the separator, without CRLF
	// Data is the CmdData of a '+' line: dot-unstuffed, its lines joined
	// with "\n" and no newline after the last one.
	Data string
}

// Reply is one complete reply: every MidReplyLine and DataReplyLine up to
// and including the EndReplyLine.
type Reply struct {
	// Raw is the reply exactly as it was read from the socket, but for a
	// reply with a data block over Limits.BigData (GETINFO ns/all, a
	// NEWCONSENSUS event): its Raw is "" and String rebuilds its text,
	// so that megabytes are not held twice (raw and unstuffed).
	Raw   string
	Lines []Line

	first [1]Line // backing store for single-line replies
}

// Code is the status code of the EndReplyLine.
func (r *Reply) Code() int { return r.Lines[len(r.Lines)-1].Code }

// Text is the ReplyText of the EndReplyLine.
func (r *Reply) Text() string { return r.Lines[len(r.Lines)-1].Text }

// IsAsync reports whether the reply is an asynchronous event (6yz).
func (r *Reply) IsAsync() bool { return r.Code()/100 == 6 }

// OK reports whether the reply is a positive completion (2yz).
func (r *Reply) OK() bool { return r.Code()/100 == 2 }

// Err returns a *Error for a 4yz or 5yz reply, a *ProtocolError for a
// status code the protocol does not define for replies (1yz, 3yz, 6yz and
// above), and nil for 2yz.
func (r *Reply) Err() error {
	switch c := r.Code(); {
	case c >= 200 && c < 300:
		return nil
	case c >= 400 && c < 600:
		return &Error{Code: c, Msg: r.errorText()}
	default:
		return &ProtocolError{Msg: fmt.Sprintf("reply with status code %d", c), Line: r.Text()}
	}
}

func (r *Reply) errorText() string {
	if len(r.Lines) == 1 {
		return r.Lines[0].Text
	}
	parts := make([]string, 0, len(r.Lines))
	for _, l := range r.Lines {
		parts = append(parts, l.Text)
	}
	return strings.Join(parts, "; ")
}

// String is the raw text of the reply: Raw, or for a reply with a big data
// block its text rebuilt with CRLF line ends, as tor sends it.
func (r *Reply) String() string {
	if r.Raw != "" {
		return r.Raw
	}
	var b bytes.Buffer
	for _, l := range r.Lines {
		fmt.Fprintf(&b, "%03d%c%s\r\n", l.Code, l.Sep, l.Text)
		if l.Sep != '+' {
			continue
		}
		for data := l.Data; data != ""; {
			line, rest, more := strings.Cut(data, "\n")
			if strings.HasPrefix(line, ".") {
				b.WriteByte('.')
			}
			b.WriteString(line)
			b.WriteString("\r\n")
			if data = rest; more && rest == "" {
				b.WriteString("\r\n") // Data ended in an empty line
			}
		}
		b.WriteString(".\r\n")
	}
	return b.String()
}

// Size is about how many bytes the reply holds.
func (r *Reply) Size() int {
	if r.Raw != "" {
		return len(r.Raw)
	}
	n := 0
	for _, l := range r.Lines {
		n += len(l.Text) + len(l.Data) + 8
	}
	return n
}

// Limits bound what a ReplyReader accepts from the peer.
type Limits struct {
	MaxLineBytes  int // one line, CRLF included; default 1 MiB
	MaxReplyBytes int // one reply, data blocks included; default 64 MiB
	// MaxEventBytes bounds one asynchronous (650) reply. A larger event,
	// or one with a line over MaxLineBytes, is read to its end without
	// being kept, and ReadReply returns
	// ErrEventTooLarge: the connection goes on. Default 8 MiB (a
	// NEWCONSENSUS event of 8,000 relays is about 3 MiB).
	MaxEventBytes int
	// BigData is the size past which a data block is read straight into
	// its Line.Data, unstuffed, and the reply keeps no Raw text. Default
	// 64 KiB.
	BigData int
}

const (
	defaultMaxLine  = 1 << 20
	defaultMaxReply = 64 << 20
	defaultMaxEvent = 8 << 20
	defaultBigData  = 64 << 10
)

// ErrEventTooLarge is returned by ReadReply for an event over
// Limits.MaxEventBytes, which it read and left out; it does not end the
// connection.
var ErrEventTooLarge = errors.New("event longer than the bound: left out")

// errOverEvent stops readLine inside an event over the bound.
var errOverEvent = errors.New("over the event bound")

// ReplyReader reads replies from a control connection.
//
// To save allocations on the event path, replies are carved from small
// shared blocks: their Reply structs from a block of replySlabLen, and the
// raw text of replies of up to rawBlockMax bytes from a block of
// rawBlockSize bytes. A reply kept alive keeps its blocks alive, so at most
// about 2 KiB per reply.
type ReplyReader struct {
	r     *bufio.Reader
	lim   Limits
	buf   []byte // raw bytes of the reply being read
	spans []lineSpan

	// A line ReadReply read for its single-line fast path but left to
	// readLine.
	pending    []byte
	pendingErr error
	hasPending bool

	slab []Reply // Reply structs not yet handed out
	// eventScratch: a single-line event's Reply is scratch, which the
	// caller must copy before the next read (Conn.readLoop: most events
	// carry their own copy anyway, see Base.ownReply).
	eventScratch bool
	scratch      Reply
	raw          strings.Builder // block the raw text of small replies is copied to

	// A data block over BigData, unstuffed as it is read: data is its
	// content so far, and moved the bytes read into it (no longer in
	// buf), counted against the limits.
	data  bigData
	moved int

	limit  int  // the bound of the reply being read: MaxReplyBytes, or MaxEventBytes for an event
	inData bool // readLine is inside a data block
}

const (
	replySlabLen = 8
	rawBlockSize = 1024
	rawBlockMax  = 256
	// ownReplyMin is the size past which a reply's struct is not carved
	// from a slab.
	ownReplyMin = 4 << 10
)

// newReply returns a zero Reply from the current slab. A Reply kept alive
// keeps its slab, and the text of its neighbours, alive with it: a program
// that keeps events for long (the runtime's live state) keeps a copy of
// what it needs instead.
func (rr *ReplyReader) newReply() *Reply {
	if len(rr.slab) == 0 {
		rr.slab = make([]Reply, replySlabLen)
	}
	r := &rr.slab[0]
	rr.slab = rr.slab[1:]
	return r
}

// intern returns b as a string: a substring of the current raw block when b
// is small, its own allocation otherwise. A strings.Builder never changes
// the bytes it has written, so strings it returned stay valid.
func (rr *ReplyReader) intern(b []byte) string {
	if len(b) > rawBlockMax {
		return string(b)
	}
	if rr.raw.Cap()-rr.raw.Len() < len(b) {
		rr.raw = strings.Builder{}
		rr.raw.Grow(rawBlockSize)
	}
	start := rr.raw.Len()
	rr.raw.Write(b)
	return rr.raw.String()[start:]
}

type lineSpan struct {
	code           int
	sep            byte
	textLo, textHi int
	dataLo, dataHi int // raw data block, dot-stuffed, for '+' lines
	data           string
	big            bool // data holds the block (over BigData), already unstuffed
}

// NewReplyReader returns a reader of replies from r. Zero limits take the
// defaults.
func NewReplyReader(r io.Reader, lim Limits) *ReplyReader {
	if lim.MaxLineBytes <= 0 {
		lim.MaxLineBytes = defaultMaxLine
	}
	if lim.MaxReplyBytes <= 0 {
		lim.MaxReplyBytes = defaultMaxReply
	}
	if lim.MaxEventBytes <= 0 {
		lim.MaxEventBytes = defaultMaxEvent
	}
	if lim.BigData <= 0 {
		lim.BigData = defaultBigData
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &ReplyReader{r: br, lim: lim}
}

// readLine appends one line, terminator included, to rr.buf and returns the
// offsets of its content (without CRLF or LF).
func (rr *ReplyReader) readLine() (lo, hi int, err error) {
	lo = len(rr.buf)
	for {
		var chunk []byte
		var err error
		if rr.hasPending {
			chunk, err = rr.pending, rr.pendingErr
			rr.pending, rr.pendingErr, rr.hasPending = nil, nil, false
		} else {
			chunk, err = rr.r.ReadSlice('\n')
		}
		if len(rr.buf)+len(chunk) > cap(rr.buf) {
			// Double: append grows a large slice by a quarter, which
			// for a reply of megabytes (ns/all) allocates five times
			// its size, all of it fresh memory.
			nb := make([]byte, len(rr.buf), max(2*cap(rr.buf), len(rr.buf)+len(chunk)))
			copy(nb, rr.buf)
			rr.buf = nb
		}
		rr.buf = append(rr.buf, chunk...)
		total := rr.moved + len(rr.buf)
		over := total > rr.limit || len(rr.buf)-lo > rr.lim.MaxLineBytes
		if rr.limit == rr.lim.MaxEventBytes && over && (err == nil || errors.Is(err, bufio.ErrBufferFull)) {
			return lo, len(rr.buf), errOverEvent
		}
		if n := len(rr.buf) - lo; n > rr.lim.MaxLineBytes {
			return 0, 0, &ProtocolError{Msg: fmt.Sprintf("line longer than %d bytes", rr.lim.MaxLineBytes)}
		}
		if total > rr.lim.MaxReplyBytes {
			return 0, 0, &ProtocolError{Msg: fmt.Sprintf("reply longer than %d bytes", rr.lim.MaxReplyBytes)}
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF && len(rr.buf) > lo {
			return 0, 0, io.ErrUnexpectedEOF
		}
		return 0, 0, err
	}
	hi = len(rr.buf) - 1 // drop LF
	if hi > lo && rr.buf[hi-1] == '\r' {
		hi--
	}
	return lo, hi, nil
}

// ReadReply reads one complete reply.
func (rr *ReplyReader) ReadReply() (*Reply, error) {
	rr.buf = rr.buf[:0]
	rr.spans = rr.spans[:0]
	rr.moved = 0
	rr.data.reset() // a big block that ended in an error
	// Fast path: a single-line reply, such as most events, whole in the
	// buffer. Anything else goes the general way, starting with this line.
	chunk, err := rr.r.ReadSlice('\n')
	if err == nil {
		if r := rr.single(chunk); r != nil {
			return r, nil
		}
	}
	rr.pending, rr.pendingErr, rr.hasPending = chunk, err, true
	rr.limit, rr.inData = rr.lim.MaxReplyBytes, false
	if len(chunk) >= 3 && string(chunk[:3]) == "650" && rr.lim.MaxEventBytes < rr.limit {
		rr.limit = rr.lim.MaxEventBytes
	}
	for {
		lo, hi, err := rr.readLine()
		if err == errOverEvent {
			return nil, rr.skipEvent(lo, hi)
		}
		if err != nil {
			if err == io.EOF && len(rr.spans) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		line := rr.buf[lo:hi]
		if len(line) < 4 || !isDigit(line[0]) || !isDigit(line[1]) || !isDigit(line[2]) {
			return nil, &ProtocolError{Msg: "reply line does not start with a status code and separator", Line: string(line)}
		}
		code := int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
		sep := line[3]
		if sep != ' ' && sep != '-' && sep != '+' {
			return nil, &ProtocolError{Msg: fmt.Sprintf("bad separator %q after status code", sep), Line: string(line)}
		}
		sp := lineSpan{code: code, sep: sep, textLo: lo + 4, textHi: hi}
		if sep == '+' {
			sp.dataLo = len(rr.buf)
			rr.inData = true
			for {
				if sp.big && rr.bulkData() {
					sp.data = rr.data.end()
					break
				}
				dlo, dhi, err := rr.readLine()
				if err == errOverEvent {
					return nil, rr.skipEvent(dlo, dhi)
				}
				if err != nil {
					if err == io.EOF {
						err = io.ErrUnexpectedEOF
					}
					return nil, err
				}
				if dhi-dlo == 1 && rr.buf[dlo] == '.' {
					sp.dataHi = dlo
					if sp.big {
						sp.data = rr.endBigData(dlo)
					}
					break
				}
				switch {
				case sp.big:
					rr.moveData(dlo)
				case len(rr.buf)-sp.dataLo > rr.lim.BigData:
					sp.big = true
					rr.data.reset()
					rr.moveData(sp.dataLo)
				}
			}
			rr.inData = false
		}
		rr.spans = append(rr.spans, sp)
		if sep == ' ' {
			return rr.build(), nil
		}
	}
}

// skipEvent reads the rest of an event over the bound without keeping it:
// the line read so far is rr.buf[lo:end] (complete when it ends with LF).
// It returns ErrEventTooLarge, or the error that ended the reading.
func (rr *ReplyReader) skipEvent(lo, end int) error {
	inData := rr.inData
	line := append([]byte(nil), rr.buf[lo:end]...)
	rr.buf = rr.buf[:0]
	complete := len(line) > 0 && line[len(line)-1] == '\n'
	// A line is judged by its start (status and separator) or, inside a
	// data block, by being "." alone.
	for {
		if !complete {
			// Read the rest of this line, keeping at most its start.
			for {
				chunk, err := rr.r.ReadSlice('\n')
				if len(line) < 8 {
					line = append(line, chunk[:min(len(chunk), 8-len(line))]...)
				} else if len(chunk) > 0 && chunk[len(chunk)-1] == '\n' {
					line = append(line[:8:8], '\n') // long: not "." and not shorter than 4
				}
				if err == nil {
					break
				}
				if !errors.Is(err, bufio.ErrBufferFull) {
					if err == io.EOF {
						err = io.ErrUnexpectedEOF
					}
					return err
				}
			}
		}
		text := strings.TrimRight(string(line), "\r\n")
		switch {
		case inData:
			if text == "." {
				inData = false
			}
		case len(text) < 4:
			return &ProtocolError{Msg: "reply line does not start with a status code and separator", Line: text}
		case text[3] == '+':
			inData = true
		case text[3] == ' ':
			return ErrEventTooLarge
		}
		line, complete = line[:0], false
	}
}

// single returns the reply of line, an EndReplyLine with its line end,
// or nil if line is anything else or over the limits.
func (rr *ReplyReader) single(line []byte) *Reply {
	n := len(line)
	if n > rr.lim.MaxLineBytes || n > rr.lim.MaxReplyBytes {
		return nil
	}
	hi := n - 1 // drop LF
	if hi > 0 && line[hi-1] == '\r' {
		hi--
	}
	if hi < 4 || line[3] != ' ' || !isDigit(line[0]) || !isDigit(line[1]) || !isDigit(line[2]) {
		return nil
	}
	raw := rr.intern(line)
	var r *Reply
	if rr.eventScratch && line[0] == '6' {
		rr.scratch = Reply{}
		r = &rr.scratch
	} else {
		r = rr.newReply()
	}
	r.Raw = raw
	r.first[0] = Line{Code: int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0'), Sep: ' ', Text: raw[4:hi]}
	r.Lines = r.first[:]
	return r
}

// moveData moves the data lines in rr.buf from lo on, unstuffed, to
// rr.data.
func (rr *ReplyReader) moveData(lo int) {
	n, _ := rr.data.writeLines(rr.buf[lo:], len(rr.buf), len(rr.buf))
	rr.moved += n
	rr.buf = rr.buf[:lo]
}

// bulkData moves the complete lines buffered in rr.r, unstuffed, to
// rr.data, and reports whether it met the "." line that ends the block. It
// reads the connection only when nothing is buffered, and leaves to
// readLine a line it cannot take whole or that reaches a limit (which
// readLine then reports).
func (rr *ReplyReader) bulkData() (done bool) {
	if rr.r.Buffered() == 0 {
		if _, err := rr.r.Peek(1); err != nil {
			return false
		}
	}
	b, _ := rr.r.Peek(rr.r.Buffered())
	room := min(rr.limit, rr.lim.MaxReplyBytes) - rr.moved - len(rr.buf)
	n, done := rr.data.writeLines(b, rr.lim.MaxLineBytes, room)
	rr.r.Discard(n)
	rr.moved += n
	return done
}

// endBigData ends a big data block at the "." line at lo, and returns its
// content.
func (rr *ReplyReader) endBigData(lo int) string {
	rr.moved += len(rr.buf) - lo
	rr.buf = rr.buf[:lo]
	return rr.data.end()
}

// bigData is a data block of megabytes (ns/all) as it is read: in one
// piece of bigFirst bytes, or the size of the last block (the same document
// read again, most likely), and in chunks joined once at its end past that.
// Growing one buffer by doubling would copy it again at each step, in fresh
// memory, which costs more than the parsing on some machines (11 µs a page
// on this project's CI); the pages of a piece that are never written cost
// nothing but address space. The pieces are slabs, populated ahead of the
// writes (see populate).
type bigData struct {
	chunks  []*slab
	n       int
	lastBig int
}

const (
	bigFirst = 4 << 20 // ns/all of 8,000 relays is 2.7 MB
	bigChunk = 1 << 20
)

func (d *bigData) reset() { d.chunks, d.n = nil, 0 }

// writeLines appends the complete lines of b, unstuffed (without CR, a
// leading ".." made "."), up to and including the "." line that ends the
// block (done), a line longer than maxLine, or room bytes. It returns how
// many bytes of b it took.
func (d *bigData) writeLines(b []byte, maxLine, room int) (n int, done bool) {
	for !done {
		j := bytes.IndexByte(b[n:], '\n')
		if j < 0 || j+1 > maxLine || n+j+1 > room {
			break
		}
		line := b[n : n+j]
		n += j + 1
		if k := len(line); k > 0 && line[k-1] == '\r' {
			line = line[:k-1]
		}
		switch {
		case len(line) == 1 && line[0] == '.':
			done = true
		case len(line) > 0 && line[0] == '.':
			d.writeLine(line[1:])
		default:
			d.writeLine(line)
		}
	}
	return n, done
}

// writeLine appends line and a newline.
func (d *bigData) writeLine(line []byte) {
	var c *slab
	if k := len(d.chunks); k > 0 {
		c = d.chunks[k-1]
	}
	if c == nil || c.room() < len(line)+1 {
		size := max(bigChunk, d.n/2, len(line)+1)
		if len(d.chunks) == 0 {
			size = max(bigFirst, d.lastBig+d.lastBig/8)
		}
		c = newSlab(size)
		d.chunks = append(d.chunks, c)
	}
	c.writeLine(line)
	d.n += len(line) + 1
}

// end returns the block, without the newline after its last line.
func (d *bigData) end() string {
	var s string
	if c := d.chunks[0]; len(d.chunks) == 1 && c.b.Len() >= c.b.Cap()/2 {
		s = c.String()
	} else {
		// Several chunks, or a block much smaller than its piece, which
		// it would keep whole: joined into a piece of its size.
		b := newSlab(d.n)
		for _, c := range d.chunks {
			b.writeString(c.String())
		}
		s = b.String()
	}
	d.reset()
	d.lastBig = len(s)
	return strings.TrimSuffix(s, "\n")
}

func (rr *ReplyReader) build() *Reply {
	raw := rr.intern(rr.buf)
	big := false
	for i := range rr.spans {
		big = big || rr.spans[i].big
	}
	var r *Reply
	if big || len(raw) > ownReplyMin {
		// Its own: a slab's Reply structs keep each other's text alive,
		// and a slab neighbour kept for long (an event in the live
		// state) would keep this one's megabytes (ns/all) with it.
		r = new(Reply)
	} else {
		r = rr.newReply()
	}
	if !big {
		r.Raw = raw
	}
	if len(rr.spans) == 1 {
		r.Lines = r.first[:]
	} else {
		r.Lines = make([]Line, len(rr.spans))
	}
	for i, sp := range rr.spans {
		l := &r.Lines[i]
		l.Code, l.Sep, l.Text = sp.code, sp.sep, raw[sp.textLo:sp.textHi]
		switch {
		case sp.big:
			l.Data = sp.data
		case sp.sep == '+':
			l.Data = unstuff(raw[sp.dataLo:sp.dataHi])
		}
	}
	clear(rr.spans) // a big block's data is the reply's now
	return r
}

// unstuff turns a raw CmdData block (without its terminating ".") into its
// content: CRLF and bare LF become "\n", a leading ".." becomes ".", and the
// newline after the last line is dropped.
func unstuff(block string) string {
	if block == "" {
		return ""
	}
	if !strings.Contains(block, "\r") && !strings.Contains(block, "\n.") && block[0] != '.' {
		return block[:len(block)-1]
	}
	var b strings.Builder
	b.Grow(len(block))
	for len(block) > 0 {
		i := strings.IndexByte(block, '\n')
		line := block[:i]
		block = block[i+1:]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		b.WriteString(strings.TrimPrefix(line, "."))
		if len(block) > 0 {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// stuff writes data as a CmdData block: CRLF line ends, a leading "." doubled
// and the terminating "." line. A "\r\n" in data is read as one line end.
func stuff(w *bytes.Buffer, data string) {
	data = strings.ReplaceAll(data, "\r\n", "\n")
	if data != "" {
		for _, line := range strings.Split(strings.TrimSuffix(data, "\n"), "\n") {
			if strings.HasPrefix(line, ".") {
				w.WriteByte('.')
			}
			w.WriteString(line)
			w.WriteString("\r\n")
		}
	}
	w.WriteString(".\r\n")
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// ParseReplies parses every complete reply in b. It is the pure form of
// ReplyReader, for tests and fuzzing.
func ParseReplies(b []byte, lim Limits) ([]*Reply, error) {
	rr := NewReplyReader(bytes.NewReader(b), lim)
	var out []*Reply
	for {
		r, err := rr.ReadReply()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
}
