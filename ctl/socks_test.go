package ctl

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeSOCKSPort is a SOCKS5 server for DialSOCKS's tests (not tor): it
// reads the greeting, the credentials and the request, records them, and
// answers with reply (the whole CONNECT reply), or hangs when reply is nil.
type fakeSOCKSPort struct {
	addr string
	got  chan []byte // what each client sent, up to its request
}

func newFakeSOCKSPort(t *testing.T, reply []byte) *fakeSOCKSPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f := &fakeSOCKSPort{addr: ln.Addr().String(), got: make(chan []byte, 4)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var rec bytes.Buffer
				r := io.TeeReader(c, &rec)
				read := func(n int) []byte {
					b := make([]byte, n)
					io.ReadFull(r, b)
					return b
				}
				h := read(2)
				read(int(h[1]))
				c.Write([]byte{5, 2})
				read(1)
				read(int(read(1)[0]))
				read(int(read(1)[0]))
				c.Write([]byte{1, 0})
				req := read(4)
				switch req[3] {
				case 1:
					read(4)
				case 4:
					read(16)
				case 3:
					read(int(read(1)[0]))
				}
				read(2)
				f.got <- rec.Bytes()
				if reply == nil {
					time.Sleep(5 * time.Second)
					return
				}
				c.Write(reply)
				c.Write([]byte("data"))
			}()
		}
	}()
	return f
}

func TestDialSOCKS(t *testing.T) {
	ok := []byte{5, 0, 0, 1, 127, 0, 0, 1, 0, 80}
	for _, tc := range []struct {
		host string
		port int
		req  string // the request's address and port
	}{
		{"example.com", 443, "\x03\x0bexample.com\x01\xbb"},
		{"192.0.2.1", 80, "\x01\xc0\x00\x02\x01\x00\x50"},
		{"::ffff:192.0.2.1", 80, "\x01\xc0\x00\x02\x01\x00\x50"},
		{"2001:db8::1", 80, "\x04\x20\x01\x0d\xb8" + strings.Repeat("\x00", 11) + "\x01\x00\x50"},
	} {
		f := newFakeSOCKSPort(t, ok)
		c, err := DialSOCKS(context.Background(), f.addr, "user-1", "pw", tc.host, tc.port)
		if err != nil {
			t.Fatalf("%s: %v", tc.host, err)
		}
		got := <-f.got
		want := "\x05\x01\x02" + "\x01\x06user-1\x02pw" + "\x05\x01\x00" + tc.req
		if string(got) != want {
			t.Errorf("%s: sent %q, want %q", tc.host, got, want)
		}
		data, _ := io.ReadAll(c)
		if string(data) != "data" {
			t.Errorf("%s: read %q after the reply, want the stream's data", tc.host, data)
		}
		c.Close()
	}
}

func TestDialSOCKSRefused(t *testing.T) {
	for _, reply := range [][]byte{
		{5, 2, 0, 1, 0, 0, 0, 0, 0, 0},
		{5, 2, 0, 3, 3, 'a', 'b', 'c', 0, 0},
		{5, 2, 0}, // cut short: the code is what matters
	} {
		f := newFakeSOCKSPort(t, reply)
		_, err := DialSOCKS(context.Background(), f.addr, "u", "", "example.com", 80)
		var se *SOCKSError
		if !errors.As(err, &se) || se.Code != 2 || !errors.Is(err, ErrSOCKSRefused) || !strings.Contains(err.Error(), "not allowed") {
			t.Errorf("reply %v: %v, want a SOCKSError with code 2", reply, err)
		}
	}
}

func TestDialSOCKSBounded(t *testing.T) {
	f := newFakeSOCKSPort(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := DialSOCKS(ctx, f.addr, "u", "", "example.com", 80)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("DialSOCKS to a port that never answers: %v after %v", err, time.Since(start))
	}
	for _, bad := range []struct {
		user, host string
		port       int
	}{{"", "example.com", 80}, {"u", "", 80}, {"u", strings.Repeat("a", 256), 80}, {"u", "example.com", 0}, {"u", "example.com", 65536}} {
		if _, err := DialSOCKS(context.Background(), f.addr, bad.user, "", bad.host, bad.port); err == nil {
			t.Errorf("DialSOCKS(%q, %q, %d) did not fail", bad.user, bad.host, bad.port)
		}
	}
}

// FuzzSOCKSReply: any reply is read without a panic, and a success is only
// ever a reply with code 0.
func FuzzSOCKSReply(f *testing.F) {
	for _, s := range []string{"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x50", "\x05\x02\x00\x03\x03abc\x00\x00", "\x05\x00\x00\x04" + strings.Repeat("\x00", 18), "\x05\xf0\x00\x09", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := readSOCKSReply(bytes.NewReader(b))
		if err == nil && (len(b) < 2 || b[1] != 0) {
			t.Fatalf("%q read as a success", b)
		}
	})
}
