package builtins

import (
	"context"
	"fmt"

	"github.com/torscript/torscript/ctl"

	"go.starlark.net/starlark"
)

// conn is the connection for a builtin, or an error naming it.
func (t *torMod) conn(b *starlark.Builtin) (*ctl.Conn, error) {
	c, err := t.h.Conn()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return c, nil
}

// okCommand sends a command whose only answer is OK, with send (a
// method expression such as (*ctl.Conn).DropGuards, or a closure over the
// arguments), on the control connection, and returns None.
func (t *torMod) okCommand(thread *starlark.Thread, b *starlark.Builtin, send func(c *ctl.Conn, ctx context.Context) error) (starlark.Value, error) {
	c, err := t.conn(b)
	if err != nil {
		return nil, err
	}
	if err := send(c, Context(thread)); err != nil {
		return nil, failed(b, err)
	}
	return starlark.None, nil
}

const docGetInfo = `get_info(key, *keys) -> str or dict
GETINFO: with one key, its value; with several, a dict of key to value.
tor.get_info("version"), tor.get_info("circuit-status", "stream-status").`

func (t *torMod) getInfo(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(kwargs) > 0 {
		return nil, fmt.Errorf("%s: unexpected keyword argument %s", b.Name(), kwargs[0][0])
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("%s: want at least one key", b.Name())
	}
	keys := make([]string, len(args))
	for i, a := range args {
		s, ok := starlark.AsString(a)
		if !ok {
			return nil, fmt.Errorf("%s: key %d: got %s, want string", b.Name(), i+1, a.Type())
		}
		keys[i] = s
	}
	c, err := t.conn(b)
	if err != nil {
		return nil, err
	}
	vals, err := c.GetInfo(Context(thread), keys...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	if len(keys) == 1 {
		return starlark.String(vals[keys[0]]), nil
	}
	d := starlark.NewDict(len(keys))
	for _, k := range keys {
		d.SetKey(starlark.String(k), starlark.String(vals[k]))
	}
	return d, nil
}

const docStatus = `status() -> tor.status
What tor says of itself, typed (one GETINFO, and one more for the
fingerprint and for accounting): .version ("0.4.9.11"), .pid, .uptime (a
duration), .config_file, .traffic_read and .traffic_write (bytes),
.bootstrap (.progress, .tag, .summary, .severity, .warning), .listeners
(a dict of kind, such as "socks" or "control", to the addresses tor
listens on), .fingerprint ("" unless tor is a relay), .accounting (None
unless AccountingMax is set; else .hibernating, .bytes_read,
.bytes_written, .bytes_left_read, .bytes_left_wr, .interval_end).
  st = tor.status()
  print(st.version, st.bootstrap.progress, st.listeners["socks"])`

func (t *torMod) status(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	c, err := t.conn(b)
	if err != nil {
		return nil, err
	}
	st, err := c.Status(Context(thread))
	if st == nil {
		return nil, failed(b, err)
	}
	// A value tor wrote in a way ctl cannot read is left zero rather
	// than hiding the others.
	return NewStruct("tor.status", st), nil
}
