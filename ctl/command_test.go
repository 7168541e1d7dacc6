package ctl

import (
	"bufio"
	"context"
	"errors"
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
