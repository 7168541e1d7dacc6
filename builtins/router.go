package builtins

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Router is a tor.router value: a relay as tor knows it, from the
// consensus and, where tor has it, the relay's server descriptor. Its
// fields are the consensus entry's (nickname, fingerprint, flags, version,
// bandwidth, unmeasured, ...) and:
//
//	exit_policy          the full policy ("accept 127.0.0.0/8:*, reject *:*")
//	                     where tor has the descriptor, else the summary
//	exit_policy_summary  the consensus summary ("reject 1-65535")
//	descriptor           the server descriptor (platform, uptime, family,
//	                     ...), or None
//	platform, uptime, family   from the descriptor, or "", None, ()
//	can_exit_to(address, port, strict=False)
type Router struct {
	R *ctl.Relay
	// rejectInternal is the client's ClientRejectInternalAddresses, which
	// tor applies to a summary.
	rejectInternal bool
}

// NewRouter is the Starlark value of r.
func NewRouter(r *ctl.Relay, rejectInternal bool) *Router {
	return &Router{R: r, rejectInternal: rejectInternal}
}

// fields is the relay's fields as a Struct, made for each read (on the
// stack): tor.routers() makes thousands of Routers at once, and each is
// then only its relay and a flag.
func (r *Router) fields() Struct {
	return Struct{name: "tor.router", v: reflect.ValueOf(r.R).Elem(), info: relayInfo()}
}

// relayInfo is ctl.Relay's field table.
var relayInfo = sync.OnceValue(func() *structInfo { return infoOf(reflect.TypeFor[ctl.Relay](), false) })

var routerExtra = []string{"can_exit_to", "exit_policy_summary", "family", "platform", "uptime"}

func (r *Router) String() string {
	s := r.fields()
	return s.String()
}
func (r *Router) Type() string         { return "tor.router" }
func (r *Router) Freeze()              {}
func (r *Router) Truth() starlark.Bool { return true }
func (r *Router) Hash() (uint32, error) {
	return 0, fmt.Errorf("unhashable type: %s", r.Type())
}

func (r *Router) AttrNames() []string {
	s := r.fields()
	names := append(append([]string(nil), s.AttrNames()...), routerExtra...)
	return uniqueSorted(names)
}

func (r *Router) Attr(name string) (starlark.Value, error) {
	d := r.R.Descriptor
	switch name {
	case "can_exit_to":
		return starlark.NewBuiltin("can_exit_to", r.canExitTo), nil
	case "exit_policy":
		if d != nil {
			return starlark.String(strings.ReplaceAll(d.ExitPolicy.String(), "\n", ", ")), nil
		}
		return starlark.String(r.R.ExitPolicy.String()), nil
	case "exit_policy_summary":
		return starlark.String(r.R.ExitPolicy.String()), nil
	case "platform":
		if d != nil {
			return starlark.String(d.Platform), nil
		}
		return starlark.String(""), nil
	case "uptime":
		if d != nil {
			return toValue(reflect.ValueOf(d.Uptime)), nil
		}
		return starlark.None, nil
	case "family":
		if d != nil {
			return stringTuple(d.Family), nil
		}
		return starlark.Tuple{}, nil
	}
	s := r.fields()
	return s.Attr(name)
}

// canExitTo is r.can_exit_to(address, port, strict=False): whether the
// relay's exit policy lets a stream to address:port out, by its full policy
// where tor has the relay's descriptor, by the consensus summary otherwise.
// A summary does not list the addresses a relay refuses, so it answers only
// "probably"; strict=True answers True only when it is certain. address is
// an IP address or a hostname (whose address is not known yet).
func (r *Router) canExitTo(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	address, port, strict, err := unpackDestination(b, args, kwargs)
	if err != nil {
		return nil, err
	}
	ok, err := r.R.CanExitTo(address, port, strict, r.rejectInternal)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return starlark.Bool(ok), nil
}

// unpackDestination reads can_exit_to's and exits_to's arguments:
// address, port (1-65535) and strict=False.
func unpackDestination(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (address string, port int, strict bool, err error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "address", &address, "port", &port, "strict?", &strict); err != nil {
		return "", 0, false, err
	}
	if port < 1 || port > 65535 {
		return "", 0, false, fmt.Errorf("%s: port %d out of range 1-65535", b.Name(), port)
	}
	return address, port, strict, nil
}

func uniqueSorted(xs []string) []string {
	seen := map[string]bool{}
	out := xs[:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	sort.Strings(out)
	return out
}

// RouterSetValue is a tor.router_set: relays named as tor's options name
// them (ExcludeNodes, ExitNodes, ...), read as tor reads them.
type RouterSetValue struct {
	S    ctl.RouterSet
	spec string
}

func (s *RouterSetValue) String() string       { return fmt.Sprintf("tor.router_set(%q)", s.spec) }
func (s *RouterSetValue) Type() string         { return "tor.router_set" }
func (s *RouterSetValue) Freeze()              {}
func (s *RouterSetValue) Truth() starlark.Bool { return !starlark.Bool(s.S.Empty()) }
func (s *RouterSetValue) Hash() (uint32, error) {
	return 0, fmt.Errorf("unhashable type: tor.router_set")
}

// Binary is "router in set".
func (s *RouterSetValue) Binary(op syntax.Token, y starlark.Value, side starlark.Side) (starlark.Value, error) {
	if op != syntax.IN || side != starlark.Right {
		return nil, nil
	}
	r, ok := y.(*Router)
	if !ok {
		return nil, fmt.Errorf("in tor.router_set: got %s, want a tor.router", y.Type())
	}
	return starlark.Bool(s.S.Contains(r.R)), nil
}

const docRouterSet = `router_set(spec) -> tor.router_set
Relays named as tor's options name them (ExcludeNodes, ExcludeExitNodes,
ExitNodes, EntryNodes), read as tor reads them: comma-separated
fingerprints ("$FP", "$FP~nick"), nicknames (any case), countries ("{de}",
by tor's GeoIP) and address patterns ("10.0.0.0/8", "[2001:db8::]/32",
"1.2.3.4:9001", "*"). "router in set" tests a tor.router; the set is false
when it names nothing. An entry tor would refuse is an error.
  excluded = tor.router_set(tor.get_conf("ExcludeNodes") or "")
  usable = [r for r in tor.routers() if r not in excluded]`

func (t *torMod) routerSet(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var spec string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "spec", &spec); err != nil {
		return nil, err
	}
	s, err := ctl.ParseRouterSet(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return &RouterSetValue{S: s, spec: spec}, nil
}
