package ctl

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnsafeArgument is wrapped by every error that refuses a command
// argument before anything is written to the socket.
var ErrUnsafeArgument = errors.New("unsafe argument")

// CheckArg refuses a value that could end the command line early or smuggle
// a second command: CR, LF and NUL.
func CheckArg(what, s string) error {
	if i := strings.IndexAny(s, "\r\n\x00"); i >= 0 {
		// The value itself is never in the error: it may be a password,
		// a key or a command line holding one.
		return fmt.Errorf("%s: %w: it contains %q at byte %d of %d", what, ErrUnsafeArgument, s[i], i, len(s))
	}
	return nil
}

// CheckToken refuses a value that must be a single bare word of the command
// line (an id, a keyword, a nickname): only visible ASCII other than the
// double quote, and not empty. Tor splits arguments on any white space,
// vertical tab and form feed included.
func CheckToken(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s: %w: empty", what, ErrUnsafeArgument)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' {
			return fmt.Errorf("%s: %w: it contains %q at byte %d of %d", what, ErrUnsafeArgument, s[i], i, len(s))
		}
	}
	return nil
}

// Quote writes s as a QuotedString: in double quotes, with backslash and
// double quote escaped. CR, LF and NUL must have been refused by CheckArg.
func Quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}

// QuoteIfNeeded returns s bare when it is a plain non-empty word of visible
// ASCII, and as a QuotedString otherwise: anything tor splits on, and the
// bytes it would read specially in a bare value (quote, backslash,
// apostrophe, '=' and '#'), are quoted.
func QuoteIfNeeded(s string) string {
	if s == "" {
		return Quote(s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || strings.IndexByte("\"\\'=#", c) >= 0 {
			return Quote(s)
		}
	}
	return s
}

// Unquote reads the QuotedString at the start of s and returns its value and
// what follows it. Escapes are read as tor writes them (control-spec 2.1.1):
// \n \t \r and octal \0 ... \377 as C escapes, a backslash before any other
// character as that character.
func Unquote(s string) (value, rest string, err error) {
	if len(s) == 0 || s[0] != '"' {
		return "", s, errors.New("quoted string: does not start with '\"'")
	}
	// Fast path: no escapes.
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '"':
			return s[1:i], s[i+1:], nil
		case '\\':
			return unquoteSlow(s)
		}
	}
	return "", s, errors.New("quoted string: no closing '\"'")
}

func unquoteSlow(s string) (string, string, error) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			i++
			if i >= len(s) {
				return "", s, errors.New("quoted string: ends in a backslash")
			}
			switch e := s[i]; {
			case e == 'n':
				b.WriteByte('\n')
			case e == 't':
				b.WriteByte('\t')
			case e == 'r':
				b.WriteByte('\r')
			case e >= '0' && e <= '7':
				v := int(e - '0')
				for n := 1; n < 3 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '7'; n++ {
					i++
					v = v*8 + int(s[i]-'0')
				}
				if v > 0377 {
					return "", s, fmt.Errorf("quoted string: octal escape \\%o out of range", v)
				}
				b.WriteByte(byte(v))
			default:
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", s, errors.New("quoted string: no closing '\"'")
}
