package ctl

import (
	"runtime"
	"strings"
	"testing"
)

// TestBigReplyNotKeptByNeighbours: a reply of megabytes (ns/all) read
// between small ones is freed once nothing holds it, even while a small
// reply read just before it (an event kept in the live state) is held.
// Reply structs of small replies share slabs, and a slab keeps the text of
// every reply in it.
func TestBigReplyNotKeptByNeighbours(t *testing.T) {
	const size = 8 << 20
	var in strings.Builder
	in.WriteString("250 OK\r\n250+ns/all=\r\n")
	line := "r relay " + strings.Repeat("A", 60) + "\r\n"
	for in.Len() < size {
		in.WriteString(line)
	}
	in.WriteString(".\r\n250 OK\r\n250 OK\r\n")
	rr := NewReplyReader(strings.NewReader(in.String()), Limits{MaxReplyBytes: 2 * size, MaxLineBytes: 1 << 10})
	kept, err := rr.ReadReply()
	if err != nil {
		t.Fatal(err)
	}
	big, err := rr.ReadReply()
	if err != nil || len(big.Lines) == 0 || len(big.Lines[0].Data) < size/2 {
		t.Fatalf("big reply: %v", err)
	}
	if _, err := rr.ReadReply(); err != nil {
		t.Fatal(err)
	}
	with := heapAlloc()
	runtime.KeepAlive(big)
	big = nil
	after := heapAlloc()
	// Its data, about size bytes (a block that big keeps no raw text),
	// is gone.
	if freed := int64(with) - int64(after); freed < size*3/4 {
		t.Errorf("dropping an %d MiB reply freed %d KiB while a neighbour is held: its slab keeps it", size>>20, freed>>10)
	}
	runtime.KeepAlive(kept)
	runtime.KeepAlive(rr)
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestBigReplyAllocation: reading a reply of megabytes allocates its data,
// unstuffed as it is read into a buffer that doubles as it grows (about
// twice its size in all), not its raw text too, nor the five times its size
// that growing by append's quarter steps costs (fresh memory, which on a
// virtual machine costs more than the parsing).
func TestBigReplyAllocation(t *testing.T) {
	const size = 8 << 20
	var in strings.Builder
	in.WriteString("250+ns/all=\r\n")
	line := "r relay " + strings.Repeat("A", 60) + "\r\n"
	for in.Len() < size {
		in.WriteString(line)
	}
	in.WriteString(".\r\n250 OK\r\n")
	text := in.String()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rr := NewReplyReader(strings.NewReader(text), Limits{MaxReplyBytes: 2 * size, MaxLineBytes: 1 << 10})
	r, err := rr.ReadReply()
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(r)
	if got := after.TotalAlloc - before.TotalAlloc; got > 5*size/2 {
		t.Errorf("reading a %d MiB reply allocated %d MiB, want at most %d", size>>20, got>>20, 5*size/2>>20)
	}
}

// TestStateEventKeepsOnlyItself: a CIRC or STREAM event, which a
// controller keeps while its circuit or stream lives, does not keep the
// events read around it alive (their Reply structs share slabs).
func TestStateEventKeepsOnlyItself(t *testing.T) {
	const n = 20000
	var in strings.Builder
	bw := "650 BW 1 2 " + strings.Repeat("X", 200) + "\r\n"
	for i := range n {
		in.WriteString(bw)
		if i%8 == 4 {
			in.WriteString("650 CIRC 7 BUILT $" + strings.Repeat("A", 40) + "~a PURPOSE=GENERAL\r\n")
			in.WriteString("650 STREAM 9 NEW 0 1.2.3.4:80 SOURCE_ADDR=127.0.0.1:5 PURPOSE=USER\r\n")
		}
	}
	rr := NewReplyReader(strings.NewReader(in.String()), Limits{})
	var kept []Event
	for {
		r, err := rr.ReadReply()
		if err != nil {
			break
		}
		if ev := ParseEvent(r); ev.EventType() == EventCirc || ev.EventType() == EventStream {
			kept = append(kept, ev)
		}
	}
	if len(kept) != n/4 {
		t.Fatalf("%d state events read, want %d", len(kept), n/4)
	}
	rr = nil
	held := heapAlloc()
	// Each kept event holds its struct, its copy of the Reply struct and
	// the block of text its own text is in (shared with the events read
	// around it, themselves gone); with the neighbours' slab of Reply
	// structs, and their text, it was about 2 KiB.
	if per := held / uint64(len(kept)); per > 1200 {
		t.Errorf("%d bytes of heap per kept CIRC or STREAM event: it keeps the events read around it", per)
	}
	for _, ev := range kept {
		if r := ev.Reply(); !strings.HasPrefix(r.Raw, "650 "+ev.EventType()+" ") || len(r.Lines) != 1 || r.Lines[0].Text != strings.TrimSuffix(r.Raw[4:], "\r\n") {
			t.Fatalf("kept %s event's reply: %q %+v", ev.EventType(), r.Raw, r.Lines)
		}
	}
	runtime.KeepAlive(kept)
}
