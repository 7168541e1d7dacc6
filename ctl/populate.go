package ctl

import (
	"strings"
	"unsafe"
)

// populateMin is the size under which populating is not worth a system
// call.
const populateMin = 64 << 10

// populateSlice populates (see populate) the memory of s when it is big:
// the Relay table of thousands of entries, before it is written.
func populateSlice[T any](s []T) {
	if size := uintptr(len(s)) * unsafe.Sizeof(*new(T)); size >= populateMin {
		populate(unsafe.Pointer(unsafe.SliceData(s)), size)
	}
}

// MakePrefaulted is make([]T, n) for a table of thousands of entries made
// of a reply (the tor.router values of Relays): its memory is mapped at
// once, not a page fault at a time as it is written, which on some
// virtual machines costs more than filling it in.
func MakePrefaulted[T any](n int) []T {
	s := make([]T, n)
	populateSlice(s)
	return s
}

// slab is a block of text of a fixed capacity, written once, whose
// strings are substrings of it: a data block of megabytes (ns/all) as it
// is read, or the hex digests of a relay table. Its pages are populated
// (see populate) in steps ahead of the writes, so the part of a block
// that is never written is never mapped. A strings.Builder never changes
// what it has written, so the strings stay valid.
type slab struct {
	b      strings.Builder
	mapped int // bytes from the start that are populated
}

// slabAhead is how far past what is written a slab is populated, in one
// system call at a time.
const slabAhead = 256 << 10

func newSlab(size int) *slab {
	s := new(slab)
	s.b.Grow(size) // not zeroed: only what is written is touched
	return s
}

// room is how many more bytes the slab holds.
func (s *slab) room() int { return s.b.Cap() - s.b.Len() }

// write appends p, which must fit in room, and returns the string of it.
func (s *slab) write(p []byte) string {
	start := s.b.Len()
	s.b.Write(p)
	s.ahead()
	return s.b.String()[start:]
}

// writeString appends p, which must fit in room.
func (s *slab) writeString(p string) {
	s.b.WriteString(p)
	s.ahead()
}

// writeLine appends line and a newline, which must fit in room.
func (s *slab) writeLine(line []byte) {
	s.b.Write(line)
	s.b.WriteByte('\n')
	s.ahead()
}

// ahead populates the next slabAhead bytes once the writes near the end
// of what is populated. Past the first step (a block of megabytes, most
// likely), a step that reaches into a huge page's worth of the slab goes
// to its end, so that populate can map it whole. A Builder shows its
// buffer only once something is written, hence after the write.
func (s *slab) ahead() {
	n, c := s.b.Len(), s.b.Cap()
	if n+slabAhead/2 <= s.mapped || s.mapped >= c || c < populateMin {
		return
	}
	buf := unsafe.Pointer(unsafe.StringData(s.b.String()))
	next := min(c, max(s.mapped, n)+slabAhead)
	if h := hugeAlign(); h != 0 && n >= slabAhead/2 {
		base := uintptr(buf)
		if end := alignUp(base+uintptr(next), h); end-h >= base && end <= base+uintptr(c) {
			next = int(end - base)
		}
	}
	populate(unsafe.Add(buf, s.mapped), uintptr(next-s.mapped))
	s.mapped = next
}

// String is the whole text written.
func (s *slab) String() string { return s.b.String() }

func alignUp(x, a uintptr) uintptr   { return (x + a - 1) &^ (a - 1) }
func alignDown(x, a uintptr) uintptr { return x &^ (a - 1) }
