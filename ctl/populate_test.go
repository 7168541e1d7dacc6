package ctl

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unsafe"
)

// TestPopulateChangesNoByte: populating memory, written or not, over whole
// or partial pages, leaves every byte as it was.
func TestPopulateChangesNoByte(t *testing.T) {
	b := make([]byte, 3<<20+123)
	for i := range b[:1<<20] {
		b[i] = byte(i*7 + 1)
	}
	want := bytes.Clone(b)
	for _, r := range [][2]int{{0, len(b)}, {1, 5000}, {4095, 4097}, {123, 2<<20 + 7}, {len(b) - 10, len(b)}} {
		populate(unsafe.Pointer(&b[r[0]]), uintptr(r[1]-r[0]))
		if !bytes.Equal(b, want) {
			t.Fatalf("populate(%d..%d) changed the memory", r[0], r[1])
		}
	}
	s := MakePrefaulted[[5]int](100_000)
	if len(s) != 100_000 || s[0] != [5]int{} || s[len(s)-1] != [5]int{} {
		t.Fatalf("MakePrefaulted: %d entries, first %v, last %v", len(s), s[0], s[len(s)-1])
	}
}

// TestSlabStrings: the strings a slab returns stay what was written while
// it is written on, past the steps it populates ahead.
func TestSlabStrings(t *testing.T) {
	s := newSlab(3 << 20)
	var got []string
	var want []string
	for i := 0; s.room() >= 64; i++ {
		w := fmt.Sprintf("%08d-%s", i, strings.Repeat("x", i%40))
		want = append(want, w)
		got = append(got, s.write([]byte(w)))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("string %d is %q, want %q", i, got[i], want[i])
		}
	}
	if s.String() != strings.Join(want, "") {
		t.Fatal("the slab's text is not what was written")
	}
}

// TestBigDataBlocks: data blocks over BigData, of one piece, of several
// chunks joined at the end, and read again at the size of the last, read
// back to what was sent, dot-stuffing and CRLF undone.
func TestBigDataBlocks(t *testing.T) {
	block := func(n int) string {
		var b strings.Builder
		for i := 0; b.Len() < n; i++ {
			if i%97 == 0 {
				b.WriteString(".")
			}
			fmt.Fprintf(&b, "line %d %s\n", i, strings.Repeat("y", i%120))
		}
		return strings.TrimSuffix(b.String(), "\n")
	}
	wire := func(v string) string {
		var b strings.Builder
		b.WriteString("250+k=\r\n")
		for _, l := range strings.Split(v, "\n") {
			if strings.HasPrefix(l, ".") {
				b.WriteString(".")
			}
			b.WriteString(l + "\r\n")
		}
		b.WriteString(".\r\n250 OK\r\n")
		return b.String()
	}
	var in bytes.Buffer
	var want []string
	for _, n := range []int{70 << 10, 3 << 20, 9 << 20, 9 << 20, 100 << 10} {
		v := block(n)
		want = append(want, v)
		in.WriteString(wire(v))
	}
	replies, err := ParseReplies(in.Bytes(), Limits{})
	if err != nil || len(replies) != len(want) {
		t.Fatalf("%d replies, %v", len(replies), err)
	}
	for i, r := range replies {
		if got := r.Lines[0].Data; got != want[i] {
			t.Errorf("block %d: %d bytes back, want %d", i, len(got), len(want[i]))
		}
	}
}
