package ctl

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Authentication methods tor may offer in PROTOCOLINFO.
const (
	AuthNull           = "NULL"
	AuthHashedPassword = "HASHEDPASSWORD"
	AuthCookie         = "COOKIE"
	AuthSafeCookie     = "SAFECOOKIE"
)

// ProtocolInfo is tor's answer to PROTOCOLINFO (control-spec 3.21).
type ProtocolInfo struct {
	ProtocolVersion string
	AuthMethods     []string
	CookieFile      string
	TorVersion      string
	Unknown         []string // lines this package did not recognise
}

// ProtocolInfo sends PROTOCOLINFO 1. Tor answers it before authentication,
// once per connection.
func (c *Conn) ProtocolInfo(ctx context.Context) (*ProtocolInfo, error) {
	r, err := c.Do(ctx, "PROTOCOLINFO 1")
	if err != nil {
		return nil, err
	}
	return ParseProtocolInfo(r)
}

// ParseProtocolInfo reads a PROTOCOLINFO reply.
func ParseProtocolInfo(r *Reply) (*ProtocolInfo, error) {
	pi := &ProtocolInfo{}
	for _, l := range r.Lines {
		kw, rest, _ := cutWord(l.Text)
		switch kw {
		case "PROTOCOLINFO":
			pi.ProtocolVersion = strings.TrimSpace(rest)
		case "AUTH":
			args, err := protocolInfoArgs(rest)
			if err != nil {
				return nil, &ProtocolError{Msg: "PROTOCOLINFO AUTH line: " + err.Error(), Line: l.Text}
			}
			if m := args["METHODS"]; m != "" {
				pi.AuthMethods = strings.Split(m, ",")
			}
			pi.CookieFile = args["COOKIEFILE"]
		case "VERSION":
			args, err := protocolInfoArgs(rest)
			if err != nil {
				return nil, &ProtocolError{Msg: "PROTOCOLINFO VERSION line: " + err.Error(), Line: l.Text}
			}
			pi.TorVersion = args["Tor"]
		case "OK":
			if l.Sep != ' ' {
				pi.Unknown = append(pi.Unknown, l.Text)
			}
		default:
			pi.Unknown = append(pi.Unknown, l.Text)
		}
	}
	if pi.ProtocolVersion == "" {
		return nil, &ProtocolError{Msg: "PROTOCOLINFO reply without a PROTOCOLINFO line", Line: r.String()}
	}
	return pi, nil
}

// protocolInfoArgs reads KEY=value and KEY="quoted" arguments.
func protocolInfoArgs(s string) (map[string]string, error) {
	m := map[string]string{}
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			return m, nil
		}
		k, rest, ok := strings.Cut(s, "=")
		if !ok || strings.Contains(k, " ") {
			// A flag without a value; skip the word.
			_, s, _ = cutWord(s)
			continue
		}
		var v string
		if strings.HasPrefix(rest, "\"") {
			var err error
			v, rest, err = Unquote(rest)
			if err != nil {
				return nil, err
			}
		} else {
			v, rest, _ = cutWord(rest)
		}
		m[k] = v
		s = rest
	}
}

// Credentials are what Authenticate may use. Password is a function so that
// a prompt is shown only when tor asks for a password.
type Credentials struct {
	// CookieFile overrides the path tor names in PROTOCOLINFO.
	CookieFile string
	// Password returns the control password; nil if none is available.
	Password func() (string, error)
	// Method, if set, is the only method tried (e.g. AuthCookie to avoid
	// SAFECOOKIE); it fails if tor does not offer it.
	Method string
}

// AuthError says why authentication failed: which methods tor offers and
// what the controller was missing.
type AuthError struct {
	Offered []string
	Reason  string
	Err     error // the underlying error, if any (e.g. *Error 515)
}

func (e *AuthError) Error() string {
	s := fmt.Sprintf("authentication failed: %s (tor offers %s)", e.Reason, strings.Join(e.Offered, ", "))
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *AuthError) Unwrap() error { return e.Err }

// Authenticate asks tor how it wants to be authenticated (PROTOCOLINFO) and
// does it: NULL when offered, else SAFECOOKIE, else COOKIE, else
// HASHEDPASSWORD. It returns the PROTOCOLINFO answer.
func (c *Conn) Authenticate(ctx context.Context, cred Credentials) (*ProtocolInfo, error) {
	pi, err := c.ProtocolInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("PROTOCOLINFO: %w", err)
	}
	fail := func(reason string, err error) (*ProtocolInfo, error) {
		return pi, &AuthError{Offered: pi.AuthMethods, Reason: reason, Err: err}
	}
	offers := func(m string) bool { return slices.Contains(pi.AuthMethods, m) }
	if cred.Method != "" {
		want := strings.ToUpper(cred.Method)
		if !offers(want) {
			return fail(want+" was asked for and tor does not offer it", nil)
		}
		offers = func(m string) bool { return m == want }
	}

	if offers(AuthNull) || (len(pi.AuthMethods) == 0 && cred.Method == "") {
		if _, err := c.Do(ctx, "AUTHENTICATE"); err != nil {
			return fail("NULL authentication refused", err)
		}
		return pi, nil
	}

	var cookieProblem string
	if offers(AuthSafeCookie) || offers(AuthCookie) {
		path := cred.CookieFile
		if path == "" {
			path = pi.CookieFile
		}
		cookie, err := readCookie(path)
		switch {
		case err != nil:
			cookieProblem = err.Error()
		case offers(AuthSafeCookie):
			if err := c.safeCookie(ctx, cookie); err != nil {
				return fail(fmt.Sprintf("SAFECOOKIE with cookie file %s", path), err)
			}
			return pi, nil
		default:
			if _, err := c.Do(ctx, "AUTHENTICATE "+hex.EncodeToString(cookie)); err != nil {
				return fail(fmt.Sprintf("COOKIE with cookie file %s", path), err)
			}
			return pi, nil
		}
	}

	if offers(AuthHashedPassword) {
		if cred.Password == nil {
			reason := "tor wants a password and none was given (use --password-file, TORSCRIPT_PASSWORD or an interactive prompt)"
			if cookieProblem != "" {
				reason = cookieProblem + "; " + reason
			}
			return fail(reason, nil)
		}
		pw, err := cred.Password()
		if err != nil {
			return fail("reading the control password", err)
		}
		if err := CheckArg("password", pw); err != nil {
			return fail("password", err)
		}
		if _, err := c.Do(ctx, "AUTHENTICATE "+Quote(pw)); err != nil {
			return fail("HASHEDPASSWORD: wrong password?", err)
		}
		return pi, nil
	}
	if cookieProblem != "" {
		return fail(cookieProblem, nil)
	}
	return fail("no method this controller supports", nil)
}

const (
	safeCookieServerKey = "Tor safe cookie authentication server-to-controller hash"
	safeCookieClientKey = "Tor safe cookie authentication controller-to-server hash"
)

func (c *Conn) safeCookie(ctx context.Context, cookie []byte) error {
	clientNonce := make([]byte, 32)
	if _, err := rand.Read(clientNonce); err != nil {
		return err
	}
	r, err := c.Do(ctx, "AUTHCHALLENGE SAFECOOKIE "+hex.EncodeToString(clientNonce))
	if err != nil {
		return err
	}
	serverHash, serverNonce, err := parseAuthChallenge(r)
	if err != nil {
		return err
	}
	want := safeCookieHMAC(safeCookieServerKey, cookie, clientNonce, serverNonce)
	if !hmac.Equal(want, serverHash) {
		return errors.New("tor's SAFECOOKIE server hash does not match the cookie: wrong cookie file, or not the tor that wrote it")
	}
	clientHash := safeCookieHMAC(safeCookieClientKey, cookie, clientNonce, serverNonce)
	_, err = c.Do(ctx, "AUTHENTICATE "+hex.EncodeToString(clientHash))
	return err
}

func safeCookieHMAC(key string, cookie, clientNonce, serverNonce []byte) []byte {
	h := hmac.New(sha256.New, []byte(key))
	h.Write(cookie)
	h.Write(clientNonce)
	h.Write(serverNonce)
	return h.Sum(nil)
}

// parseAuthChallenge reads "250 AUTHCHALLENGE SERVERHASH=hex SERVERNONCE=hex".
func parseAuthChallenge(r *Reply) (hash, nonce []byte, err error) {
	kw, rest, _ := cutWord(r.Text())
	if kw != "AUTHCHALLENGE" {
		return nil, nil, &ProtocolError{Msg: "AUTHCHALLENGE reply", Line: r.Text()}
	}
	args, err := protocolInfoArgs(rest)
	if err != nil {
		return nil, nil, &ProtocolError{Msg: "AUTHCHALLENGE reply: " + err.Error(), Line: r.Text()}
	}
	hash, err1 := hex.DecodeString(args["SERVERHASH"])
	nonce, err2 := hex.DecodeString(args["SERVERNONCE"])
	if err1 != nil || err2 != nil || len(hash) != 32 || len(nonce) != 32 {
		return nil, nil, &ProtocolError{Msg: "AUTHCHALLENGE reply: SERVERHASH and SERVERNONCE must be 32 bytes of hex", Line: r.Text()}
	}
	return hash, nonce, nil
}

func readCookie(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("tor offers cookie authentication but names no cookie file (use --cookie)")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read cookie file: %w", err)
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("cookie file %s holds %d bytes, not 32", path, len(b))
	}
	return b, nil
}
