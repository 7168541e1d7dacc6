package ctl

import (
	"errors"
	"fmt"
	"strings"
)

// How tor reads a command (tor 0.4.x, src/feature/control/), which
// ParseCommandLine follows byte for byte:
//
//   - control.c connection_control_process_inbuf: tor reads a line up to
//     and including "\n" (connection_buf_get_line). If the first byte of the
//     first line is '+', the command is multi-line and tor keeps appending
//     lines until one that is exactly ".\r\n" or ".\n" (removed). Any other
//     command is that one line, CRLF included.
//   - control.c control_split_incoming_command: the keyword is every byte up
//     to the first TOR_ISSPACE (' ', \t, \n, \v, \f, \r: compat_ctype.c
//     TOR_ISSPACE_TABLE), '+' included ("+LOADCONF"). The arguments start
//     after the white space that follows: any TOR_ISSPACE for a one-line
//     command, only ' ' and '\t' for a multi-line one. The keyword is copied
//     with tor_memdup_nulterm, so a NUL inside it ends it for strcasecmp.
//   - control_cmd.c handle_control_command: the keyword is matched with
//     strcasecmp against CONTROL_COMMANDS, where the multi-line commands are
//     named "+loadconf", "+postdescriptor" and "+hspost" (MULTLINE) and the
//     others without '+' (ONE_LINE): "LOADCONF" on one line and "+SETCONF"
//     are unrecognized commands (510). QUIT is matched before that, in
//     connection_control_process_inbuf.
//   - control_cmd.c control_cmd_parse_args: for a command that wants data
//     (LOADCONF, POSTDESCRIPTOR, HSPOST) the command line is the arguments
//     up to the first "\n" and the rest is the data; any other command with
//     a "\n" before its last byte is refused ("Unexpected body"). The
//     command line is then split with smartlist_split_string(sep " ",
//     SPLIT_SKIP_SPACE|SPLIT_IGNORE_BLANK, max_args+1): pieces separated by
//     single spaces only, each trimmed of TOR_ISSPACE at both ends, empty
//     ones dropped, the last piece the whole remainder. Pieces beyond
//     max_args are keyword arguments, read by kvline_parse.
//   - SETCONF, RESETCONF: max_args 0, kvline_parse(KV_OMIT_VALS|KV_QUOTED)
//     on the whole trimmed remainder.
//   - lib/encoding/kvline.c kvline_parse: skip " \t\r\v\n" (not \f); a key
//     runs to the first of " \t\r\v\n="; without "=" it is a key with no
//     value (KV_OMIT_VALS); after "=" a value starting with '"' is a C
//     string (lib/encoding/cstring.c unescape_string: \n \r \t \" \\ \'
//     \xHH \ooo; a NUL, a "\n" or the end before the closing quote is an
//     error) and the next entry starts right after the closing quote, with
//     no space needed; any other value runs to the next " \t\r\v\n". An
//     empty key, a quoted value holding a NUL, a line with no key ("V") or
//     a key that would need escaping (kvline_can_encode_lines: non-printable
//     ASCII, space, quotes, '=') make the whole line an error (tor: 512).
//   - SIGNAL: min_args 1, max_args 1: the first piece (split on " " only,
//     so "HALT\tX" is one piece) is matched with strcasecmp against
//     signal_table.
//   - ADD_ONION: min_args 1, max_args 1, keywords after: the first piece is
//     the key argument; add_onion_helper_keyarg splits it at ':' and a key
//     type of "NEW" (strcasecmp) asks tor for a new key.
//
// ParseCommandLine refuses what tor could read differently from it or
// what it cannot tell: NUL anywhere, CR, \v, \f or another control byte
// in the first line, a byte outside visible ASCII in the keyword, a body
// after a command not starting with '+', an empty keyword.

// CommandLine is a control command as tor reads it.
type CommandLine struct {
	// Keyword is the command keyword in upper case (ASCII only, as tor's
	// strcasecmp), with its '+' for a multi-line command ("+LOADCONF").
	Keyword string
	// Multi is true for a command whose first byte is '+'.
	Multi bool
	// Args is the rest of the first line, after the white space that
	// follows the keyword, as tor passes it to the command.
	Args string
	// Body is what follows the first line of a multi-line command (its
	// data, not dot-stuffed).
	Body string
}

// ErrCommandLine is wrapped by the errors of ParseCommandLine.
var ErrCommandLine = errors.New("tor could read this command otherwise")

// torIsSpace is TOR_ISSPACE (compat_ctype.c): ' ', \t, \n, \v, \f, \r.
func torIsSpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r')
}

// ParseCommandLine splits a command as torscript sends it (the form
// Conn.Raw takes: one line, or for a command starting with '+' a first line
// then "\n" and its data; a final CR/LF is dropped) into what tor reads.
func ParseCommandLine(text string) (*CommandLine, error) {
	bad := func(format string, a ...any) (*CommandLine, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrCommandLine}, a...)...)
	}
	text = strings.TrimRight(text, "\r\n")
	if i := strings.IndexByte(text, 0); i >= 0 {
		return bad("NUL at byte %d", i)
	}
	first, body, hasBody := strings.Cut(text, "\n")
	first = strings.TrimSuffix(first, "\r")
	for i := 0; i < len(first); i++ {
		if c := first[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return bad("%q at byte %d of the command line", c, i)
		}
	}
	if first == "" {
		return bad("no command keyword")
	}
	cl := &CommandLine{Multi: first[0] == '+'}
	if hasBody && !cl.Multi {
		return bad("a line break in a command that does not start with '+'")
	}
	n := 0
	for n < len(first) && !torIsSpace(first[n]) {
		n++
	}
	if n == 0 {
		return bad("white space before the command keyword")
	}
	kw := []byte(first[:n])
	for i, c := range kw {
		if c <= ' ' || c >= 0x7f {
			return bad("%q at byte %d of the keyword", c, i)
		}
		if 'a' <= c && c <= 'z' {
			kw[i] = c - 'a' + 'A'
		}
	}
	cl.Keyword = string(kw)
	rest := first[n:]
	for rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	cl.Args = rest
	cl.Body = body
	return cl, nil
}

// Name is the command without the '+' of a multi-line command.
func (cl *CommandLine) Name() string { return strings.TrimPrefix(cl.Keyword, "+") }

// Fields splits the arguments as tor's control_cmd_parse_args does for a
// command of max positional arguments (smartlist_split_string with sep " ",
// SPLIT_SKIP_SPACE|SPLIT_IGNORE_BLANK and max+1 pieces): the positional
// arguments, and the remainder tor would read as keyword arguments ("" for
// none).
func (cl *CommandLine) Fields(max int) (positional []string, rest string) {
	pieces := splitString(cl.Args, max+1)
	if len(pieces) > max {
		return pieces[:max], pieces[max]
	}
	return pieces, ""
}

// splitString is smartlist_split_string(sl, s, " ",
// SPLIT_SKIP_SPACE|SPLIT_IGNORE_BLANK, max) (lib/smartlist_core).
func splitString(s string, max int) []string {
	var out []string
	cp := 0
	for {
		for cp < len(s) && torIsSpace(s[cp]) {
			cp++
		}
		var end int
		if max > 0 && len(out) == max-1 {
			end = len(s)
		} else if i := strings.IndexByte(s[cp:], ' '); i >= 0 {
			end = cp + i
		} else {
			end = len(s)
		}
		next := -1
		if end < len(s) {
			next = end + 1
		}
		for end > cp && torIsSpace(s[end-1]) {
			end--
		}
		if end != cp {
			out = append(out, s[cp:end])
		}
		if next < 0 {
			return out
		}
		cp = next
	}
}

// ConfKeys returns the keys of a SETCONF or RESETCONF command as tor's
// kvline_parse(KV_OMIT_VALS|KV_QUOTED) reads them, in order; nil for any
// other command. A line tor would refuse as a whole is an error.
func (cl *CommandLine) ConfKeys() ([]string, error) {
	pairs, err := cl.ConfPairs()
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(pairs))
	for i, p := range pairs {
		keys[i] = p[0]
	}
	return keys, nil
}

// ConfPairs is ConfKeys with the values tor reads (unquoted).
func (cl *CommandLine) ConfPairs() ([][2]string, error) {
	if cl.Keyword != "SETCONF" && cl.Keyword != "RESETCONF" {
		return nil, nil
	}
	_, rest := cl.Fields(0)
	if rest == "" {
		return nil, nil
	}
	pairs, err := kvlineParse(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: %s arguments: %v", ErrCommandLine, cl.Keyword, err)
	}
	return pairs, nil
}

// Signal returns the signal name of a SIGNAL command as tor matches it
// (its only positional argument); an error when tor would refuse the
// arguments.
func (cl *CommandLine) Signal() (string, error) {
	if cl.Keyword != "SIGNAL" {
		return "", fmt.Errorf("not a SIGNAL command")
	}
	pos, rest := cl.Fields(1)
	if len(pos) != 1 || rest != "" {
		return "", fmt.Errorf("%w: SIGNAL takes one argument", ErrCommandLine)
	}
	return pos[0], nil
}

// OnionKey returns the key argument of an ADD_ONION command, and whether
// it asks tor for a new key (key type NEW, in any case).
func (cl *CommandLine) OnionKey() (arg string, isNew bool, err error) {
	if cl.Keyword != "ADD_ONION" {
		return "", false, fmt.Errorf("not an ADD_ONION command")
	}
	pos, _ := cl.Fields(1)
	if len(pos) != 1 {
		return "", false, fmt.Errorf("%w: ADD_ONION needs a key argument", ErrCommandLine)
	}
	typ, _, _ := strings.Cut(pos[0], ":")
	return pos[0], strings.EqualFold(typ, "NEW"), nil
}

// kvlineParse is kvline_parse(line, KV_OMIT_VALS|KV_QUOTED) followed by
// its kvline_can_encode_lines check.
func kvlineParse(s string) ([][2]string, error) {
	isSep := func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\n' }
	var out [][2]string
	cp := 0
	for cp < len(s) {
		for cp < len(s) && isSep(s[cp]) {
			cp++
		}
		if cp == len(s) {
			break
		}
		var key, val string
		hasKey := false
		if s[cp] != '"' {
			idx := cp
			for idx < len(s) && !isSep(s[idx]) && s[idx] != '=' {
				idx++
			}
			key, hasKey = s[cp:idx], true
			if idx < len(s) && s[idx] == '=' {
				cp = idx + 1
			} else {
				cp = idx
				goto commit
			}
		}
		if cp < len(s) && s[cp] == '"' {
			v, n, err := unescapeString(s[cp:])
			if err != nil {
				return nil, err
			}
			val, cp = v, cp+n
		} else {
			idx := cp
			for idx < len(s) && !isSep(s[idx]) {
				idx++
			}
			val, cp = s[cp:idx], idx
		}
	commit:
		if hasKey && key == "" {
			return nil, errors.New("an empty key")
		}
		if !hasKey {
			return nil, errors.New("a value with no key")
		}
		if kvNeedsEscape(key) {
			return nil, fmt.Errorf("key %q would need quoting", key)
		}
		out = append(out, [2]string{key, val})
	}
	return out, nil
}

// kvNeedsEscape is kvline.c needs_escape(key, true).
func kvNeedsEscape(s string) bool {
	if s == "" || strings.IndexByte(s, '=') >= 0 {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 127 || c <= ' ' || c == '\'' || c == '"' {
			return true
		}
	}
	return false
}

// unescapeString is cstring.c unescape_string on s, which starts with '"':
// the value and the number of bytes read, closing quote included. A NUL
// in the value is an error (kvline_parse's len != strlen(val)).
func unescapeString(s string) (string, int, error) {
	isOct := func(c byte) bool { return c >= '0' && c <= '7' }
	isHex := func(c byte) bool {
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
	}
	at := func(i int) byte {
		if i < len(s) {
			return s[i]
		}
		return 0
	}
	var b strings.Builder
	cp := 1
	for {
		switch c := at(cp); c {
		case 0, '\n':
			return "", 0, errors.New("an unterminated quoted value")
		case '"':
			v := b.String()
			if strings.IndexByte(v, 0) >= 0 {
				return "", 0, errors.New("a NUL in a quoted value")
			}
			return v, cp + 1, nil
		case '\\':
			switch d := at(cp + 1); {
			case d == 'x' || d == 'X':
				if !isHex(at(cp+2)) || !isHex(at(cp+3)) {
					return "", 0, errors.New("a bad \\x escape")
				}
				var x byte
				for _, h := range []byte{at(cp + 2), at(cp + 3)} {
					switch {
					case h <= '9':
						h -= '0'
					case h >= 'a':
						h -= 'a' - 10
					default:
						h -= 'A' - 10
					}
					x = x<<4 | h
				}
				b.WriteByte(x)
				cp += 4
			case isOct(d):
				n := int(d - '0')
				cp += 2
				for k := 0; k < 2 && isOct(at(cp)); k++ {
					n = n*8 + int(at(cp)-'0')
					cp++
				}
				if n > 255 {
					return "", 0, errors.New("an octal escape over 255")
				}
				b.WriteByte(byte(n))
			case d == 'n':
				b.WriteByte('\n')
				cp += 2
			case d == 'r':
				b.WriteByte('\r')
				cp += 2
			case d == 't':
				b.WriteByte('\t')
				cp += 2
			case d == '"' || d == '\\' || d == '\'':
				b.WriteByte(d)
				cp += 2
			default:
				return "", 0, fmt.Errorf("a bad escape \\%c", d)
			}
		default:
			b.WriteByte(c)
			cp++
		}
	}
}
