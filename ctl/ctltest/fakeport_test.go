package ctltest

import (
	"bufio"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func newTestFake(t *testing.T) *FakeControlPort {
	t.Helper()
	f, err := NewFakeControlPort()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// rawClient is the least client: it writes bytes and reads whole replies.
type rawClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, f *FakeControlPort) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", f.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

// roundTrip writes cmd and returns the reply, every line up to and
// including the first "250 " line, exactly as read.
func (rc *rawClient) roundTrip(cmd string) string {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, cmd); err != nil {
		rc.t.Fatal(err)
	}
	var b strings.Builder
	inData := false
	for {
		line, err := rc.br.ReadString('\n')
		if err != nil {
			rc.t.Fatalf("reply to %q: %v (read %q)", cmd, err, b.String())
		}
		b.WriteString(line)
		switch {
		case inData:
			inData = line != ".\r\n"
		case strings.HasPrefix(line, "250+"):
			inData = true
		case len(line) > 3 && line[3] == ' ':
			return b.String()
		}
	}
}

// TestFakeControlPortAnswers checks the exact bytes of every kind of
// answer, and what the fake records.
func TestFakeControlPortAnswers(t *testing.T) {
	f := newTestFake(t)
	var mu sync.Mutex
	var attaches []string
	f.SetOnAttach(func(stream, circuit string, at time.Time) []byte {
		mu.Lock()
		attaches = append(attaches, stream+"/"+circuit)
		mu.Unlock()
		return nil
	})
	rc := dialRaw(t, f)
	select {
	case <-f.Connected():
	case <-time.After(5 * time.Second):
		t.Fatal("fake did not see the connection")
	}
	pid := strconv.Itoa(os.Getpid())
	cases := []struct{ cmd, want string }{
		{"PROTOCOLINFO 1\r\n", "250-PROTOCOLINFO 1\r\n250-AUTH METHODS=NULL\r\n250-VERSION Tor=\"0.4.9.11\"\r\n250 OK\r\n"},
		{"AUTHENTICATE\r\n", "250 OK\r\n"},
		{"AUTHENTICATE \"secret\"\r\n", "250 OK\r\n"},
		{"GETINFO version\r\n", "250-version=0.4.9.11\r\n250 OK\r\n"},
		{"GETINFO status/bootstrap-phase process/pid\r\n",
			"250-status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY=\"Done\"\r\n250-process/pid=" + pid + "\r\n250 OK\r\n"},
		{"GETINFO circuit-status stream-status\r\n",
			"250+circuit-status=\r\n" + fakeCircuitLine + "\r\n.\r\n250-stream-status=\r\n250 OK\r\n"},
		{"GETINFO no/such-key\r\n", "250-no/such-key=\r\n250 OK\r\n"},
		{"getinfo version\r\n", "250-version=0.4.9.11\r\n250 OK\r\n"},
		{"GETCONF __LeaveStreamsUnattached\r\n", "250 __LeaveStreamsUnattached=0\r\n"},
		{"GETCONF SocksPort ControlPort MaxCircuitDirtiness\r\n", "250-SocksPort=0\r\n250-ControlPort=0\r\n250 MaxCircuitDirtiness=0\r\n"},
		{"SETCONF __LeaveStreamsUnattached=1\r\n", "250 OK\r\n"},
		{"RESETCONF __LeaveStreamsUnattached\r\n", "250 OK\r\n"},
		{"SETEVENTS STREAM CIRC\r\n", "250 OK\r\n"},
		{"MAPADDRESS 0.0.0.0=a.example 1.2.3.4=b.example\r\n", "250-0.0.0.0=a.example\r\n250 1.2.3.4=b.example\r\n"},
		{"SIGNAL NEWNYM\r\n", "250 OK\r\n"},
		{"USEFEATURE EXTENDED_EVENTS\r\n", "250 OK\r\n"},
		{"REDIRECTSTREAM 7 example.org\r\n", "250 OK\r\n"},
		{"CLOSESTREAM 7 6\r\n", "250 OK\r\n"},
		{"ATTACHSTREAM 42 1\r\n", "250 OK\r\n"},
		{"ATTACHSTREAM 43 9 HOP=2\n", "250 OK\r\n"}, // bare LF
		{"+LOADCONF\r\nSocksPort 9050\r\n..dotted\r\n.\r\n", "250 OK\r\n"},
		{"SOMETHINGELSE x y\r\n", "250 OK\r\n"},
	}
	for _, c := range cases {
		if got := rc.roundTrip(c.cmd); got != c.want {
			t.Errorf("%q: got %q, want %q", c.cmd, got, c.want)
		}
	}
	if got := rc.roundTrip("QUIT\r\n"); got != "250 closing connection\r\n" {
		t.Errorf("QUIT: got %q", got)
	}
	if _, err := rc.br.ReadByte(); err != io.EOF {
		t.Errorf("after QUIT: read %v, want EOF", err)
	}

	cmds := f.Commands()
	if len(cmds) != len(cases)+1 {
		t.Fatalf("recorded %d commands, want %d: %v", len(cmds), len(cases)+1, cmds)
	}
	for i, c := range cases {
		want, _, _ := strings.Cut(c.cmd, "\n")
		want = strings.TrimSuffix(want, "\r")
		if cmds[i].Line != want {
			t.Errorf("command %d recorded as %q, want %q", i, cmds[i].Line, want)
		}
		if i > 0 && cmds[i].At.Before(cmds[i-1].At) {
			t.Errorf("command %d arrived before command %d", i, i-1)
		}
	}
	if kw := cmds[len(cases)-2].Keyword(); kw != "LOADCONF" {
		t.Errorf("keyword of +LOADCONF is %q", kw)
	}
	asked, unknown := f.InfoKeys()
	if asked["version"] != 2 || asked["circuit-status"] != 1 || asked["no/such-key"] != 1 {
		t.Errorf("GETINFO keys asked: %v", asked)
	}
	if len(unknown) != 1 || unknown["no/such-key"] != 1 {
		t.Errorf("GETINFO keys without a value: %v", unknown)
	}
	mu.Lock()
	if got := strings.Join(attaches, " "); got != "42/1 43/9" {
		t.Errorf("OnAttach saw %q", got)
	}
	mu.Unlock()
	if _, _, err := f.WaitCommand(len(cmds), time.Second, nil, func(Command) bool { return true }); err == nil ||
		!strings.Contains(err.Error(), "QUIT") {
		t.Errorf("WaitCommand after QUIT: %v, want the connection's end", err)
	}
}

// TestWaitCommand checks the waits that give up.
func TestWaitCommand(t *testing.T) {
	f := newTestFake(t)
	if _, _, err := f.WaitCommand(0, 50*time.Millisecond, nil, func(Command) bool { return true }); err == nil {
		t.Error("WaitCommand with no controller did not time out")
	}
	abort := make(chan struct{})
	close(abort)
	if _, _, err := f.WaitCommand(0, time.Minute, abort, func(Command) bool { return true }); err == nil {
		t.Error("WaitCommand ignored abort")
	}
	rc := dialRaw(t, f)
	rc.roundTrip("PROTOCOLINFO 1\r\n")
	// (A connection that only authenticates is a guardian's setup: its
	// end is not the run's.)
	rc.roundTrip("GETINFO version\r\n")
	rc.c.Close()
	i, c, err := f.WaitCommand(0, 5*time.Second, nil, func(c Command) bool { return c.Keyword() == "PROTOCOLINFO" })
	if err != nil || i != 0 || c.Line != "PROTOCOLINFO 1" {
		t.Errorf("WaitCommand: %d %q %v", i, c.Line, err)
	}
	if _, _, err := f.WaitCommand(2, 5*time.Second, nil, func(Command) bool { return true }); err == nil ||
		!strings.Contains(err.Error(), "closed") {
		t.Errorf("WaitCommand after hang-up: %v", err)
	}
	if err := f.Send([]byte("650 BW 1 2\r\n")); err == nil {
		// The first write after a hang-up may still succeed; a second
		// must not.
		time.Sleep(50 * time.Millisecond)
		if err := f.Send([]byte("650 BW 1 2\r\n")); err == nil {
			t.Error("Send after hang-up succeeded twice")
		}
	}
}
