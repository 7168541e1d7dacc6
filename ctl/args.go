package ctl

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// This file holds the command-line builder and the argument rules every
// typed command uses.
//
// Tor reads a command line in two ways (feature/control/control_cmd.c):
// positional arguments are split on spaces, and keyword arguments go through
// kvline_parse, which also splits on tab, CR, LF and vertical tab, and reads
// a key up to its first "=". So an argument that is not a single run of
// visible ASCII could become two arguments, or a keyword, or a second
// command. Every check below therefore accepts only VCHAR (0x21-0x7E, the
// grammar's OptArguments) and refuses with an error wrapping
// ErrUnsafeArgument before anything is written. Only SETCONF and RESETCONF
// values may hold anything else (but CR, LF and NUL), written as quoted
// strings, and so may the data of LOADCONF, POSTDESCRIPTOR and HSPOST (but
// NUL), which is sent dot-stuffed.

// cmdLine builds one command line. The first refused argument sticks, so a
// command is sent only when every one of its arguments passed.
type cmdLine struct {
	b   strings.Builder
	err error
}

func newCmdLine(keyword string) *cmdLine {
	l := &cmdLine{}
	// Room for most commands at once (ATTACHSTREAM, CLOSESTREAM, GETINFO of
	// a key or two): one allocation rather than one a few arguments.
	l.b.Grow(max(64, len(keyword)+16))
	l.b.WriteString(keyword)
	return l
}

// check records err unless an earlier one is recorded, and says whether the
// line is still good.
func (l *cmdLine) check(err error) bool {
	if l.err == nil {
		l.err = err
	}
	return l.err == nil
}

// raw appends " "+s; s must be a checked argument or a constant.
func (l *cmdLine) raw(s string) *cmdLine {
	l.b.WriteByte(' ')
	l.b.WriteString(s)
	return l
}

// arg appends s after checking it.
// optNumber adds an optional number, as prefix+n, unless it is 0; bad
// (with why) refuses it.
func (l *cmdLine) optNumber(what, prefix string, n int, bad bool, why string) *cmdLine {
	switch {
	case bad:
		l.check(cmdUnsafeArg(what, strconv.Itoa(n), "%s", why))
	case n != 0:
		l.raw(prefix + strconv.Itoa(n))
	}
	return l
}

func (l *cmdLine) arg(err error, s string) *cmdLine {
	if l.check(err) {
		l.raw(s)
	}
	return l
}

func (l *cmdLine) String() (string, error) {
	if l.err != nil {
		return "", l.err
	}
	return l.b.String(), nil
}

// do sends the line when every argument passed. The arguments were
// checked one by one as the line was built; the line is not checked again
// (the grant check, when set, still reads it in write).
func (l *cmdLine) do(ctx context.Context, c *Conn) (*Reply, error) {
	line, err := l.String()
	if err != nil {
		return nil, err
	}
	return c.roundTrip(ctx, line, "", false)
}

// doData sends the line as a multi-line command with data.
func (l *cmdLine) doData(ctx context.Context, c *Conn, data string) (*Reply, error) {
	line, err := l.String()
	if err != nil {
		return nil, err
	}
	return c.DoData(ctx, line, data)
}

func cmdUnsafeArg(what, s, format string, args ...any) error {
	// A key or a password is never repeated in an error.
	if secretArg(what) {
		return fmt.Errorf("%s: %w: it %s", what, ErrUnsafeArgument, fmt.Sprintf(format, args...))
	}
	return fmt.Errorf("%s: %w: %q %s", what, ErrUnsafeArgument, s, fmt.Sprintf(format, args...))
}

// secretArg says whether an argument so named may hold a secret.
func secretArg(what string) bool {
	w := strings.ToLower(what)
	return strings.Contains(w, "key") || strings.Contains(w, "password") || strings.Contains(w, "auth") || strings.Contains(w, "cookie")
}

// argWord checks a single bare word: non-empty visible ASCII without '"'.
func argWord(what, s string) error { return CheckToken(what, s) }

// argName checks a word that tor's keyword parser must not read as
// "key=value": a word without '='.
func argName(what, s string) error {
	if err := argWord(what, s); err != nil {
		return err
	}
	if i := strings.IndexByte(s, '='); i >= 0 {
		return cmdUnsafeArg(what, s, "contains '=' at byte %d", i)
	}
	return nil
}

// argChars checks a non-empty word made only of ASCII letters, digits and
// the bytes in extra.
func argChars(what, s, extra string) error {
	if err := CheckToken(what, s); err != nil {
		return err
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && strings.IndexByte(extra, s[i]) < 0 {
			if extra == "" {
				return cmdUnsafeArg(what, s, "contains %q at byte %d (only letters and digits are allowed)", s[i], i)
			}
			return cmdUnsafeArg(what, s, "contains %q at byte %d (only letters, digits and %q are allowed)", s[i], i, extra)
		}
	}
	return nil
}

// argID checks a StreamID or CircuitID: 1*16 IDChar, IDChar = ALPHA / DIGIT.
func argID(what, s string) error {
	if err := argChars(what, s, ""); err != nil {
		return err
	}
	if len(s) > 16 {
		return cmdUnsafeArg(what, s, "is longer than 16 characters")
	}
	return nil
}

// argServerSpec checks a ServerSpec (control-spec 2.4): "$" 40*HEXDIG
// followed by an optional "~" or "=" and nickname, or a nickname of 1 to 19
// letters and digits. The "$" may be left out before a fingerprint.
func argServerSpec(what, s string) error {
	if err := argWord(what, s); err != nil {
		return err
	}
	fp, nick, hasNick := s, "", false
	if i := strings.IndexAny(s, "~="); i >= 0 {
		fp, nick, hasNick = s[:i], s[i+1:], true
	}
	isFP := len(strings.TrimPrefix(fp, "$")) == 40 && isHex(strings.TrimPrefix(fp, "$"))
	switch {
	case isFP && !hasNick:
		return nil
	case isFP && hasNick && isNickname(nick):
		return nil
	case !hasNick && !strings.HasPrefix(s, "$") && isNickname(s):
		return nil
	}
	return cmdUnsafeArg(what, s, "is not a relay fingerprint ($ and 40 hex digits, optionally ~nickname) or nickname (1 to 19 letters and digits)")
}

// argOnion checks an onion address (without ".onion"; a trailing ".onion"
// is dropped) and returns it.
func argOnion(what, s string) (string, error) {
	s = strings.TrimSuffix(s, ".onion")
	return s, argChars(what, s, "")
}

// argData checks the data of a multi-line command: anything but NUL.
func argData(cmd, data string) error {
	if i := strings.IndexByte(data, 0); i >= 0 {
		return fmt.Errorf("%s data: %w: contains NUL at byte %d", cmd, ErrUnsafeArgument, i)
	}
	return nil
}

// argList checks every element of a comma-separated list and joins them.
func argList(what string, elems []string, check func(what, s string) error) (string, error) {
	if len(elems) == 0 {
		return "", fmt.Errorf("%s: %w: empty list", what, ErrUnsafeArgument)
	}
	for _, e := range elems {
		if err := check(what, e); err != nil {
			return "", err
		}
		if strings.IndexByte(e, ',') >= 0 {
			return "", cmdUnsafeArg(what, e, "contains ','")
		}
	}
	return strings.Join(elems, ","), nil
}

func cmdNoArgs(cmd, what string) error {
	return &argError{cmd: cmd, msg: what}
}
