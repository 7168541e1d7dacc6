package ctl

import (
	"errors"
	"fmt"
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
	f.srv.SetWriteDeadline(time.Now().Add(5 * time.Second))
	f.srv.Write([]byte(st.String()))
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
