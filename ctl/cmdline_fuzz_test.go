package ctl

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// A model of how tor reads the bytes of a control connection, transliterated
// from tor's C (0.4.x) with C strings as NUL-terminated byte slices, for the
// differential fuzz target below. It is deliberately written apart from
// cmdline.go: byte loops and pointers as in the C, not shared helpers.
//
//   control.c   connection_control_process_inbuf, control_split_incoming_command
//   control_cmd.c handle_control_command, control_cmd_parse_args
//   smartlist_split.c smartlist_split_string
//   kvline.c    kvline_parse, kvline_can_encode_lines, needs_escape
//   cstring.c   unescape_string
//   compat_ctype.c TOR_ISSPACE, TOR_ISPRINT, TOR_ISODIGIT, TOR_ISXDIGIT

func cIsSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == 0x0b || c == 0x0c || c == '\r'
}
func cIsPrint(c byte) bool  { return c >= 32 && c <= 126 }
func cIsODigit(c byte) bool { return c >= '0' && c <= '7' }
func cIsXDigit(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// cstr returns a copy of b up to its first NUL, NUL-terminated.
func cstr(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return append(append([]byte{}, b...), 0)
}

// cgo returns the Go string of the C string at p.
func cgo(p []byte) string {
	i := bytes.IndexByte(p, 0)
	return string(p[:i])
}

func cToUpper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 32
	}
	return c
}

// strcasecmp in the C locale.
func cStrcasecmp(a, b []byte) bool {
	i := 0
	for {
		x, y := cToUpper(a[i]), cToUpper(b[i])
		if x != y {
			return false
		}
		if x == 0 {
			return true
		}
		i++
	}
}

func strspn(p []byte, set string) int {
	n := 0
	for p[n] != 0 && strings.IndexByte(set, p[n]) >= 0 {
		n++
	}
	return n
}

func strcspn(p []byte, set string) int {
	n := 0
	for p[n] != 0 && strings.IndexByte(set, p[n]) < 0 {
		n++
	}
	return n
}

// modelCmd is one command as tor's control.c cut it from the input.
type modelCmd struct {
	cmd  []byte // current_cmd, NUL-terminated
	args []byte // the arguments, data_len bytes followed by a NUL
}

// modelInbuf is connection_control_process_inbuf: the commands tor reads
// from in (only complete ones).
func modelInbuf(in []byte) []modelCmd {
	var out []modelCmd
	pos := 0
	for {
		var incoming []byte
		for {
			// connection_buf_get_line: a line up to and including "\n".
			i := bytes.IndexByte(in[pos:], '\n')
			if i < 0 {
				return out // "Line not all here yet. Wait."
			}
			line := in[pos : pos+i+1]
			pos += i + 1
			lastIdx := len(incoming)
			incoming = append(incoming, line...)
			if lastIdx == 0 && incoming[0] != '+' {
				break
			}
			if lastIdx+3 == len(incoming) && bytes.Equal(incoming[lastIdx:], []byte(".\r\n")) {
				incoming = incoming[:lastIdx]
				break
			} else if lastIdx+2 == len(incoming) && bytes.Equal(incoming[lastIdx:], []byte(".\n")) {
				incoming = incoming[:lastIdx]
				break
			}
		}
		// control_split_incoming_command
		dataLen := len(incoming)
		buf := append(append([]byte{}, incoming...), 0)
		isMultiline := dataLen > 0 && buf[0] == '+'
		cmdLen := 0
		for cmdLen < dataLen && !cIsSpace(buf[cmdLen]) {
			cmdLen++
		}
		cmd := append(append([]byte{}, buf[:cmdLen]...), 0) // tor_memdup_nulterm
		args := cmdLen
		dataLen -= cmdLen
		if isMultiline {
			for (buf[args] == '\t' || buf[args] == ' ') && dataLen > 0 {
				args++
				dataLen--
			}
		} else {
			for cIsSpace(buf[args]) && dataLen > 0 {
				args++
				dataLen--
			}
		}
		out = append(out, modelCmd{cmd: cmd, args: buf[args : args+dataLen+1]})
	}
}

// modelCommands is CONTROL_COMMANDS' names.
var modelCommands = []string{
	"setconf", "resetconf", "getconf", "+loadconf", "setevents", "authenticate", "saveconf", "signal",
	"takeownership", "dropownership", "mapaddress", "getinfo", "extendcircuit", "setcircuitpurpose",
	"setrouterpurpose", "attachstream", "+postdescriptor", "redirectstream", "closestream", "closecircuit",
	"usefeature", "resolve", "protocolinfo", "authchallenge", "dropguards", "droptimeouts", "hsfetch",
	"+hspost", "add_onion", "del_onion", "onion_client_auth_add", "onion_client_auth_remove",
	"onion_client_auth_view",
}

// modelLookup is handle_control_command's (and the QUIT check's) match:
// the command name tor runs, upper-case, or "" for an unrecognized one.
func modelLookup(cmd []byte) string {
	if cStrcasecmp(cmd, []byte("QUIT\x00")) {
		return "QUIT"
	}
	for _, name := range modelCommands {
		if cStrcasecmp(cmd, append([]byte(name), 0)) {
			return strings.ToUpper(name)
		}
	}
	return ""
}

// modelSplit is smartlist_split_string(sl, str, " ",
// SPLIT_SKIP_SPACE|SPLIT_IGNORE_BLANK, max).
func modelSplit(str []byte, max int) [][]byte {
	var sl [][]byte
	n := 0
	cp := 0
	nul := bytes.IndexByte(str, 0) // strchr(cp, '\0') for any cp before it
	for {
		for cIsSpace(str[cp]) {
			cp++
		}
		var end int
		if max > 0 && n == max-1 {
			end = nul
		} else {
			i := bytes.Index(str[cp:nul], []byte(" "))
			if i < 0 {
				end = nul
			} else {
				end = cp + i
			}
		}
		next := -1
		if str[end] != 0 {
			next = end + 1
		}
		for end > cp && cIsSpace(str[end-1]) {
			end--
		}
		if end != cp {
			sl = append(sl, append(append([]byte{}, str[cp:end]...), 0))
			n++
		}
		if next < 0 {
			break
		}
		cp = next
	}
	return sl
}

// modelSyntax is control_cmd_syntax_t, the fields used here.
type modelSyntax struct {
	minArgs, maxArgs int // maxArgs -1 for UINT_MAX
	acceptKeywords   bool
	quoted, omitVals bool
	allowedKeywords  []string
	wantCmddata      bool
}

var modelSyntaxes = map[string]modelSyntax{
	"SETCONF":   {maxArgs: 0, acceptKeywords: true, quoted: true, omitVals: true},
	"RESETCONF": {maxArgs: 0, acceptKeywords: true, quoted: true, omitVals: true},
	"SIGNAL":    {minArgs: 1, maxArgs: 1},
	"ADD_ONION": {minArgs: 1, maxArgs: 1, acceptKeywords: true,
		allowedKeywords: []string{"Port", "Flags", "MaxStreams", "ClientAuth", "ClientAuthV3"}},
	"SAVECONF":        {maxArgs: 0, acceptKeywords: true, omitVals: true},
	"+LOADCONF":       {wantCmddata: true},
	"+POSTDESCRIPTOR": {maxArgs: 0, acceptKeywords: true, allowedKeywords: []string{"cache", "purpose"}, wantCmddata: true},
	"TAKEOWNERSHIP":   {maxArgs: -1},
	"DROPGUARDS":      {maxArgs: 0},
	"DROPTIMEOUTS":    {maxArgs: 0},
}

type kv struct{ key, val string }

// modelParseArgs is control_cmd_parse_args: the positional arguments and
// the keyword arguments, or ok false for "Bad arguments" (512).
func modelParseArgs(syn modelSyntax, body []byte) (args []string, kwargs []kv, ok bool) {
	bodyLen := len(body) - 1 // data_len bytes, then tor's NUL
	var cmdline []byte
	eol := bytes.IndexByte(body[:bodyLen], '\n')
	if syn.wantCmddata {
		if eol < 0 || eol+1 == bodyLen {
			return nil, nil, false
		}
		cmdline = cstr(body[:eol])
	} else {
		if eol >= 0 && eol+1 != bodyLen {
			return nil, nil, false
		}
		cmdline = cstr(body)
	}
	max := syn.maxArgs
	splitMax := max + 1
	if max < 0 {
		splitMax = 0 // (int)(UINT_MAX+1)
	}
	sl := modelSplit(cmdline, splitMax)
	n := len(sl)
	if n < syn.minArgs {
		return nil, nil, false
	}
	if max >= 0 && n > max && !syn.acceptKeywords {
		return nil, nil, false
	}
	if max >= 0 && n > max {
		remainder := sl[n-1]
		sl = sl[:n-1]
		res, good := modelKvlineParse(remainder, syn.quoted, syn.omitVals)
		if !good || res == nil {
			return nil, nil, false
		}
		if syn.allowedKeywords != nil {
			for _, l := range res {
				found := false
				for _, a := range syn.allowedKeywords {
					if cStrcasecmp(append([]byte(a), 0), append([]byte(l.key), 0)) {
						found = true
					}
				}
				if !found {
					return nil, nil, false
				}
			}
		}
		kwargs = res
	}
	for _, a := range sl {
		args = append(args, cgo(a))
	}
	return args, kwargs, true
}

// modelUnescape is unescape_string: the value (with its length) and the
// index after the closing quote, or ok false.
func modelUnescape(s []byte) (val []byte, next int, ok bool) {
	if s[0] != '"' {
		return nil, 0, false
	}
	cp := 1
loop:
	for {
		switch s[cp] {
		case 0, '\n':
			return nil, 0, false
		case '"':
			break loop
		case '\\':
			if s[cp+1] == 'x' || s[cp+1] == 'X' {
				if !(cIsXDigit(s[cp+2]) && cIsXDigit(s[cp+3])) {
					return nil, 0, false
				}
				cp += 4
			} else if cIsODigit(s[cp+1]) {
				cp += 2
				if cIsODigit(s[cp]) {
					cp++
				}
				if cIsODigit(s[cp]) {
					cp++
				}
			} else if s[cp+1] == 'n' || s[cp+1] == 'r' || s[cp+1] == 't' || s[cp+1] == '"' ||
				s[cp+1] == '\\' || s[cp+1] == '\'' {
				cp += 2
			} else {
				return nil, 0, false
			}
		default:
			cp++
		}
	}
	cp = 1
	var out []byte
	hex := func(c byte) int {
		switch {
		case c >= '0' && c <= '9':
			return int(c - '0')
		case c >= 'a' && c <= 'f':
			return int(c-'a') + 10
		case c >= 'A' && c <= 'F':
			return int(c-'A') + 10
		}
		return -1
	}
	for {
		switch s[cp] {
		case '"':
			return out, cp + 1, true
		case 0:
			return nil, 0, false
		case '\\':
			switch s[cp+1] {
			case 'n':
				out = append(out, '\n')
				cp += 2
			case 'r':
				out = append(out, '\r')
				cp += 2
			case 't':
				out = append(out, '\t')
				cp += 2
			case 'x', 'X':
				out = append(out, byte(hex(s[cp+2])<<4+hex(s[cp+3])))
				cp += 4
			case '0', '1', '2', '3', '4', '5', '6', '7':
				n := int(s[cp+1] - '0')
				cp += 2
				if cIsODigit(s[cp]) {
					n = n*8 + int(s[cp]-'0')
					cp++
				}
				if cIsODigit(s[cp]) {
					n = n*8 + int(s[cp]-'0')
					cp++
				}
				if n > 255 {
					return nil, 0, false
				}
				out = append(out, byte(n))
			case '\'', '"', '\\', '?':
				out = append(out, s[cp+1])
				cp += 2
			default:
				return nil, 0, false
			}
		default:
			out = append(out, s[cp])
			cp++
		}
	}
}

// modelNeedsEscape is needs_escape (char is signed: bytes >= 0x80 are
// negative, caught by !TOR_ISPRINT).
func modelNeedsEscape(s string, asKeylessVal bool) bool {
	if asKeylessVal && s == "" {
		return true
	}
	if asKeylessVal && strings.IndexByte(s, '=') >= 0 {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 127 /* *s >= 127, char signed */ || cIsSpace(c) || !cIsPrint(c) || c == '\'' || c == '"' {
			return true
		}
	}
	return false
}

// modelKvlineParse is kvline_parse(line, flags) for KV_QUOTED and
// KV_OMIT_VALS (never KV_OMIT_KEYS here), with kvline_can_encode_lines.
func modelKvlineParse(line []byte, quoted, omitVals bool) ([]kv, bool) {
	cp := 0
	var result []kv
	for line[cp] != 0 {
		var key, val []byte
		haveKey, haveVal := false, false
		cp += strspn(line[cp:], " \t\r\v\n")
		if line[cp] == 0 {
			break
		}
		if line[cp] != '"' {
			idx := strcspn(line[cp:], " \t\r\v\n=")
			if line[cp+idx] == '=' {
				key, haveKey = line[cp:cp+idx], true
				cp += idx + 1
			} else if omitVals {
				key, haveKey = line[cp:cp+idx], true
				cp += idx
				goto commit
			} else {
				return nil, false // !omit_keys
			}
		}
		if line[cp] == '"' {
			if !quoted {
				return nil, false
			}
			v, next, ok := modelUnescape(line[cp:])
			if !ok || bytes.IndexByte(v, 0) >= 0 {
				return nil, false
			}
			val, haveVal = v, true
			cp += next
		} else {
			idx := strcspn(line[cp:], " \t\r\v\n")
			val, haveVal = line[cp:cp+idx], true
			cp += idx
		}
	commit:
		if haveKey && len(key) == 0 {
			return nil, false
		}
		_ = haveVal
		result = append(result, kv{string(key), string(val)})
	}
	// kvline_can_encode_lines(result, flags)
	for _, l := range result {
		keyless := l.key == ""
		if keyless {
			return nil, false // no KV_OMIT_KEYS
		}
		if modelNeedsEscape(l.val, keyless) && !quoted {
			return nil, false
		}
		if modelNeedsEscape(l.key, true) {
			return nil, false
		}
	}
	return result, true
}

// wire is what Conn.Raw writes for text.
func wire(text string) []byte {
	text = strings.TrimRight(text, "\r\n")
	var b bytes.Buffer
	if strings.HasPrefix(text, "+") {
		line, data, _ := strings.Cut(text, "\n")
		b.WriteString(strings.TrimSuffix(line, "\r"))
		b.WriteString("\r\n")
		stuff(&b, data)
		return b.Bytes()
	}
	b.WriteString(text)
	b.WriteString("\r\n")
	return b.Bytes()
}

// bypassSeeds are the lines found to slip past the old check, and their
// neighbours.
var bypassSeeds = []string{
	"SAVECONF\t",
	"SAVECONF\tFORCE",
	"SETCONF\tMaxCircuitDirtiness=600",
	"SIGNAL\tHALT",
	"SIGNAL \tHALT",
	"SIGNAL HALT\tNEWNYM",
	"TAKEOWNERSHIP\t",
	"+LOADCONF\tx\nSocksPort 0\n",
	"+LOADCONF\nSocksPort 0\n.\nSAVECONF",
	"SETEVENTS\tCIRC",
	"QUIT\t",
	`SETCONF MaxCircuitDirtiness="604"NewCircuitPeriod=77`,
	`SETCONF Log="notice file /tmp/x"`,
	`SETCONF A="x\"B=1"`,
	`SETCONF A="unterminated`,
	"SETCONF A=1\vB=2",
	"SETCONF A=1\fB=2",
	"SETCONF\vB=2",
	"SETCONF\fB=2",
	"SAVECONF\x00",
	"SETCONF A=1\x00B=2",
	"SETCONF A=1\rB=2",
	"SIGNAL\rHALT",
	"SAVECONF\r\nSAVECONF",
	"ADD_ONION\tED25519-V3:abc Port=80",
	"ADD_ONION new:BEST Port=80",
	"ADD_ONION NEW:BEST\tPort=80",
	"+SETCONF A=1",
	" SAVECONF",
	"savecOnf",
	"RESETCONF A B=\"1 2\" C",
	`SETCONF A="\x41\101\n"`,
	"SETCONF K\xc3\xa9=1",
	"SIGNAL h\xc3\xa1lt",
	"GETINFO version",
}

func FuzzCommandLineGrants(f *testing.F) {
	for _, s := range bypassSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		cl, err := ParseCommandLine(text)
		if err != nil {
			return // refused: nothing is sent
		}
		cmds := modelInbuf(wire(text))
		if len(cmds) != 1 {
			t.Fatalf("%q: tor reads %d commands", text, len(cmds))
		}
		m := cmds[0]
		upper := strings.ToUpper(cgo(m.cmd))
		if upper != cl.Keyword {
			t.Fatalf("%q: tor's keyword %q, ours %q", text, upper, cl.Keyword)
		}
		name := modelLookup(m.cmd)
		if name != "" && name != cl.Keyword {
			t.Fatalf("%q: tor runs %q, we read %q", text, name, cl.Keyword)
		}
		syn, known := modelSyntaxes[name]
		if !known {
			return
		}
		args, kwargs, ok := modelParseArgs(syn, m.args)
		switch name {
		case "SETCONF", "RESETCONF":
			keys, err := cl.ConfKeys()
			if !ok {
				if err == nil {
					t.Fatalf("%q: tor refuses the arguments, we read keys %q", text, keys)
				}
				return
			}
			if err != nil {
				t.Fatalf("%q: tor reads %v, we refuse: %v", text, kwargs, err)
			}
			var want []string
			for _, l := range kwargs {
				want = append(want, l.key)
			}
			if !slices.Equal(keys, want) {
				t.Fatalf("%q: tor reads keys %q, we %q", text, want, keys)
			}
			pairs, _ := cl.ConfPairs()
			for i, p := range pairs {
				if p[1] != kwargs[i].val {
					t.Fatalf("%q: tor reads %s=%q, we %q", text, p[0], kwargs[i].val, p[1])
				}
			}
		case "SIGNAL":
			sig, err := cl.Signal()
			if ok != (err == nil) {
				t.Fatalf("%q: tor ok=%v, we %v", text, ok, err)
			}
			if ok && sig != args[0] {
				t.Fatalf("%q: tor reads signal %q, we %q", text, args[0], sig)
			}
		case "ADD_ONION":
			if !ok {
				return
			}
			key, isNew, err := cl.OnionKey()
			if err != nil || key != args[0] {
				t.Fatalf("%q: tor reads key %q, we %q (%v)", text, args[0], key, err)
			}
			typ, _, _ := strings.Cut(args[0], ":")
			if isNew != cStrcasecmp(append([]byte(typ), 0), []byte("NEW\x00")) {
				t.Fatalf("%q: NEW differs", text)
			}
		}
	})
}

func TestCommandLineBypasses(t *testing.T) {
	for _, tc := range []struct {
		text    string
		kw      string
		keys    []string
		refused bool
	}{
		{text: "SAVECONF\t", kw: "SAVECONF"},
		{text: "SETCONF\tMaxCircuitDirtiness=600", kw: "SETCONF", keys: []string{"MaxCircuitDirtiness"}},
		{text: "TAKEOWNERSHIP\t", kw: "TAKEOWNERSHIP"},
		{text: "+LOADCONF\tx\nSocksPort 0", kw: "+LOADCONF"},
		{text: "setevents\tCIRC", kw: "SETEVENTS"},
		{text: `SETCONF MaxCircuitDirtiness="604"NewCircuitPeriod=77`, kw: "SETCONF", keys: []string{"MaxCircuitDirtiness", "NewCircuitPeriod"}},
		{text: `SETCONF Log="notice file /tmp/x"`, kw: "SETCONF", keys: []string{"Log"}},
		{text: `RESETCONF A B="1 2" C`, kw: "RESETCONF", keys: []string{"A", "B", "C"}},
		{text: `SETCONF A="unterminated`, refused: true},
		{text: "SETCONF A=1\vB=2", refused: true},
		{text: "SETCONF A=1\fB=2", refused: true},
		{text: "SAVECONF\x00", refused: true},
		{text: "SIGNAL\rHALT", refused: true},
		{text: "SAVECONF\nSAVECONF", refused: true},
		{text: " SAVECONF", refused: true},
		{text: "S\xc3\xa1VECONF", refused: true},
	} {
		cl, err := ParseCommandLine(tc.text)
		if err == nil && (cl.Keyword == "SETCONF" || cl.Keyword == "RESETCONF") {
			var keys []string
			keys, err = cl.ConfKeys()
			if err == nil && !slices.Equal(keys, tc.keys) {
				t.Errorf("%q: keys %q, want %q", tc.text, keys, tc.keys)
			}
		}
		if tc.refused {
			if err == nil {
				t.Errorf("%q: accepted as %+v", tc.text, cl)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.text, err)
			continue
		}
		if cl.Keyword != tc.kw {
			t.Errorf("%q: keyword %q, want %q", tc.text, cl.Keyword, tc.kw)
		}
	}
	cl, _ := ParseCommandLine("SIGNAL\tHALT")
	if sig, err := cl.Signal(); err != nil || sig != "HALT" {
		t.Errorf("SIGNAL\\tHALT: %q %v", sig, err)
	}
	cl, _ = ParseCommandLine("SIGNAL HALT\tNEWNYM")
	if sig, err := cl.Signal(); err != nil || sig != "HALT\tNEWNYM" {
		t.Errorf("SIGNAL HALT\\tNEWNYM: %q %v (tor splits on spaces only)", sig, err)
	}
	cl, _ = ParseCommandLine("ADD_ONION new:BEST Port=80")
	if _, isNew, err := cl.OnionKey(); err != nil || !isNew {
		t.Errorf("ADD_ONION new:BEST: new=%v %v", isNew, err)
	}
}
