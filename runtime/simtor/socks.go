package simtor

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// The simulated SocksPort, for probes (tor.fetch, tor.connect). A client's
// SOCKS5 CONNECT becomes a stream, announced with STREAM NEW and its
// credentials. Attached to a built circuit, the stream goes where the
// circuit's exit lets it, as the test set with SetExit: by default it
// succeeds and the destination answers with the same HTTP response
// through every exit; a refusing exit detaches it (REMOTE_REASON), as tor does, and
// the controller's CLOSESTREAM reason becomes the SOCKS reply's code; a
// hanging exit never answers. The SocksPort listens on 127.0.0.1 from the
// first GETINFO net/listeners/socks on.

// exitRule is what an exit does with the streams it is given.
type exitRule struct {
	refuse   string // an END reason: the exit refuses with it
	hang     bool   // the exit never answers
	response []byte // the destination's answer; nil: the default
}

// SetExit sets what the exit with nickname nick does with streams:
// refuse them with reason (an END reason such as "EXITPOLICY"), hang, or
// answer with response (nil: an HTTP 200 with the body "hello from the
// simulated destination\n").
func (s *Tor) SetExit(nick, refuse string, hang bool, response []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exits == nil {
		s.exits = map[string]exitRule{}
	}
	s.exits[nick] = exitRule{refuse: strings.ToUpper(refuse), hang: hang, response: response}
}

// socksAddr starts the SocksPort if it has not started. Called with mu
// held.
func (s *Tor) socksAddr() string {
	if s.socks == nil {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return ""
		}
		s.socks = l
		go s.acceptSOCKS(l)
	}
	return s.socks.Addr().String()
}

func (s *Tor) acceptSOCKS(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go s.serveSOCKS(c)
	}
}

// serveSOCKS reads one SOCKS5 CONNECT with username and password, as tor
// accepts it, and makes its stream.
func (s *Tor) serveSOCKS(c net.Conn) {
	br := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 2)
	if _, err := io.ReadFull(br, b); err != nil || b[0] != 5 {
		c.Close()
		return
	}
	methods := make([]byte, b[1])
	if _, err := io.ReadFull(br, methods); err != nil || !strings.Contains(string(methods), "\x02") {
		c.Write([]byte{5, 0xFF})
		c.Close()
		return
	}
	c.Write([]byte{5, 2})
	readField := func() (string, bool) {
		var n [1]byte
		if _, err := io.ReadFull(br, n[:]); err != nil {
			return "", false
		}
		f := make([]byte, n[0])
		_, err := io.ReadFull(br, f)
		return string(f), err == nil
	}
	var ver [1]byte
	io.ReadFull(br, ver[:])
	user, ok1 := readField()
	pass, ok2 := readField()
	if !ok1 || !ok2 {
		c.Close()
		return
	}
	c.Write([]byte{1, 0})
	h := make([]byte, 4)
	if _, err := io.ReadFull(br, h); err != nil || h[1] != 1 {
		c.Close()
		return
	}
	var host string
	switch h[3] {
	case 1, 4:
		ip := make([]byte, 4)
		if h[3] == 4 {
			ip = make([]byte, 16)
		}
		if _, err := io.ReadFull(br, ip); err != nil {
			c.Close()
			return
		}
		host = net.IP(ip).String()
	case 3:
		name, ok := readField()
		if !ok {
			c.Close()
			return
		}
		host = name
	default:
		c.Close()
		return
	}
	var pb [2]byte
	if _, err := io.ReadFull(br, pb[:]); err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	target := host + ":" + strconv.Itoa(int(binary.BigEndian.Uint16(pb[:])))
	s.locked(func() {
		st := &stream{id: s.newID(), target: target, source: c.RemoteAddr().String(), purpose: "USER", socksUser: user, socksPass: pass, sock: c, sockR: br}
		s.streams[st.id] = st
		s.streamStatus(st, "NEW", "")
	})
}

// socksAttached carries out what the circuit's exit does with a SOCKS
// stream just attached to it. Called with mu held.
func (s *Tor) socksAttached(st *stream, c *circ) {
	rule, exit := exitRule{}, "tor"
	if c != nil && len(c.path) > 0 {
		last := c.path[len(c.path)-1]
		exit = last[strings.IndexByte(last, '~')+1:]
		rule = s.exits[exit]
	}
	switch {
	case rule.refuse != "":
		s.streamStatus(st, "DETACHED", " REASON=END REMOTE_REASON="+rule.refuse)
		st.circ = "0"
		return
	case rule.hang:
		s.streamStatus(st, "SENTCONNECT", "")
		return
	}
	s.streamStatus(st, "SENTCONNECT", "")
	s.streamStatus(st, "SUCCEEDED", "")
	resp := rule.response
	if resp == nil {
		body := "hello from the simulated destination\n"
		resp = []byte("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	}
	sock, br, id := st.sock, st.sockR, st.id
	st.sock = nil
	go func() {
		sock.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
		// The destination reads the request (what comes in a moment),
		// answers and closes.
		sock.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		buf := make([]byte, 4096)
		br.Read(buf)
		sock.SetDeadline(time.Now().Add(10 * time.Second))
		sock.Write(resp)
		sock.Close()
		s.locked(func() {
			if st := s.streams[id]; st != nil {
				s.streamStatus(st, "CLOSED", " REASON=DONE")
				delete(s.streams, id)
			}
		})
	}()
}

// socksClosed answers a SOCKS client whose stream the controller closed:
// tor's reply code for the reason (connection_edge.c,
// stream_end_reason_to_socks5_response). Called with mu held.
func socksClosed(st *stream, reason string) {
	if st.sock == nil {
		return
	}
	code := byte(1)
	switch reason {
	case "EXITPOLICY":
		code = 2
	case "RESOLVEFAILED", "NOROUTE":
		code = 4
	case "CONNECTREFUSED", "CONNRESET":
		code = 5
	case "TIMEOUT":
		code = 6
	}
	sock := st.sock
	st.sock = nil
	go func() {
		sock.SetDeadline(time.Now().Add(10 * time.Second))
		sock.Write([]byte{5, code, 0, 1, 0, 0, 0, 0, 0, 0})
		sock.Close()
	}()
}

// closeSOCKS stops the SocksPort. Called with mu held.
func (s *Tor) closeSOCKS() {
	if s.socks != nil {
		s.socks.Close()
	}
}
