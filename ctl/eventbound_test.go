package ctl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestEventQueueBackpressureFake: with a consumer that does not read and
// no command waiting, the reader stops at a sixteenth of the byte bound:
// the rest waits in the socket (in tor), nothing is dropped, the
// connection stays up; once the consumer takes events the reader goes on,
// and every event arrives, in order (against a fake control port).
func TestEventQueueBackpressureFake(t *testing.T) {
	const bound = 1 << 20
	f, c := NewFakeControlPort(t, Options{EventBytes: bound})
	var flood strings.Builder
	const n = 20000
	for i := range n {
		if i%2 == 0 {
			fmt.Fprintf(&flood, "650 BW %d %d\r\n", i, i)
		} else {
			fmt.Fprintf(&flood, "650 STREAM %d NEW 0 example.com:443 SOURCE_ADDR=127.0.0.1:%d PURPOSE=USER\r\n", i, 1000+i)
		}
	}
	go f.FakeControlPort.Send([]byte(flood.String())) // blocks while the reader waits
	waitFor(t, func() bool { return c.events.stallCount() > 0 }, "the reader to wait for the consumer")
	time.Sleep(50 * time.Millisecond)
	c.events.mu.Lock()
	queued := c.events.bytes
	c.events.mu.Unlock()
	if queued > bound/16+1024 {
		t.Errorf("%d bytes queued, past the soft bound %d", queued, bound/16)
	}
	if c.Err() != nil || c.DroppedEvents() != 0 {
		t.Fatalf("connection error %v, %d dropped; want none", c.Err(), c.DroppedEvents())
	}
	got := 0
	for got < n {
		evs, ok := c.EventBatch(nil)
		if !ok {
			t.Fatalf("the connection ended: %v", c.Err())
		}
		for _, ev := range evs {
			want := "BW"
			if got%2 == 1 {
				want = "STREAM"
			}
			if ev.EventType() != want {
				t.Fatalf("event %d is %s, want %s", got, ev.EventType(), want)
			}
			got++
		}
		if len(evs) == 0 {
			select {
			case <-c.EventReady():
			case <-time.After(5 * time.Second):
				t.Fatalf("%d of %d events arrived", got, n)
			}
		}
	}
	if c.DroppedEvents() != 0 {
		t.Errorf("%d events dropped", c.DroppedEvents())
	}
}

// TestEventQueueBoundedFake: while a command waits for its reply behind a
// flood that nothing consumes, the reader reads on: telemetry past the
// soft bound is dropped and counted, and once the events that may not be
// dropped alone fill EventBytes the connection ends with ErrEventOverflow
// instead of growing without bound (against a fake control port).
func TestEventQueueBoundedFake(t *testing.T) {
	f, c := NewFakeControlPort(t, Options{EventBytes: 256 << 10})
	var flood strings.Builder
	for i := range 4000 {
		fmt.Fprintf(&flood, "650 BW %d %d\r\n", i, i)
	}
	for i := range 4000 {
		fmt.Fprintf(&flood, "650 STREAM %d NEW 0 example.com:443 SOURCE_ADDR=127.0.0.1:%d PURPOSE=USER\r\n", i, 1000+i)
	}
	go c.Do(context.Background(), "GETINFO version") // its reply never comes
	// The connection ends while this is written: ignore the write error.
	f.FakeControlPort.Send([]byte(flood.String()))
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection did not end although nothing read its events")
	}
	if err := c.Err(); !errors.Is(err, ErrEventOverflow) {
		t.Errorf("Err = %v, want ErrEventOverflow", err)
	}
	if c.DroppedEvents() == 0 {
		t.Error("no telemetry dropped")
	}
	evs, _ := c.EventBatch(nil)
	n, streams := 0, 0
	for _, ev := range evs {
		n += eventSize(ev)
		if ev.EventType() == "STREAM" {
			streams++
		}
	}
	if n > 256<<10 {
		t.Errorf("%d bytes queued, bound %d", n, 256<<10)
	}
	if streams == 0 {
		t.Error("no STREAM event kept")
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestHugeEventLeftOutFake: a 100 MB "650+" event, and a 9 MB one-line
// event, are read without being kept (a fake control port sends them):
// the connection goes on, the next event and a command's reply arrive,
// the events are counted as dropped, and reading them allocated little.
func TestHugeEventLeftOutFake(t *testing.T) {
	f, c := NewFakeControlPort(t, Options{})
	chunk := strings.Repeat("x", 1023) + "\r\n"
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	go func() {
		f.FakeControlPort.Send([]byte("650+NS\r\n"))
		block := []byte(strings.Repeat(chunk, 1024)) // 1 MiB
		for range 100 {
			f.FakeControlPort.Send(block)
		}
		f.FakeControlPort.Send([]byte(".\r\n650 OK\r\n"))
		f.FakeControlPort.Send([]byte("650 STREAM 1 NEW 0 " + strings.Repeat("y", 9<<20) + ":80\r\n"))
		f.FakeControlPort.Send([]byte("650 STREAM 2 NEW 0 example.com:443 PURPOSE=USER\r\n"))
	}()
	ev := nextEvent(t, c)
	if s, ok := ev.(*StreamEvent); !ok || s.ID != "2" {
		t.Fatalf("first event kept: %#v, want STREAM 2", ev)
	}
	runtime.ReadMemStats(&after)
	// A few times MaxEventBytes (the buffer grows by doubling), never the
	// 109 MB sent.
	if got := after.TotalAlloc - before.TotalAlloc; got > 80<<20 {
		t.Errorf("reading 109 MB of events allocated %d MiB", got>>20)
	}
	if n := c.DroppedEvents(); n != 2 {
		t.Errorf("DroppedEvents = %d, want 2", n)
	}
	if c.Err() != nil {
		t.Errorf("the connection ended: %v", c.Err())
	}
}

// TestEventOverflowOnAQuietSocket: events that may not be dropped overflow
// the bound in a batch the reader queues before its next read, and tor
// sends nothing more: the connection still ends at once, with
// ErrEventOverflow, rather than wait on the socket.
func TestEventOverflowOnAQuietSocket(t *testing.T) {
	cli, srv := net.Pipe()
	defer srv.Close()
	c := NewConn(cli, Options{EventBytes: 4 << 10})
	defer c.Close()
	var b strings.Builder
	for i := range 20 { // fewer than a batch, more than 4 KiB queued
		fmt.Fprintf(&b, "650 STREAM %d NEW 0 example.com:443 SOURCE_ADDR=127.0.0.1:%d PURPOSE=USER\r\n", i, 1000+i)
	}
	go func() {
		buf := make([]byte, 512)
		if _, err := srv.Read(buf); err == nil { // the command
			srv.Write([]byte(b.String()))
		}
	}()
	go c.Do(context.Background(), "GETINFO version") // its reply never comes
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection did not end")
	}
	if err := c.Err(); !errors.Is(err, ErrEventOverflow) {
		t.Errorf("Err = %v, want ErrEventOverflow", err)
	}
}
