package ctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

// Typed commands are built and checked once, by their constructor.
func TestCommandConstructors(t *testing.T) {
	for _, tc := range []struct {
		cmd  func() (Command, error)
		want string
	}{
		{func() (Command, error) { return AttachStreamCommand("12", "7", 0) }, "ATTACHSTREAM 12 7"},
		{func() (Command, error) { return AttachStreamCommand("12", "7", 2) }, "ATTACHSTREAM 12 7 HOP=2"},
		{func() (Command, error) { return RedirectStreamCommand("12", "example.com", 443) }, "REDIRECTSTREAM 12 example.com 443"},
		{func() (Command, error) { return CloseStreamCommand("12", RelayEndMisc) }, "CLOSESTREAM 12 1"},
	} {
		c, err := tc.cmd()
		if err != nil || c.String() != tc.want {
			t.Errorf("got %q, %v; want %q", c.String(), err, tc.want)
		}
	}
	for _, bad := range []func() (Command, error){
		func() (Command, error) { return AttachStreamCommand("12\r\nSIGNAL HALT", "7", 0) },
		func() (Command, error) { return AttachStreamCommand("12", "7\tHOP=1", 0) },
		func() (Command, error) { return AttachStreamCommand("12", "7", -1) },
		func() (Command, error) { return RedirectStreamCommand("12", "a b", 80) },
		func() (Command, error) { return RedirectStreamCommand("12", "a", 70000) },
		func() (Command, error) { return CloseStreamCommand("12", RelayEndMisc, "x\x00") },
	} {
		if c, err := bad(); !errors.Is(err, ErrUnsafeArgument) {
			t.Errorf("got %q, %v; want ErrUnsafeArgument", c.String(), err)
		}
	}
}

// Start writes the command, runs the grant check on the final line, and
// hands the reply to done without the caller waiting.
func TestStart(t *testing.T) {
	cli, srv := net.Pipe()
	defer srv.Close()
	c := NewConn(cli, Options{})
	defer c.Close()
	var checked []string
	c.SetCheck(func(_ context.Context, line string) error {
		checked = append(checked, line)
		if line == "CLOSESTREAM 9 1" {
			return errors.New("not granted")
		}
		return nil
	})
	ctx := context.Background()
	refused, _ := CloseStreamCommand("9", RelayEndMisc)
	if err := c.Start(ctx, refused, func(*Reply, error) { t.Error("done called for a refused command") }); err == nil {
		t.Fatal("the grant check did not refuse")
	}
	if err := c.Start(ctx, Command{}, nil); err == nil {
		t.Fatal("an empty command was sent")
	}
	cmd, _ := AttachStreamCommand("12", "7", 0)
	wrote := make(chan string, 1)
	go func() { // net.Pipe has no buffer: read while Start writes
		line, _ := bufio.NewReader(srv).ReadString('\n')
		wrote <- line
		srv.Write([]byte("552 Unknown stream \"12\"\r\n"))
	}()
	got := make(chan error, 1)
	if err := c.Start(ctx, cmd, func(_ *Reply, err error) { got <- err }); err != nil {
		t.Fatal(err)
	}
	if line := <-wrote; line != "ATTACHSTREAM 12 7\r\n" {
		t.Fatalf("wrote %q", line)
	}
	select {
	case err := <-got:
		if ErrorCode(err) != 552 {
			t.Fatalf("done got %v, want the 552", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("done was not called")
	}
	if len(checked) != 2 || checked[1] != "ATTACHSTREAM 12 7" {
		t.Fatalf("grant check saw %q", checked)
	}
}

// TestCork: on a corked connection Start holds its commands; a command
// that waits for its reply writes them first, in one write with its own,
// Flush writes them, and so does the cork's delay; their replies reach
// the right callbacks.
func TestCork(t *testing.T) {
	f, c := NewFakeControlPort(t, Options{})
	ctx := context.Background()
	a, _ := AttachStreamCommand("1", "5", 0)
	b, _ := AttachStreamCommand("2", "5", 0)
	got := make(chan string, 8)
	done := func(name string) func(*Reply, error) {
		return func(r *Reply, err error) {
			if r == nil {
				got <- fmt.Sprintf("%s %v", name, err)
				return
			}
			got <- fmt.Sprintf("%s %d %s %d", name, r.Lines[0].Code, r.Lines[0].Text, ErrorCode(err))
		}
	}

	c.Cork()
	for _, cmd := range []struct {
		Command
		name string
	}{{a, "a"}, {b, "b"}} {
		if err := c.Start(ctx, cmd.Command, done(cmd.name)); err != nil {
			t.Fatal(err)
		}
	}
	if w := f.Written(); w != "" {
		t.Fatalf("corked, the client wrote %q at once", w)
	}
	reply := make(chan *Reply, 1)
	go func() {
		r, _ := c.Do(ctx, "GETINFO version")
		reply <- r
	}()
	if !f.Expect("ATTACHSTREAM 1 5\r\nATTACHSTREAM 2 5\r\nGETINFO version\r\n") {
		return
	}
	f.Send("250 OK\r\n552 Unknown stream \"2\"\r\n250-version=0.4.9.11\r\n250 OK\r\n")
	if r := <-reply; r == nil || r.Lines[0].Text != "version=0.4.9.11" {
		t.Fatalf("GETINFO got %v", r)
	}
	for _, want := range []string{"a 250 OK 0", `b 552 Unknown stream "2" 552`} {
		if g := <-got; g != want {
			t.Errorf("callback got %q, want %q", g, want)
		}
	}

	// Flush writes what is held, and ends the cork; HeldFor says how
	// long the oldest held command has waited.
	if d := c.HeldFor(); d != 0 {
		t.Errorf("nothing held, HeldFor() = %v", d)
	}
	c.Cork()
	before := time.Now()
	c.Start(ctx, a, done("a"))
	time.Sleep(corkDelay / 4)
	c.Start(ctx, b, done("b"))
	// Unless the cork's delay passed meanwhile (a busy machine), and its
	// timer wrote them, the oldest is a.
	if d, since := c.HeldFor(), time.Since(before); since < corkDelay && (d < corkDelay/4 || d > since) {
		t.Errorf("held for %v, HeldFor() = %v", since, d)
	}
	c.Flush()
	if d := c.HeldFor(); d != 0 {
		t.Errorf("flushed, HeldFor() = %v", d)
	}
	if !f.Expect("ATTACHSTREAM 1 5\r\nATTACHSTREAM 2 5\r\n") {
		return
	}
	c.Cork()
	c.Start(ctx, a, done("a"))
	c.Flush()
	if !f.Expect("ATTACHSTREAM 1 5\r\n") {
		return
	}
	c.Start(ctx, b, done("b"))
	if !f.Expect("ATTACHSTREAM 2 5\r\n") {
		return
	}

	// A cork never forgotten still lets commands out after corkDelay.
	c.Cork()
	held := time.Now()
	c.Start(ctx, a, done("a"))
	if !f.Expect("ATTACHSTREAM 1 5\r\n") {
		return
	}
	if d := time.Since(held); d > 500*time.Millisecond {
		t.Errorf("a held command went out after %v", d)
	}
	c.Flush()
}

// TestStartGuarded: a command StartGuarded holds arms no timer: it waits
// for Flush, or for Guard, which has it written once it has been held for
// corkDelay; a command Start holds after it arms the timer for both.
func TestStartGuarded(t *testing.T) {
	f, c := NewFakeControlPort(t, Options{})
	ctx := context.Background()
	a, _ := AttachStreamCommand("1", "5", 0)
	b, _ := AttachStreamCommand("2", "5", 0)
	done := func(*Reply, error) {}

	c.Cork()
	if err := c.StartGuarded(ctx, a, done); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * corkDelay)
	if w := f.Written(); w != "" {
		t.Fatalf("a guarded command went out with no Guard or Flush: %q", w)
	}
	held := time.Now()
	c.Guard()
	if !f.Expect("ATTACHSTREAM 1 5\r\n") {
		return
	}
	if d := time.Since(held); d > 500*time.Millisecond {
		t.Errorf("held past corkDelay, it went out %v after Guard", d)
	}
	c.Flush()

	c.Cork()
	c.StartGuarded(ctx, a, done)
	c.Flush()
	if !f.Expect("ATTACHSTREAM 1 5\r\n") {
		return
	}

	c.Cork()
	c.StartGuarded(ctx, a, done)
	held = time.Now()
	c.Start(ctx, b, done)
	if !f.Expect("ATTACHSTREAM 1 5\r\nATTACHSTREAM 2 5\r\n") {
		return
	}
	if d := time.Since(held); d > 500*time.Millisecond {
		t.Errorf("a command held by Start went out after %v", d)
	}
	c.Flush()
	before := f.Written()
	c.Guard() // nothing held: nothing to do
	time.Sleep(5 * corkDelay)
	if w := f.Written(); w != before {
		t.Errorf("nothing held, yet %q went out", w[len(before):])
	}
}
