package builtins

import (
	"context"
	"fmt"

	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

const docAttachStream = `attach_stream(stream, circuit=None, hop=0)
ATTACHSTREAM: attaches stream (a stream or its id) to circuit (a built
circuit or its id), with hop (1 is the first hop) as the exit when hop is
given. circuit None hands the stream back to tor, which chooses. The stream
must be waiting for the script: held by a policy (tor.hold()), or new while
__LeaveStreamsUnattached is set. Tor answers 552 for an unknown stream or
circuit, 555 for a stream that is not waiting, 551 when it cannot attach.`

func (t *torMod) attachStream(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var stream StreamID
	circuit := CircuitID("0")
	var hop int
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "stream", &stream, "circuit??", &circuit, "hop?", &hop); err != nil {
		return nil, err
	}
	c, err := t.conn(b)
	if err != nil {
		return nil, err
	}
	if err := c.AttachStream(Context(thread), string(stream), string(circuit), hop); err != nil {
		return nil, failed(b, err)
	}
	t.h.StreamHandled(string(stream))
	return starlark.None, nil
}

const docRedirectStream = `redirect_stream(stream, host, port=None)
REDIRECTSTREAM: changes the destination of stream (a stream or its id) to
host, and port when given. Do it before the stream is attached; it stays
waiting (a policy's tor.redirect decision does both).`

func (t *torMod) redirectStream(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var stream StreamID
	var host string
	var port starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "stream", &stream, "host", &host, "port?", &port); err != nil {
		return nil, err
	}
	var p int
	if port != starlark.None {
		if err := starlark.AsInt(port, &p); err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("%s: port %s: want 1-65535", b.Name(), port)
		}
	}
	return t.okCommand(thread, b, func(c *ctl.Conn, ctx context.Context) error {
		return c.RedirectStream(ctx, string(stream), host, p)
	})
}

const docCloseStream = `close_stream(stream, reason="MISC")
CLOSESTREAM: closes stream (a stream or its id), telling the client why
with a RELAY_END reason, as for tor.close: "MISC", "EXITPOLICY", "DONE",
"TIMEOUT", ... or a number.`

func (t *torMod) closeStream(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var stream StreamID
	reason := RelayEndReason(ctl.RelayEndMisc)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "stream", &stream, "reason?", &reason); err != nil {
		return nil, err
	}
	c, err := t.conn(b)
	if err != nil {
		return nil, err
	}
	if err := c.CloseStream(Context(thread), string(stream), ctl.RelayEndReason(reason)); err != nil {
		return nil, failed(b, err)
	}
	t.h.StreamHandled(string(stream))
	return starlark.None, nil
}

const docResolve = `resolve(name, *names, reverse=False)
RESOLVE: asks tor to look up hostnames, or with reverse the names of IPv4
addresses, through the Tor network. It returns at once; the answers arrive
as "addrmap" events (tor.on("addrmap", fn)), and land in tor's address
map.`

func (t *torMod) resolve(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var reverse bool
	if err := starlark.UnpackArgs(b.Name(), nil, kwargs, "reverse?", &reverse); err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("%s: want at least one name", b.Name())
	}
	names, err := stringArgs(b, args, "name")
	if err != nil {
		return nil, err
	}
	return t.okCommand(thread, b, func(c *ctl.Conn, ctx context.Context) error {
		return c.Resolve(ctx, names, reverse)
	})
}
