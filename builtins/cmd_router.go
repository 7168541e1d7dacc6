package builtins

import (
	"context"
	"fmt"
	"strings"

	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

// statusList is the builtin for a GETINFO answer of one item a line. The
// ctl parsers return the items they could read with an error naming the
// first they could not; that error is dropped, so that one entry a later
// tor writes differently does not hide the others. A failed command
// returns no slice at all and is raised.
func statusList[T any](t *torMod, thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple, name string, get func(*ctl.Conn, context.Context) ([]T, error)) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	c, err := t.conn(b)
	if err != nil {
		return nil, err
	}
	xs, err := get(c, Context(thread))
	if err != nil && xs == nil {
		return nil, failed(b, err)
	}
	return list(xs, func(x *T) starlark.Value { return NewStruct(name, x) }), nil
}

const docRouters = `routers() -> list of tor.router
Every relay of the consensus (GETINFO ns/all), as tor.router values:
.nickname, .fingerprint, .address, .or_port, .dir_port, .flags ("Exit",
"Guard", "Fast", "Stable", "Running", ...), .bandwidth, .measured,
.exit_policy ("accept 80,443"), .version, .protocols, .published, ...
  exits = [r for r in tor.routers() if "Exit" in r.flags]
str(hop) or "$" + r.fingerprint names a relay for extend_circuit.`

func (t *torMod) routers(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return statusList(t, thread, b, args, kwargs, "tor.router", (*ctl.Conn).RouterStatuses)
}

const docRouter = `router(relay) -> tor.router or None
Tor's view of one relay (GETINFO ns/id/... or ns/name/...): relay is a
fingerprint (with or without "$"), a nickname or a tor.hop. None when tor
does not know it.`

func (t *torMod) router(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var relay starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "relay", &relay); err != nil {
		return nil, err
	}
	spec, err := relaySpec(relay)
	if err != nil {
		return nil, failed(b, err)
	}
	hop, err := ctl.ParseServerSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %q is not a relay fingerprint or nickname", b.Name(), spec)
	}
	c, err := t.conn(b)
	if err != nil {
		return nil, err
	}
	var rs *ctl.RouterStatus
	if hop.Fingerprint != "" {
		rs, err = c.RouterStatusByID(Context(thread), hop.Fingerprint)
	} else {
		rs, err = c.RouterStatusByName(Context(thread), hop.Nickname)
	}
	if ctl.ErrorCode(err) == ctl.CodeUnrecognized {
		return starlark.None, nil
	}
	if err != nil {
		return nil, failed(b, err)
	}
	return NewStruct("tor.router", rs), nil
}

const docORConns = `or_conns() -> list of tor.orconn
Tor's connections to relays (GETINFO orconn-status): .target, .relay (a
tor.hop), .address, .status ("CONNECTED", "LAUNCHED", ...).`

func (t *torMod) orConns(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return statusList(t, thread, b, args, kwargs, "tor.orconn", (*ctl.Conn).ORConns)
}

const docEntryGuards = `entry_guards() -> list of tor.entry_guard
Tor's entry guards (GETINFO entry-guards): .name, .relay (a tor.hop),
.status ("up", "never-connected", "down", "unusable", "unlisted"), .since.`

func (t *torMod) entryGuards(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return statusList(t, thread, b, args, kwargs, "tor.entry_guard", (*ctl.Conn).EntryGuards)
}

const docAddressMappings = `address_mappings(which="all") -> list of tor.address_mapping
Tor's address map (GETINFO address-mappings/...): .from_, .to, .expires (a
time, or None), .never. which is "all", "config" (MapAddress lines of the
torrc), "cache" (DNS answers) or "control" (map_address).`

func (t *torMod) addressMappings(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	which := "all"
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "which?", &which); err != nil {
		return nil, err
	}
	which = strings.ToLower(which)
	return statusList(t, thread, b, nil, nil, "tor.address_mapping", func(c *ctl.Conn, ctx context.Context) ([]ctl.AddressMapping, error) {
		return c.AddressMappings(ctx, which)
	})
}
