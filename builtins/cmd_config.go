package builtins

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/torscript/torscript/ctl"
	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
)

const docGetConf = `get_conf(key, *keys) -> value or dict
GETCONF: with one key, its value: a str; None when the option has no value
(unset, or at a default tor does not write); a list of str when tor sent
several lines for it (SocksPort, Log, ...). With several keys, a dict of each
key, as given, to its value. A virtual key such as "HiddenServiceOptions"
gives a list of (key, value) pairs in tor's order.
  tor.get_conf("SocksPort")               # "9050", or ["9050", "9150"]
  tor.get_conf("ExitNodes", "StrictNodes")  # {"ExitNodes": None, "StrictNodes": "0"}`

func (t *torMod) getConf(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := noKwargs(b, kwargs); err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("%s: want at least one key", b.Name())
	}
	keys, err := stringArgs(b, args, "key")
	if err != nil {
		return nil, err
	}
	keys = dedupFold(keys)
	c, err := t.conn(b)
	if err != nil {
		return nil, err
	}
	entries, err := c.GetConf(Context(thread), keys...)
	if err != nil {
		return nil, failed(b, err)
	}
	groups := groupConf(keys, entries)
	if len(keys) == 1 {
		return confValue(keys[0], groups[0]), nil
	}
	d := starlark.NewDict(len(keys))
	for i, k := range keys {
		d.SetKey(starlark.String(k), confValue(k, groups[i]))
	}
	return d, nil
}

const docSetConf = `set_conf(mapping=None, **kwargs)
SETCONF: sets options as if tor had read them from its torrc, all or none.
Give them as a dict, as keyword arguments, or both (the dict's first):
  tor.set_conf(ExitNodes="{de},{nl}", StrictNodes=True)
  tor.set_conf({"SocksPort": ["9050", "127.0.0.1:9150 IsolateDestAddr"]})
A value is a str, an int, a bool (1 or 0), a time.duration or a list of
them: a list sends the key once per value, in order, which replaces all of
its old values. None or "" sends the bare key, which tor reads as "clear to
0 or empty"; use reset_conf for the default.`

func (t *torMod) setConf(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) > 1 {
		return nil, fmt.Errorf("%s: got %d positional arguments, want at most 1 (a dict)", b.Name(), len(args))
	}
	// mapping may be given by name; no tor option is called that.
	for i, kv := range kwargs {
		if kv[0] == starlark.String("mapping") {
			if len(args) > 0 {
				return nil, fmt.Errorf("%s: got multiple values for parameter \"mapping\"", b.Name())
			}
			args = starlark.Tuple{kv[1]}
			kwargs = append(kwargs[:i:i], kwargs[i+1:]...)
			break
		}
	}
	var entries []ctl.ConfEntry
	if len(args) == 1 && args[0] != starlark.None {
		d, ok := args[0].(*starlark.Dict)
		if !ok {
			return nil, fmt.Errorf("%s: mapping: got %s, want dict", b.Name(), args[0].Type())
		}
		for _, kv := range d.Items() {
			k, ok := starlark.AsString(kv[0])
			if !ok {
				return nil, fmt.Errorf("%s: mapping: got %s key, want string", b.Name(), kv[0].Type())
			}
			e, err := confEntries(k, kv[1])
			if err != nil {
				return nil, failed(b, err)
			}
			entries = append(entries, e...)
		}
	}
	return t.confCommand(thread, b, entries, kwargs, (*ctl.Conn).SetConf)
}

const docResetConf = `reset_conf(*keys, **kwargs)
RESETCONF: sets each key back to its default, and each keyword argument to
its default and then to its value (as in set_conf).
  tor.reset_conf("ExitNodes", "StrictNodes")
  tor.reset_conf(SocksPort="9150")`

func (t *torMod) resetConf(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	keys, err := stringArgs(b, args, "key")
	if err != nil {
		return nil, err
	}
	entries := make([]ctl.ConfEntry, 0, len(keys)+len(kwargs))
	for _, k := range keys {
		entries = append(entries, ctl.ConfEntry{Key: k})
	}
	return t.confCommand(thread, b, entries, kwargs, (*ctl.Conn).ResetConf)
}

// confCommand sends SETCONF or RESETCONF with entries and the keyword
// arguments' entries after them.
func (t *torMod) confCommand(thread *starlark.Thread, b *starlark.Builtin, entries []ctl.ConfEntry, kwargs []starlark.Tuple,
	send func(*ctl.Conn, context.Context, ...ctl.ConfEntry) error) (starlark.Value, error) {
	kw, err := kwargEntries(kwargs)
	if err != nil {
		return nil, failed(b, err)
	}
	entries = append(entries, kw...)
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s: no options given", b.Name())
	}
	c, err := t.conn(b)
	if err != nil {
		return nil, err
	}
	if err := send(c, Context(thread), entries...); err != nil {
		return nil, failed(b, err)
	}
	return starlark.None, nil
}

const docSaveConf = `save_conf(force=False)
SAVECONF: makes tor write its configuration to its torrc. Tor refuses (551)
when the torrc uses %include, unless force is set.`

func (t *torMod) saveConf(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var force bool
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "force?", &force); err != nil {
		return nil, err
	}
	return t.okCommand(thread, b, func(c *ctl.Conn, ctx context.Context) error {
		return c.SaveConf(ctx, force)
	})
}

const docLoadConf = `load_conf(text)
LOADCONF: makes tor load text as the whole of its torrc, as if it had read
it from disk: options it does not name go back to their defaults.`

func (t *torMod) loadConf(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var text string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "text", &text); err != nil {
		return nil, err
	}
	return t.okCommand(thread, b, func(c *ctl.Conn, ctx context.Context) error {
		return c.LoadConf(ctx, text)
	})
}

// dedupFold drops keys equal, without regard to case, to an earlier one.
func dedupFold(keys []string) []string {
	out := keys[:0:0]
next:
	for _, k := range keys {
		for _, o := range out {
			if strings.EqualFold(k, o) {
				continue next
			}
		}
		out = append(out, k)
	}
	return out
}

// groupConf splits a GETCONF answer into the lines of each key asked. Tor
// answers the keys in order, with its own spelling of each; the lines of a
// virtual key (HiddenServiceOptions) have other keys and stay with it.
func groupConf(keys []string, entries ctl.ConfEntries) [][]ctl.ConfEntry {
	// A key no line has is virtual: the lines with keys not asked for
	// are its.
	virtual := make([]bool, len(keys))
	for i, k := range keys {
		virtual[i] = true
		for _, e := range entries {
			if strings.EqualFold(e.Key, k) {
				virtual[i] = false
				break
			}
		}
	}
	groups := make([][]ctl.ConfEntry, len(keys))
	cur := 0
	for _, e := range entries {
		if !strings.EqualFold(e.Key, keys[cur]) {
			next := -1
			for j := cur + 1; j < len(keys) && next < 0; j++ {
				if strings.EqualFold(e.Key, keys[j]) {
					next = j
				}
			}
			for j := cur; j < len(keys) && next < 0; j++ {
				if virtual[j] {
					next = j
				}
			}
			if next >= 0 {
				cur = next
			}
		}
		groups[cur] = append(groups[cur], e)
	}
	return groups
}

// confValue is the value get_conf returns for the lines of one key.
func confValue(key string, lines []ctl.ConfEntry) starlark.Value {
	one := func(e ctl.ConfEntry) starlark.Value {
		if e.NoValue {
			return starlark.None
		}
		return starlark.String(e.Value)
	}
	for _, e := range lines {
		if !strings.EqualFold(e.Key, key) {
			l := make([]starlark.Value, len(lines))
			for i, e := range lines {
				l[i] = starlark.Tuple{starlark.String(e.Key), one(e)}
			}
			return starlark.NewList(l)
		}
	}
	switch len(lines) {
	case 0:
		return starlark.None
	case 1:
		return one(lines[0])
	}
	l := make([]starlark.Value, len(lines))
	for i, e := range lines {
		l[i] = one(e)
	}
	return starlark.NewList(l)
}

func kwargEntries(kwargs []starlark.Tuple) ([]ctl.ConfEntry, error) {
	var entries []ctl.ConfEntry
	for _, kv := range kwargs {
		e, err := confEntries(string(kv[0].(starlark.String)), kv[1])
		if err != nil {
			return nil, err
		}
		entries = append(entries, e...)
	}
	return entries, nil
}

// confEntries turns key=v into configuration lines: one for a scalar, one
// per element for a list, and the bare key for None, "" or [].
func confEntries(key string, v starlark.Value) ([]ctl.ConfEntry, error) {
	if v == starlark.None {
		return []ctl.ConfEntry{{Key: key}}, nil
	}
	switch v.(type) {
	case *starlark.List, starlark.Tuple:
		var entries []ctl.ConfEntry
		err := forEach(v.(starlark.Iterable), func(i int, x starlark.Value) error {
			s, err := confString(x)
			if err != nil {
				return fmt.Errorf("%s[%d]: %w", key, i, err)
			}
			entries = append(entries, ctl.ConfEntry{Key: key, Value: s})
			return nil
		})
		if len(entries) == 0 && err == nil {
			entries = []ctl.ConfEntry{{Key: key}}
		}
		return entries, err
	}
	s, err := confString(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return []ctl.ConfEntry{{Key: key, Value: s}}, nil
}

// confString writes one configuration value as tor reads it.
func confString(v starlark.Value) (string, error) {
	switch v := v.(type) {
	case starlark.String:
		return string(v), nil
	case starlark.Bool:
		if v {
			return "1", nil
		}
		return "0", nil
	case starlark.Int:
		return v.String(), nil
	case starlark.Float:
		return strconv.FormatFloat(float64(v), 'f', -1, 64), nil
	case startime.Duration:
		d := time.Duration(v)
		if d%time.Second == 0 {
			return strconv.FormatInt(int64(d/time.Second), 10) + " seconds", nil
		}
		return strconv.FormatInt(d.Milliseconds(), 10) + " msec", nil
	}
	return "", fmt.Errorf("got %s, want a str, int, bool, time.duration, None, or a list of them", v.Type())
}
