package ctl

import (
	"context"
	"errors"
	"net"
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
