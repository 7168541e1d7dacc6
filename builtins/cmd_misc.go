package builtins

import (
	"context"
	"fmt"
	"strings"

	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

// simple is a builtin for a command without arguments.
func (t *torMod) simple(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple, do func(*ctl.Conn, context.Context) error) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	return t.okCommand(thread, b, do)
}

// runtimeCommands are the commands the runtime owns, which tor.raw
// refuses, and why.
var runtimeCommands = map[string]string{
	"SETEVENTS":     "the runtime subscribes to the events tor.on handlers and the policy need; a script's SETEVENTS would strand them",
	"AUTHENTICATE":  "the runtime authenticates",
	"AUTHCHALLENGE": "the runtime authenticates",
	"QUIT":          "the runtime closes the connection when the script ends",
}

// RuntimeCommand says why the command keyword (as ctl.CommandLine.Name
// gives it) is the runtime's to send, or "" when a script may send it.
func RuntimeCommand(keyword string) string { return runtimeCommands[keyword] }

// signalDoc is the docstring of tor.signal, which lists ctl's signals.
func signalDoc() string {
	signals := make([]string, 0, len(ctl.Signals()))
	for _, s := range ctl.Signals() {
		signals = append(signals, string(s))
	}
	return `signal(name)
SIGNAL: sends tor a signal, named in any case: ` + strings.Join(signals, ", ") + `.
  tor.signal("newnym")   # new circuits for new streams
For SHUTDOWN, HALT, INT and TERM tor may hang up instead of answering.`
}

func (t *torMod) signal(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name); err != nil {
		return nil, err
	}
	return t.okCommand(thread, b, func(c *ctl.Conn, ctx context.Context) error {
		return c.Signal(ctx, ctl.Signal(strings.ToUpper(name)))
	})
}

const docMapAddress = `map_address(mapping_or_from, to=None, keep=False) -> dict
MAPADDRESS: sends future connections for an address to another, and
returns a dict of the mappings made, from -> to, as tor answered:
  tor.map_address("www.example.com", "example.org")
  tor.map_address({"a.example": "1.2.3.4", "0.0.0.0": "b.example"})
A null "from" address ("0.0.0.0", "::0" or ".") asks tor to choose an unused
virtual address, which the result gives. Mapping an address to itself
removes its mapping. The mappings are removed when the script ends unless
keep is set. If tor refuses some pairs, the others are still made, and the
error names the refused ones.`

func (t *torMod) mapAddress(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var from starlark.Value
	var to starlark.Value = starlark.None
	var keep bool
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "mapping_or_from", &from, "to?", &to, "keep?", &keep); err != nil {
		return nil, err
	}
	var pairs []ctl.AddrMap
	switch f := from.(type) {
	case *starlark.Dict:
		if to != starlark.None {
			return nil, fmt.Errorf("%s: to given with a dict", b.Name())
		}
		var err error
		if pairs, err = addrMaps(f); err != nil {
			return nil, failed(b, err)
		}
		if len(pairs) == 0 {
			return nil, fmt.Errorf("%s: empty dict", b.Name())
		}
	case starlark.String:
		t, ok := to.(starlark.String)
		if !ok {
			return nil, fmt.Errorf("%s: to: got %s, want string", b.Name(), to.Type())
		}
		pairs = []ctl.AddrMap{{From: string(f), To: string(t)}}
	default:
		return nil, fmt.Errorf("%s: got %s, want a dict or an address", b.Name(), from.Type())
	}
	c, err := t.conn(b)
	if err != nil {
		return nil, err
	}
	made, err := c.MapAddress(Context(thread), pairs...)
	if len(made) > 0 {
		t.h.Mapped(made, keep)
	}
	if err != nil {
		return nil, failed(b, err)
	}
	d := starlark.NewDict(len(made))
	for _, p := range made {
		d.SetKey(starlark.String(p.From), starlark.String(p.To))
	}
	return d, nil
}

const docPostDescriptor = `post_descriptor(descriptor, purpose=None, cache=None) -> (code, message)
POSTDESCRIPTOR: gives tor a router descriptor. purpose is "general" (tor's
default), "controller" or "bridge"; cache True or False, or None to let tor
decide. Returns (250, "OK") when tor added it, and (251, reason) when the
descriptor was well-formed but tor chose not to add it.`

func (t *torMod) postDescriptor(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var desc string
	var opts ctl.PostDescriptorOptions
	var cache starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "descriptor", &desc, "purpose??", &opts.Purpose, "cache?", &cache); err != nil {
		return nil, err
	}
	switch cache {
	case starlark.None:
	case starlark.True:
		opts.Cache = "yes"
	case starlark.False:
		opts.Cache = "no"
	default:
		return nil, fmt.Errorf("%s: cache: got %s, want True, False or None", b.Name(), cache.Type())
	}
	c, err := t.conn(b)
	if err != nil {
		return nil, err
	}
	res, err := c.PostDescriptor(Context(thread), desc, opts)
	if err != nil {
		return nil, failed(b, err)
	}
	return completion(res), nil
}

const docUseFeature = `use_feature(*names)
USEFEATURE: enables control-protocol features for this connection, e.g.
"EXTENDED_EVENTS" or "VERBOSE_NAMES" (current tor always has both).`

func (t *torMod) useFeature(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := noKwargs(b, kwargs); err != nil {
		return nil, err
	}
	names, err := stringArgs(b, args, "feature")
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: want at least one feature", b.Name())
	}
	return t.okCommand(thread, b, func(c *ctl.Conn, ctx context.Context) error {
		return c.UseFeature(ctx, names...)
	})
}

const docTakeOwnership = `take_ownership()
TAKEOWNERSHIP: makes tor exit when torscript's control connection closes.`

func (t *torMod) takeOwnership(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return t.simple(thread, b, args, kwargs, (*ctl.Conn).TakeOwnership)
}

const docDropOwnership = `drop_ownership()
DROPOWNERSHIP: undoes take_ownership.`

func (t *torMod) dropOwnership(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return t.simple(thread, b, args, kwargs, (*ctl.Conn).DropOwnership)
}

const docDropGuards = `drop_guards()
DROPGUARDS: makes tor forget its entry guards and choose new ones.`

func (t *torMod) dropGuards(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return t.simple(thread, b, args, kwargs, (*ctl.Conn).DropGuards)
}

const docDropTimeouts = `drop_timeouts()
DROPTIMEOUTS: makes tor forget the circuit build times it has learned; a
"buildtimeout_set" event with type RESET follows.`

func (t *torMod) dropTimeouts(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return t.simple(thread, b, args, kwargs, (*ctl.Conn).DropTimeouts)
}

const docProtocolInfo = `protocol_info() -> tor.protocol_info
PROTOCOLINFO: .protocol_version, .tor_version, .auth_methods (a tuple),
.cookie_file, and .unknown (lines torscript did not read).`

func (t *torMod) protocolInfo(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	c, err := t.conn(b)
	if err != nil {
		return nil, err
	}
	pi, err := c.ProtocolInfo(Context(thread))
	if err != nil {
		return nil, failed(b, err)
	}
	return NewStruct("tor.protocol_info", pi), nil
}

const docRaw = `raw(command) -> str
Sends a command as you would type it and returns tor's reply as it wrote it
(lines ending in "\n", not CRLF): tor.raw("GETINFO version") is
"250-version=0.4.9.1\n250 OK". A command starting with "+" is multi-line:
its first line is the command and the rest its data. A 4xx or 5xx reply is
an error with tor's code and text. SETEVENTS, AUTHENTICATE, AUTHCHALLENGE
and QUIT are refused: they belong to the runtime.`

func (t *torMod) raw(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var command string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "command", &command); err != nil {
		return nil, err
	}
	// The keyword as tor reads it: "SETEVENTS\tCIRC" is SETEVENTS.
	cl, err := ctl.ParseCommandLine(command)
	if err != nil {
		return nil, fmt.Errorf("%s: refused, nothing sent: %v", b.Name(), err)
	}
	if why, ok := runtimeCommands[cl.Name()]; ok {
		return nil, fmt.Errorf("%s: refused, nothing sent: %s is not for scripts: %s", b.Name(), cl.Name(), why)
	}
	c, err := t.conn(b)
	if err != nil {
		return nil, err
	}
	r, err := c.Raw(Context(thread), command)
	if err != nil {
		return nil, failed(b, err)
	}
	return starlark.String(strings.TrimRight(strings.ReplaceAll(r.String(), "\r\n", "\n"), "\n")), nil
}
