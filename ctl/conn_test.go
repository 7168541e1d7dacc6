package ctl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// A command whose write cannot finish (tor stopped reading) returns at its
// deadline and ends the connection; a command queued behind it returns at
// its own deadline too.
func TestWriteHonoursDeadline(t *testing.T) {
	cli, srv := net.Pipe()
	defer srv.Close() // srv never reads
	c := NewConn(cli, Options{})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	errc := make(chan error, 2)
	go func() { _, err := c.Do(ctx, "DROPGUARDS"); errc <- err }()
	go func() { _, err := c.Do(ctx, "DROPTIMEOUTS"); errc <- err }()
	for i := 0; i < 2; i++ {
		select {
		case err := <-errc:
			if err == nil {
				t.Fatal("a command succeeded although nothing was read")
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Do blocked past its deadline")
		}
	}
	select {
	case <-c.Done():
	case <-time.After(time.Second):
		t.Fatal("a half-written command did not end the connection")
	}
}

// Status codes the protocol does not define for replies are protocol
// errors, not success.
func TestOddStatusCodes(t *testing.T) {
	for _, code := range []string{"100", "300", "700", "999"} {
		f, c := NewFakeControlPort(t, Options{})
		f.Serve(1, func(string) string { return code + " what\r\n" })
		_, err := c.Do(context.Background(), "DROPGUARDS")
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			t.Errorf("reply %s: got %v, want a *ProtocolError", code, err)
		}
	}
}

// Tor splits arguments on every white space character, vertical tab and
// form feed included: such values must never go out bare.
func TestWhiteSpaceNeverBare(t *testing.T) {
	for _, s := range []string{"a\vb", "a\fb", "a\tb", "a b", "a\x7fb", "ä"} {
		if got := QuoteIfNeeded(s); got == s {
			t.Errorf("QuoteIfNeeded(%q) left it bare", s)
		}
		if err := CheckToken("x", s); !errors.Is(err, ErrUnsafeArgument) {
			t.Errorf("CheckToken(%q) = %v, want ErrUnsafeArgument", s, err)
		}
	}
	if got := QuoteIfNeeded("plain-word_1.2"); got != "plain-word_1.2" {
		t.Errorf("QuoteIfNeeded quoted a plain word: %s", got)
	}
}

// A consumer that falls behind loses no STREAM or CIRC event; only
// high-volume telemetry past the backlog is dropped, and counted.
func TestSlowConsumerKeepsStreamEvents(t *testing.T) {
	f, c := NewFakeControlPort(t, Options{EventBacklog: 10})
	const n = 500
	var b []byte
	for i := 0; i < n; i++ {
		b = append(b, fmt.Sprintf("650 BW %d 0\r\n650 STREAM %d NEW 0 127.0.0.1:80\r\n650 DEBUG noise\r\n", i, i+1)...)
	}
	b = append(b, "650 CIRC 1 BUILT\r\n"...)
	f.Send(string(b))
	time.Sleep(200 * time.Millisecond) // the reader queues everything while nobody reads
	streams, bw, debug := 0, 0, 0
	for {
		ev := <-c.Events()
		switch e := ev.(type) {
		case *StreamEvent:
			streams++
			if e.ID != fmt.Sprint(streams) {
				t.Fatalf("stream %s arrived as number %d: out of order", e.ID, streams)
			}
		case *BWEvent:
			bw++
		case *LogEvent:
			debug++
		case *CircEvent:
			if streams != n {
				t.Errorf("%d of %d STREAM events delivered", streams, n)
			}
			if dropped := c.DroppedEvents(); dropped == 0 || uint64(bw+debug)+dropped != 2*n {
				t.Errorf("BW %d + DEBUG %d delivered, %d dropped; want all %d accounted for, some dropped", bw, debug, dropped, 2*n)
			}
			return
		default:
			t.Fatalf("unexpected %T", ev)
		}
	}
}

// The reader keeps reading while nobody consumes events, so replies to
// commands are not held up behind them.
func TestRepliesNotBlockedByEvents(t *testing.T) {
	f, c := NewFakeControlPort(t, Options{})
	var b []byte
	for i := 0; i < 20000; i++ {
		b = append(b, fmt.Sprintf("650 STREAM %d NEW 0 127.0.0.1:80\r\n", i+1)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { _, err := c.Do(ctx, "DROPGUARDS"); errc <- err }()
	if !f.Expect("DROPGUARDS\r\n") {
		return
	}
	f.Send(string(b) + "250 OK\r\n")
	if err := <-errc; err != nil {
		t.Fatalf("reply stuck behind unread events: %v", err)
	}
}

// TestCheckRefusesBeforeWriting: a command the check refuses is not
// written, and the connection goes on working.
func TestCheckRefusesBeforeWriting(t *testing.T) {
	f, c := NewFakeControlPort(t, Options{})
	var seen []string
	c.SetCheck(func(ctx context.Context, line string) error {
		seen = append(seen, line)
		if strings.HasPrefix(line, "SAVECONF") {
			return errors.New("no")
		}
		return nil
	})
	f.Serve(1, func(line string) string { return "250 OK\r\n" })
	if _, err := c.Do(context.Background(), "SAVECONF"); err == nil || err.Error() != "no" {
		t.Fatalf("SAVECONF: %v", err)
	}
	if _, err := c.Do(context.Background(), "GETINFO version"); err != nil {
		t.Fatal(err)
	}
	if got := f.Written(); got != "GETINFO version\r\n" {
		t.Errorf("written: %q", got)
	}
	if len(seen) != 2 {
		t.Errorf("checked: %q", seen)
	}
	c.SetCheck(nil)
	f.Serve(1, func(line string) string { return "250 OK\r\n" })
	if _, err := c.Do(context.Background(), "SAVECONF"); err != nil {
		t.Errorf("without a check: %v", err)
	}
}

// panickyConn is a transport whose Read panics after the first reply, as a
// bug in the reader or below it would.
type panickyConn struct {
	net.Conn
	reads int
}

func (p *panickyConn) Read(b []byte) (int, error) {
	p.reads++
	if p.reads > 1 {
		panic("boom")
	}
	return p.Conn.Read(b)
}

// A panic in the reader goroutine ends the connection with a protocol error
// that fails the pending commands; the program goes on.
func TestReaderPanicFailsPending(t *testing.T) {
	cli, srv := net.Pipe()
	defer srv.Close()
	c := NewConn(&panickyConn{Conn: cli}, Options{})
	defer c.Close()
	go func() {
		buf := make([]byte, 512)
		srv.Read(buf)
		srv.Write([]byte("250 OK\r\n"))
		srv.Read(buf)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := c.Do(ctx, "DROPGUARDS"); err != nil {
		t.Fatalf("first command: %v", err)
	}
	_, err := c.Do(ctx, "DROPTIMEOUTS")
	var pe *ProtocolError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("pending command: got %v, want a protocol error naming the panic", err)
	}
	select {
	case <-c.Done():
	case <-time.After(time.Second):
		t.Fatal("the connection did not end")
	}
	if !errors.As(c.Err(), &pe) {
		t.Fatalf("Err() = %v, want the protocol error", c.Err())
	}
}

// TestScrubCommand: what raw --json echoes of a command keeps no secret.
func TestScrubCommand(t *testing.T) {
	for in, want := range map[string]string{
		`AUTHENTICATE "secret"`:                "AUTHENTICATE [scrubbed]",
		"authenticate 0123abcd":                "authenticate [scrubbed]",
		"ADD_ONION ED25519-V3:AAAA Port=80":    "ADD_ONION ED25519-V3:[scrubbed] Port=80",
		"ONION_CLIENT_AUTH_ADD abc x25519:KEY": "ONION_CLIENT_AUTH_ADD abc x25519:[scrubbed]",
		"GETINFO version":                      "GETINFO version",
		"ADD_ONION NEW:ED25519-V3 Port=80":     "ADD_ONION NEW:ED25519-V3 Port=80",
	} {
		if got := ScrubCommand(in); got != want {
			t.Errorf("ScrubCommand(%q) = %q, want %q", in, got, want)
		}
	}
}

// The reader queues events in batches, but never holds one back: an event
// whose successor has only partly arrived is delivered while the reader
// waits for the rest, and every event tor sent before a reply is queued
// before the command gets that reply.
func TestReadBatchHoldsNothingBack(t *testing.T) {
	cli, srv := net.Pipe()
	defer srv.Close()
	c := NewConn(cli, Options{})
	defer c.Close()
	take := func(within time.Duration) []Event {
		t.Helper()
		select {
		case <-c.EventReady():
		case <-time.After(within):
			return nil
		}
		evs, _ := c.EventBatch(nil)
		return evs
	}
	write := func(s string) {
		if _, err := srv.Write([]byte(s)); err != nil {
			t.Error(err)
		}
	}
	go write("650 CIRC 1 LAUNCHED\r\n650 CIRC 2 LAUN")
	evs := take(2 * time.Second)
	if len(evs) != 1 || evs[0].(*CircEvent).ID != "1" {
		t.Fatalf("with the next event half sent, got %v, want CIRC 1", evs)
	}
	go write("CHED\r\n")
	if evs := take(2 * time.Second); len(evs) != 1 || evs[0].(*CircEvent).ID != "2" {
		t.Fatalf("got %v, want CIRC 2", evs)
	}

	// 200 events (more than a batch), then the reply, in one write.
	var b strings.Builder
	for i := 3; i < 203; i++ {
		fmt.Fprintf(&b, "650 CIRC %d LAUNCHED\r\n", i)
	}
	b.WriteString("250 OK\r\n")
	go func() {
		buf := make([]byte, 512)
		if _, err := srv.Read(buf); err == nil { // the command
			write(b.String())
		}
	}()
	// Start's done runs on the reader, when the reply is handed over.
	queued := make(chan int, 1)
	cmd, err := AttachStreamCommand("1", "2", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background(), cmd, func(*Reply, error) {
		n, _ := c.QueuedEvents()
		queued <- n
	}); err != nil {
		t.Fatal(err)
	}
	if n := <-queued; n != 200 {
		t.Fatalf("%d events queued when the reply came, want the 200 sent before it", n)
	}
	evs, _ = c.EventBatch(nil)
	if len(evs) != 200 {
		t.Fatalf("%d events queued when the reply came, want the 200 sent before it", len(evs))
	}
	for i, ev := range evs {
		if id := ev.(*CircEvent).ID; id != fmt.Sprint(i+3) {
			t.Fatalf("event %d is CIRC %s, want CIRC %d", i, id, i+3)
		}
	}
}

// Behind turns true once the reader has waited a second for a consumer
// that takes no events, and false again once the consumer caught up and
// the reader took all there was to read.
func TestBehind(t *testing.T) {
	cli, srv := net.Pipe()
	defer srv.Close()
	c := NewConn(cli, Options{EventBytes: 64 << 10}) // the reader waits past 4 KiB
	defer c.Close()
	var b strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&b, "650 BW %d 0\r\n", i)
	}
	wrote := make(chan error, 1)
	go func() { _, err := srv.Write([]byte(b.String())); wrote <- err }()
	time.Sleep(500 * time.Millisecond)
	if c.Behind() {
		t.Fatal("behind after half a second")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !c.Behind() {
		if time.Now().After(deadline) {
			t.Fatal("not behind after the reader waited 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	n := 0
	for n < 2000 {
		select {
		case <-c.EventReady():
		case <-time.After(5 * time.Second):
			t.Fatalf("%d events of 2000 taken", n)
		}
		evs, _ := c.EventBatch(nil)
		n += len(evs)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for c.Behind() {
		if time.Now().After(deadline) {
			t.Fatal("still behind after every event was taken")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !Droppable("BW") || !Droppable("DEBUG") || Droppable("STREAM") || Droppable("CIRC") {
		t.Error("Droppable: BW and DEBUG are, STREAM and CIRC are not")
	}
}
