package ctl

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// DialSOCKS opens a stream to host:port through a tor SocksPort at addr
// ("host:port", or "unix:/path" for a unix socket, as GETINFO
// net/listeners/socks lists them), with SOCKS5 username and password
// authentication (RFC 1928, RFC 1929). Tor isolates streams by the
// credentials (IsolateSOCKSAuth, on by default) and names them in the
// stream's events (SOCKS_USERNAME), which is how a controller finds its
// own stream. The host is sent as a name, for tor to resolve at the exit,
// unless it is an IP address. A refusal is a *SOCKSError with tor's reply
// code. ctx bounds the handshake; the stream itself is the caller's to
// bound.
func DialSOCKS(ctx context.Context, addr, user, pass, host string, port int) (net.Conn, error) {
	if len(user) == 0 || len(user) > 255 || len(pass) > 255 {
		return nil, fmt.Errorf("socks: username of 1 to 255 bytes and password of at most 255 wanted")
	}
	if port <= 0 || port > 65535 {
		return nil, fmt.Errorf("socks: port %d out of range", port)
	}
	req, err := socksRequest(host, port)
	if err != nil {
		return nil, err
	}
	network := "tcp"
	if path, ok := cutUnix(addr); ok {
		network, addr = "unix", path
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("socks: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	err = socksHandshake(c, user, pass, req)
	if !stop() || err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("socks: %w", ctx.Err())
		}
		return nil, err
	}
	return c, nil
}

func cutUnix(addr string) (string, bool) {
	if len(addr) > 5 && addr[:5] == "unix:" {
		return addr[5:], true
	}
	return "", false
}

// socksRequest is the CONNECT request for host:port.
func socksRequest(host string, port int) ([]byte, error) {
	req := []byte{5, 1, 0}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Zone() == "" {
		if ip.Is4() || ip.Is4In6() {
			b := ip.Unmap().As4()
			req = append(append(req, 1), b[:]...)
		} else {
			b := ip.As16()
			req = append(append(req, 4), b[:]...)
		}
	} else {
		if len(host) == 0 || len(host) > 255 {
			return nil, fmt.Errorf("socks: host name of 1 to 255 bytes wanted, got %d", len(host))
		}
		req = append(append(req, 3, byte(len(host))), host...)
	}
	return binary.BigEndian.AppendUint16(req, uint16(port)), nil
}

func socksHandshake(c net.Conn, user, pass string, req []byte) error {
	// Only username/password: tor accepts it, and it names the stream.
	if _, err := c.Write([]byte{5, 1, 2}); err != nil {
		return fmt.Errorf("socks: %w", err)
	}
	var b [2]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return fmt.Errorf("socks: reading the method: %w", err)
	}
	if b[0] != 5 || b[1] != 2 {
		return fmt.Errorf("socks: the proxy chose method %d (version %d), not username/password", b[1], b[0])
	}
	auth := append([]byte{1, byte(len(user))}, user...)
	auth = append(append(auth, byte(len(pass))), pass...)
	if _, err := c.Write(auth); err != nil {
		return fmt.Errorf("socks: %w", err)
	}
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return fmt.Errorf("socks: reading the authentication status: %w", err)
	}
	if b[1] != 0 {
		return fmt.Errorf("socks: the proxy refused the credentials (status %d)", b[1])
	}
	if _, err := c.Write(req); err != nil {
		return fmt.Errorf("socks: %w", err)
	}
	return readSOCKSReply(c)
}

// readSOCKSReply reads the reply to CONNECT: VER REP RSV ATYP ADDR PORT.
func readSOCKSReply(r io.Reader) error {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return fmt.Errorf("socks: reading the reply: %w", err)
	}
	if h[0] != 5 {
		return fmt.Errorf("socks: reply of version %d", h[0])
	}
	var n int
	switch h[3] {
	case 1:
		n = 4
	case 4:
		n = 16
	case 3:
		var l [1]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return fmt.Errorf("socks: reading the reply: %w", err)
		}
		n = int(l[0])
	default:
		if h[1] != 0 {
			return &SOCKSError{Code: h[1]} // the address does not matter
		}
		return fmt.Errorf("socks: reply with address type %d", h[3])
	}
	if _, err := io.ReadFull(r, make([]byte, n+2)); err != nil {
		if h[1] != 0 {
			return &SOCKSError{Code: h[1]}
		}
		return fmt.Errorf("socks: reading the reply: %w", err)
	}
	if h[1] != 0 {
		return &SOCKSError{Code: h[1]}
	}
	return nil
}

// SOCKSError is a SOCKS5 refusal: Code is the reply code, which tor
// derives from the stream's end reason (connection_edge.c,
// stream_end_reason_to_socks5_response) and, for onion services, from
// why it could not reach the service (its extended codes 0xF0-0xF7).
type SOCKSError struct{ Code byte }

func (e *SOCKSError) Error() string {
	return "socks: " + socksCodeText(e.Code) + " (" + strconv.Itoa(int(e.Code)) + ")"
}

// ErrSOCKSRefused matches every *SOCKSError with errors.Is.
var ErrSOCKSRefused = errors.New("socks: refused")

func (e *SOCKSError) Is(target error) bool { return target == ErrSOCKSRefused }

func socksCodeText(c byte) string {
	switch c {
	case 1:
		return "general failure"
	case 2:
		return "not allowed (tor: refused by the exit's policy)"
	case 3:
		return "network unreachable"
	case 4:
		return "host unreachable (tor: could not resolve, or no route)"
	case 5:
		return "connection refused"
	case 6:
		return "TTL expired (tor: timed out)"
	case 7:
		return "command not supported"
	case 8:
		return "address type not supported"
	case 0xF0:
		return "onion service descriptor not found"
	case 0xF1:
		return "onion service descriptor is invalid"
	case 0xF2:
		return "onion service introduction failed"
	case 0xF3:
		return "onion service rendezvous failed"
	case 0xF4:
		return "onion service needs client authorization"
	case 0xF5:
		return "onion service client authorization is wrong"
	case 0xF6:
		return "onion address is invalid"
	case 0xF7:
		return "onion service introduction timed out"
	}
	return "refused"
}

// SocksListeners are the addresses of tor's SocksPorts, as GETINFO
// net/listeners/socks lists them ("127.0.0.1:9050", "unix:/run/tor/socks").
func (c *Conn) SocksListeners(ctx context.Context) ([]string, error) {
	v, err := c.GetInfo(ctx, "net/listeners/socks")
	if err != nil {
		return nil, err
	}
	return unquoteList(v["net/listeners/socks"])
}
