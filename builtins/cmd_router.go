package builtins

import (
	"context"
	"fmt"
	"slices"
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
Every relay of the consensus tor uses, as tor.router values: .nickname,
.fingerprint, .address, .or_port, .dir_port, .or_addresses, .flags ("Exit",
"Guard", "Fast", "Stable", "Running", ...), .version, .bandwidth,
.measured, .unmeasured, .protocols, .published, .country (tor's GeoIP,
"" when unknown); from the relay's server
descriptor where tor has it: .exit_policy (the full policy, else the
summary), .platform, .uptime, .family (declared), .effective_family (the
relays that declare it back), .descriptor; and
.can_exit_to(address, port, strict=False): by the full policy where tor
has it, else by the summary, which says only "probably" (strict=True
answers True only when it is certain).
  exits = [r for r in tor.routers() if r.can_exit_to("example.com", 443)]
The table is read from tor once and again only after tor says it changed
(NEWCONSENSUS, NS, NEWDESC). str(hop) or "$" + r.fingerprint names a relay
for extend_circuit.`

// relays is the host's router table as tor.router values.
func (t *torMod) relays(thread *starlark.Thread, b *starlark.Builtin) ([]ctl.Relay, bool, error) {
	rs, rejectInternal, err := t.h.Relays(Context(thread))
	if err != nil {
		return nil, false, failed(b, err)
	}
	return rs, rejectInternal, nil
}

func (t *torMod) routers(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	rs, ri, err := t.relays(thread, b)
	if err != nil {
		return nil, err
	}
	return starlark.NewList(slices.Clone(t.routerValues(rs, ri))), nil
}

// routerValues is the tor.router values of rs, made once for each table
// the host gives (it gives the same slice until tor's relays change).
func (t *torMod) routerValues(rs []ctl.Relay, rejectInternal bool) []starlark.Value {
	c := &t.routerCache
	if len(rs) > 0 && c.first == &rs[0] && c.n == len(rs) && c.rejectInternal == rejectInternal {
		return c.vals
	}
	// Made in two blocks, not an allocation a relay: thousands of them
	// are written into fresh memory.
	vals := ctl.MakePrefaulted[starlark.Value](len(rs))
	routers := ctl.MakePrefaulted[Router](len(rs))
	for i := range rs {
		routers[i] = Router{R: &rs[i], rejectInternal: rejectInternal}
		vals[i] = &routers[i]
	}
	if len(rs) > 0 {
		*c = routerCache{first: &rs[0], n: len(rs), rejectInternal: rejectInternal, vals: vals}
	}
	return vals
}

// routerCache is the values routerValues made last.
type routerCache struct {
	first          *ctl.Relay
	n              int
	rejectInternal bool
	vals           []starlark.Value
}

const docRouter = `router(relay) -> tor.router or None
One relay of tor.routers(): relay is a fingerprint (with or without "$"),
a nickname or a tor.hop. None when the consensus does not list it.`

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
	rs, ri, err := t.relays(thread, b)
	if err != nil {
		return nil, err
	}
	vals := t.routerValues(rs, ri)
	for i := range rs {
		r := &rs[i]
		if hop.Fingerprint != "" && strings.EqualFold(strings.TrimPrefix(hop.Fingerprint, "$"), r.Fingerprint) ||
			hop.Fingerprint == "" && hop.Nickname == r.Nickname {
			return vals[i], nil
		}
	}
	return starlark.None, nil
}

const docExitsTo = `exits_to(address, port, strict=False) -> list of tor.router
The running relays (without the BadExit flag) whose exit policy lets a
stream to address:port out, as r.can_exit_to(address, port, strict) says:
by the full policy where tor has the descriptor, else the summary.
  tor.exits_to("127.0.0.1", 8080)`

func (t *torMod) exitsTo(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	address, port, strict, err := unpackDestination(b, args, kwargs)
	if err != nil {
		return nil, err
	}
	rs, ri, err := t.relays(thread, b)
	if err != nil {
		return nil, err
	}
	var out []starlark.Value
	for i := range rs {
		r := &rs[i]
		if !r.HasFlag("Running") || r.HasFlag("BadExit") {
			continue
		}
		ok, err := r.CanExitTo(address, port, strict, ri)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		if ok {
			out = append(out, t.routerValues(rs, ri)[i])
		}
	}
	return starlark.NewList(out), nil
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
