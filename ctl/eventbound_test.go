package ctl

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestEventQueueBoundedFake: with a consumer that never reads, telemetry
// past half the byte bound is dropped and counted; events that may not be
// dropped end the connection with ErrEventOverflow once they alone fill
// it, instead of growing without bound (against a fake control port).
func TestEventQueueBoundedFake(t *testing.T) {
	f, c := NewFakeControlPort(t, Options{EventBytes: 256 << 10})
	var bw strings.Builder
	for i := range 4000 {
		fmt.Fprintf(&bw, "650 BW %d %d\r\n", i, i)
	}
	f.Send(bw.String())
	var st strings.Builder
	for i := range 4000 {
		fmt.Fprintf(&st, "650 STREAM %d NEW 0 example.com:443 SOURCE_ADDR=127.0.0.1:%d PURPOSE=USER\r\n", i, 1000+i)
	}
	// The connection ends while this is written: ignore the write error.
	f.FakeControlPort.Send([]byte(st.String()))
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
