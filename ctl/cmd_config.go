package ctl

import (
	"context"
	"strings"
)

// ConfEntry is one configuration line: a key and its value.
type ConfEntry struct {
	Key   string
	Value string
	// NoValue is set by GetConf for a line "250 Key" without "=": the
	// option has no value (it is unset, or at a default that differs from
	// the empty string). SetConf and ResetConf ignore it: an entry with an
	// empty Value is always sent as the bare key.
	NoValue bool
}

// ConfEntries are configuration lines in tor's order. A key may repeat
// (several SocksPort lines, a HiddenServiceDir group).
type ConfEntries []ConfEntry

// Lookup returns the first entry for key (compared without regard to case,
// as tor does).
func (e ConfEntries) Lookup(key string) (ConfEntry, bool) {
	for _, x := range e {
		if strings.EqualFold(x.Key, key) {
			return x, true
		}
	}
	return ConfEntry{}, false
}

// Values returns, in order, the values of every entry for key that has one.
func (e ConfEntries) Values(key string) []string {
	var vs []string
	for _, x := range e {
		if strings.EqualFold(x.Key, key) && !x.NoValue {
			vs = append(vs, x.Value)
		}
	}
	return vs
}

// SetConf sets configuration options as if tor had read them from its
// configuration file (control-spec 3.1). Repeat a key to give a multi-valued
// option several values; setting any of them replaces all old ones. An entry
// with an empty Value resets the option to 0 or NULL (use ResetConf for its
// default). Tor sets all or none.
func (c *Conn) SetConf(ctx context.Context, entries ...ConfEntry) error {
	return c.setConf(ctx, "SETCONF", entries)
}

// ResetConf sets options back to their defaults and then, for an entry with
// a Value, to that value (control-spec 3.2).
func (c *Conn) ResetConf(ctx context.Context, entries ...ConfEntry) error {
	return c.setConf(ctx, "RESETCONF", entries)
}

func (c *Conn) setConf(ctx context.Context, cmd string, entries []ConfEntry) error {
	_, err := setConfLine(cmd, entries).do(ctx, c)
	return err
}

func setConfLine(cmd string, entries []ConfEntry) *cmdLine {
	l := newCmdLine(cmd)
	if len(entries) == 0 {
		l.check(cmdNoArgs(cmd, "no options"))
	}
	for _, e := range entries {
		if !l.check(argConfKey(cmd+" key", e.Key)) {
			break
		}
		if e.Value == "" {
			l.raw(e.Key)
			continue
		}
		if !l.check(CheckArg(cmd+" "+e.Key+" value", e.Value)) {
			break
		}
		l.raw(e.Key + "=" + confValue(e.Value))
	}
	return l
}

// argConfKey checks a configuration key: letters, digits and '_' (every tor
// option, "__LeaveStreamsUnattached" included, and the virtual
// "HiddenServiceOptions").
func argConfKey(what, k string) error { return argChars(what, k, "_") }

// confValue writes a SETCONF value bare when it is a plain run of visible
// ASCII, and as a quoted string otherwise. Tor reads these values with C
// escapes (kvline_parse with KV_QUOTED), and Quote escapes only '"' and
// '\\', which both readings agree on; every other byte but CR, LF and NUL
// (refused before) may stand inside the quotes as it is. Bare values must
// not hold anything tor splits on (space, tab, CR, LF, VT) or would quote
// on output.
func confValue(v string) string { return QuoteIfNeeded(v) }

// GetConf asks for the values of configuration options (control-spec 3.3).
// The result keeps tor's order and every line of a multi-valued option; an
// option without a value is an entry with NoValue set.
func (c *Conn) GetConf(ctx context.Context, keys ...string) (ConfEntries, error) {
	if len(keys) == 0 {
		return nil, cmdNoArgs("GETCONF", "no keys")
	}
	l := newCmdLine("GETCONF")
	for _, k := range keys {
		l.arg(argConfKey("GETCONF key", k), k)
	}
	r, err := l.do(ctx, c)
	if err != nil {
		return nil, err
	}
	return ParseConfReply(r)
}

// ParseConfReply reads a GETCONF reply: one "key=value" or bare "key" per
// line. A value in double quotes is unquoted (tor quotes values that start
// with '"' or hold unprintable bytes, using C escapes).
func ParseConfReply(r *Reply) (ConfEntries, error) {
	out := make(ConfEntries, 0, len(r.Lines))
	for i := range r.Lines {
		l := &r.Lines[i]
		k, v, ok := strings.Cut(l.Text, "=")
		if k == "" {
			return nil, &ProtocolError{Msg: "GETCONF reply line without a key", Line: l.Text}
		}
		switch {
		case !ok:
			out = append(out, ConfEntry{Key: k, NoValue: true})
			continue
		case l.Sep == '+':
			v = l.Data
		case strings.HasPrefix(v, `"`):
			uq, rest, err := Unquote(v)
			if err != nil || rest != "" {
				return nil, &ProtocolError{Msg: "GETCONF reply: malformed quoted value", Line: l.Text}
			}
			v = uq
		}
		out = append(out, ConfEntry{Key: k, Value: v})
	}
	return out, nil
}

// SaveConf makes tor write its configuration to its torrc (control-spec
// 3.6). Tor refuses (551) when the torrc uses %include, unless force is set.
func (c *Conn) SaveConf(ctx context.Context, force bool) error {
	l := newCmdLine("SAVECONF")
	if force {
		l.raw("FORCE")
	}
	_, err := l.do(ctx, c)
	return err
}

// LoadConf gives tor the text of a configuration file to load as if it had
// read it from disk (control-spec 3.22). Lines may end in "\n" or "\r\n";
// a line starting with "." is escaped on the wire.
func (c *Conn) LoadConf(ctx context.Context, text string) error {
	l := newCmdLine("LOADCONF")
	l.check(argData("LOADCONF", text))
	_, err := l.doData(ctx, c, text)
	return err
}
