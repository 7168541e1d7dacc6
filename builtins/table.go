package builtins

import (
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// The tor module is registered from one table: each entry says all there
// is to know about one member (its docstring, the grant it needs, how the
// REPL completes its arguments, the method that runs it). The runtime's
// grants, torscript check and the REPL read the same entries through
// Entries and Lookup, so that an alias cannot drift from its target.

// Entry is one member of the tor module.
type Entry struct {
	// Name is the member's name, without "tor.".
	Name string
	// Doc is its docstring; its first line is the signature.
	Doc string
	// Grant is what a call needs from the user (torscript run --allow).
	Grant Grant
	// Complete is how the REPL completes its arguments.
	Complete Completion
	// AliasOf names the entry an alias stands for ("get_info" for
	// getinfo); the alias has its target's value, grant and completion.
	AliasOf string

	fn    method                       // a function member
	value func(*torMod) starlark.Value // a member that is a value
}

// method is a builtin of the tor module, as a method expression
// ((*torMod).attachStream).
type method func(t *torMod, thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error)

// torMod is the receiver of the tor module's builtins.
type torMod struct {
	h           Host
	routerCache routerCache
}

// GrantKind says how the grant a builtin needs is decided.
type GrantKind int

const (
	grantUnset    GrantKind = iota // an entry that forgot to say (TestTable fails)
	GrantNone                      // never needs a grant
	GrantCommand                   // always needs Grant.Command ("SAVECONF")
	GrantSignal                    // SIGNAL:HALT, SIGNAL:SHUTDOWN or SIGNAL:DUMP, by the signal sent
	GrantOnionKey                  // ADD_ONION:KEY when given a key of the script's
	GrantConfKeys                  // SETCONF:Key for each key set that the script did not declare
	GrantLine                      // whatever the command line it sends needs (tor.raw)
)

// Grant is what a builtin needs from the user.
type Grant struct {
	Kind GrantKind
	// Command is the grant of a GrantCommand builtin.
	Command string
}

// ArgDecides reports whether the grant depends on the arguments of the
// call, so that a use other than a call cannot be judged without running.
func (g Grant) ArgDecides() bool {
	switch g.Kind {
	case GrantSignal, GrantOnionKey, GrantConfKeys, GrantLine:
		return true
	}
	return false
}

// String says what the grant is, as torscript check reports it.
func (g Grant) String() string {
	switch g.Kind {
	case GrantNone:
		return "none"
	case GrantCommand:
		return g.Command
	case GrantSignal:
		return "SIGNAL:HALT/SHUTDOWN/DUMP for those signals"
	case GrantOnionKey:
		return "ADD_ONION:KEY with a key"
	case GrantConfKeys:
		return "SETCONF:Key for undeclared keys"
	case GrantLine:
		return "as the command sent"
	}
	return "unset"
}

var (
	noGrant    = Grant{Kind: GrantNone}
	confGrant  = Grant{Kind: GrantConfKeys}
	noComplete = Completion{Rest: ArgNone, Keywords: ArgNone}
)

// grantOf is the grant of a builtin that always needs grant cmd.
func grantOf(cmd string) Grant { return Grant{Kind: GrantCommand, Command: cmd} }

// Arg is what an argument of a builtin completes as in the REPL.
type Arg int

const (
	argUnset     Arg = iota // an entry that forgot to say (TestTable fails)
	ArgNone                 // nothing to complete
	ArgInfoKey              // a GETINFO key (GETINFO info/names)
	ArgConfigKey            // a configuration option (GETINFO config/names)
	ArgEvent                // an event name, as tor.on takes it ("circ")
	ArgSignal               // a signal name (GETINFO signal/names)
	ArgCircuit              // the id of a live circuit
	ArgStream               // the id of a live stream
)

// Completion says how the REPL completes the arguments of a builtin.
type Completion struct {
	// Args are the positional arguments, in order.
	Args []Arg
	// Rest is what positional arguments after Args complete as (*keys).
	Rest Arg
	// Keywords is what the names of keyword arguments complete as:
	// ArgConfigKey for set_conf(ExitNodes=...).
	Keywords Arg
}

// Arg is what positional argument i (0 for the first) completes as.
func (c Completion) Arg(i int) Arg {
	if i >= 0 && i < len(c.Args) {
		return c.Args[i]
	}
	return c.Rest
}

// args is the completion of a builtin whose positional arguments
// complete as as, and nothing else.
func args(as ...Arg) Completion {
	return Completion{Args: as, Rest: ArgNone, Keywords: ArgNone}
}

// varargs is the completion of a builtin whose every positional argument
// completes as a.
func varargs(a Arg) Completion {
	return Completion{Rest: a, Keywords: ArgNone}
}

// table registers the tor module: one entry a member, aliases after their
// targets.
var table = []Entry{
	// Handlers, timers, the policy and its decisions, the live state.
	{Name: "on", Doc: docOn, Grant: noGrant, Complete: args(ArgEvent), fn: (*torMod).on},
	{Name: "off", Doc: docOff, Grant: noGrant, Complete: args(ArgEvent), fn: (*torMod).off},
	{Name: "require", Doc: docRequire, Grant: noGrant, Complete: noComplete, fn: (*torMod).require},
	{Name: "at_exit", Doc: docAtExit, Grant: noGrant, Complete: noComplete, fn: (*torMod).atExit},
	{Name: "instance", Doc: docInstance, Grant: noGrant, Complete: noComplete, value: instanceValue},
	{Name: "metrics", Doc: docMetrics, Grant: noGrant, Complete: noComplete, value: metricsModule},
	{Name: "events", Doc: docEvents, Grant: noGrant, Complete: noComplete, value: func(*torMod) starlark.Value { return eventNames() }},
	{Name: "every", Doc: docEvery, Grant: noGrant, Complete: noComplete, fn: (*torMod).every},
	{Name: "after", Doc: docAfter, Grant: noGrant, Complete: noComplete, fn: (*torMod).after},
	{Name: "policy", Doc: docPolicy, Grant: noGrant, Complete: noComplete, fn: (*torMod).policy},
	{Name: "attach", Doc: docAttach, Grant: noGrant, Complete: args(ArgCircuit), fn: (*torMod).attach},
	{Name: "close", Doc: docClose, Grant: noGrant, Complete: noComplete, fn: (*torMod).close},
	{Name: "redirect", Doc: docRedirect, Grant: noGrant, Complete: noComplete, fn: (*torMod).redirect},
	{Name: "hold", Doc: docHold, Grant: noGrant, Complete: noComplete, fn: (*torMod).hold},
	{Name: "circuits", Doc: docCircuits, Grant: noGrant, Complete: noComplete, fn: (*torMod).circuits},
	{Name: "circuit", Doc: docCircuit, Grant: noGrant, Complete: args(ArgCircuit), fn: (*torMod).circuit},
	{Name: "streams", Doc: docStreams, Grant: noGrant, Complete: noComplete, fn: (*torMod).streams},

	// Control commands: every one but SETEVENTS, AUTHENTICATE,
	// AUTHCHALLENGE and QUIT, which belong to the runtime.
	{Name: "get_info", Doc: docGetInfo, Grant: noGrant, Complete: varargs(ArgInfoKey), fn: (*torMod).getInfo},
	{Name: "get_conf", Doc: docGetConf, Grant: noGrant, Complete: varargs(ArgConfigKey), fn: (*torMod).getConf},
	{Name: "set_conf", Doc: docSetConf, Grant: confGrant, Complete: Completion{Args: []Arg{ArgConfigKey}, Rest: ArgNone, Keywords: ArgConfigKey}, fn: (*torMod).setConf},
	{Name: "reset_conf", Doc: docResetConf, Grant: confGrant, Complete: Completion{Rest: ArgConfigKey, Keywords: ArgConfigKey}, fn: (*torMod).resetConf},
	{Name: "save_conf", Doc: docSaveConf, Grant: grantOf("SAVECONF"), Complete: noComplete, fn: (*torMod).saveConf},
	{Name: "load_conf", Doc: docLoadConf, Grant: grantOf("LOADCONF"), Complete: noComplete, fn: (*torMod).loadConf},
	{Name: "extend_circuit", Doc: docExtendCircuit, Grant: noGrant, Complete: args(ArgNone, ArgNone, ArgCircuit), fn: (*torMod).extendCircuit},
	{Name: "close_circuit", Doc: docCloseCircuit, Grant: noGrant, Complete: args(ArgCircuit), fn: (*torMod).closeCircuit},
	{Name: "set_circuit_purpose", Doc: docSetCircuitPurpose, Grant: noGrant, Complete: args(ArgCircuit), fn: (*torMod).setCircuitPurpose},
	{Name: "set_router_purpose", Doc: docSetRouterPurpose, Grant: noGrant, Complete: noComplete, fn: (*torMod).setRouterPurpose},
	{Name: "attach_stream", Doc: docAttachStream, Grant: noGrant, Complete: args(ArgStream, ArgCircuit), fn: (*torMod).attachStream},
	{Name: "redirect_stream", Doc: docRedirectStream, Grant: noGrant, Complete: args(ArgStream), fn: (*torMod).redirectStream},
	{Name: "close_stream", Doc: docCloseStream, Grant: noGrant, Complete: args(ArgStream), fn: (*torMod).closeStream},
	{Name: "resolve", Doc: docResolve, Grant: noGrant, Complete: noComplete, fn: (*torMod).resolve},
	{Name: "signal", Doc: signalDoc(), Grant: Grant{Kind: GrantSignal}, Complete: args(ArgSignal), fn: (*torMod).signal},
	{Name: "map_address", Doc: docMapAddress, Grant: noGrant, Complete: noComplete, fn: (*torMod).mapAddress},
	{Name: "post_descriptor", Doc: docPostDescriptor, Grant: grantOf("POSTDESCRIPTOR"), Complete: noComplete, fn: (*torMod).postDescriptor},
	{Name: "use_feature", Doc: docUseFeature, Grant: noGrant, Complete: noComplete, fn: (*torMod).useFeature},
	{Name: "take_ownership", Doc: docTakeOwnership, Grant: grantOf("TAKEOWNERSHIP"), Complete: noComplete, fn: (*torMod).takeOwnership},
	{Name: "drop_ownership", Doc: docDropOwnership, Grant: noGrant, Complete: noComplete, fn: (*torMod).dropOwnership},
	{Name: "drop_guards", Doc: docDropGuards, Grant: grantOf("DROPGUARDS"), Complete: noComplete, fn: (*torMod).dropGuards},
	{Name: "drop_timeouts", Doc: docDropTimeouts, Grant: grantOf("DROPTIMEOUTS"), Complete: noComplete, fn: (*torMod).dropTimeouts},
	{Name: "protocol_info", Doc: docProtocolInfo, Grant: noGrant, Complete: noComplete, fn: (*torMod).protocolInfo},
	{Name: "raw", Doc: docRaw, Grant: Grant{Kind: GrantLine}, Complete: noComplete, fn: (*torMod).raw},
	{Name: "add_onion", Doc: docAddOnion, Grant: Grant{Kind: GrantOnionKey}, Complete: noComplete, fn: (*torMod).addOnion},
	{Name: "del_onion", Doc: docDelOnion, Grant: noGrant, Complete: noComplete, fn: (*torMod).delOnion},
	{Name: "hs_fetch", Doc: docHsFetch, Grant: noGrant, Complete: noComplete, fn: (*torMod).hsFetch},
	{Name: "hs_post", Doc: docHsPost, Grant: noGrant, Complete: noComplete, fn: (*torMod).hsPost},
	{Name: "onion_client_auth_add", Doc: docOnionClientAuthAdd, Grant: noGrant, Complete: noComplete, fn: (*torMod).onionClientAuthAdd},
	{Name: "onion_client_auth_remove", Doc: docOnionClientAuthRemove, Grant: noGrant, Complete: noComplete, fn: (*torMod).onionClientAuthRemove},
	{Name: "onion_client_auth_view", Doc: docOnionClientAuthView, Grant: noGrant, Complete: noComplete, fn: (*torMod).onionClientAuthView},
	{Name: "fetch", Doc: docFetch, Grant: grantOf("net"), Complete: noComplete, fn: (*torMod).fetch},
	{Name: "connect", Doc: docConnect, Grant: grantOf("net"), Complete: noComplete, fn: (*torMod).connect},
	{Name: "routers", Doc: docRouters, Grant: noGrant, Complete: noComplete, fn: (*torMod).routers},
	{Name: "router", Doc: docRouter, Grant: noGrant, Complete: noComplete, fn: (*torMod).router},
	{Name: "exits_to", Doc: docExitsTo, Grant: noGrant, Complete: noComplete, fn: (*torMod).exitsTo},
	{Name: "version", Doc: docVersion, Grant: noGrant, Complete: noComplete, value: func(t *torMod) starlark.Value { return &Version{h: t.h} }},
	{Name: "parse_version", Doc: docParseVersion, Grant: noGrant, Complete: noComplete, fn: (*torMod).parseVersion},
	{Name: "status", Doc: docStatus, Grant: noGrant, Complete: noComplete, fn: (*torMod).status},
	{Name: "router_set", Doc: docRouterSet, Grant: noGrant, Complete: noComplete, fn: (*torMod).routerSet},
	{Name: "or_conns", Doc: docORConns, Grant: noGrant, Complete: noComplete, fn: (*torMod).orConns},
	{Name: "entry_guards", Doc: docEntryGuards, Grant: noGrant, Complete: noComplete, fn: (*torMod).entryGuards},
	{Name: "address_mappings", Doc: docAddressMappings, Grant: noGrant, Complete: noComplete, fn: (*torMod).addressMappings},

	// stem's and tor-prompt's names for the commands used most at a prompt.
	{Name: "getinfo", AliasOf: "get_info"},
	{Name: "getconf", AliasOf: "get_conf"},
	{Name: "setconf", AliasOf: "set_conf"},
	{Name: "resetconf", AliasOf: "reset_conf"},
}

// Entries returns every member of the tor module in the table's order,
// aliases with their targets' docstring (under their own name), grant and
// completion.
func Entries() []Entry {
	out := make([]Entry, len(table))
	for i, e := range table {
		out[i] = resolveAlias(e)
	}
	return out
}

// Lookup returns the entry of the tor module's member name ("attach_stream",
// "getinfo"; without "tor."), an alias resolved as by Entries.
func Lookup(name string) (Entry, bool) {
	for _, e := range table {
		if e.Name == name {
			return resolveAlias(e), true
		}
	}
	return Entry{}, false
}

// resolveAlias gives an alias its target's facts; other entries are
// returned as they are.
func resolveAlias(e Entry) Entry {
	if e.AliasOf == "" {
		return e
	}
	for _, target := range table {
		if target.Name == e.AliasOf && target.AliasOf == "" {
			first, rest, _ := strings.Cut(strings.TrimSpace(target.Doc), "\n")
			e.Doc = e.Name + strings.TrimPrefix(first, target.Name) + "\nThe same as tor." + target.Name + ", by the name stem and tor-prompt use.\n" + rest
			e.Grant, e.Complete, e.fn, e.value = target.Grant, target.Complete, target.fn, target.value
			return e
		}
	}
	panic("builtins: alias tor." + e.Name + " of unknown tor." + e.AliasOf)
}

// Docs maps the qualified name of every builtin ("tor.attach_stream") to
// its docstring, for help().
type Docs map[string]string

// Tor is the tor module and the docstrings of its members.
type Tor struct {
	Module *starlarkstruct.Module
	Docs   Docs
}

// NewTor builds the tor module around h, from the table. An alias is the
// same value as its target, so that help(tor.getinfo) describes get_info.
func NewTor(h Host) *Tor {
	t := &torMod{h: h}
	members := starlark.StringDict{}
	docs := Docs{"tor": torOverview}
	for _, e := range Entries() {
		if _, dup := members[e.Name]; dup {
			panic("builtins: duplicate member tor." + e.Name)
		}
		switch {
		case e.AliasOf != "":
			members[e.Name] = members[e.AliasOf]
		case e.fn != nil:
			fn := e.fn
			members[e.Name] = starlark.NewBuiltin("tor."+e.Name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
				return fn(t, thread, b, args, kwargs)
			})
		default:
			members[e.Name] = e.value(t)
		}
		docs["tor."+e.Name] = strings.TrimSpace(e.Doc)
	}
	return &Tor{Module: &starlarkstruct.Module{Name: "tor", Members: members}, Docs: docs}
}

// The argument types of the builtins, checked to be unpackers.
var (
	_ starlark.Unpacker = (*Duration)(nil)
	_ starlark.Unpacker = (*CircuitID)(nil)
	_ starlark.Unpacker = (*StreamID)(nil)
	_ starlark.Unpacker = (*RelayEndReason)(nil)
	_ starlark.Unpacker = (*stringList)(nil)
	_ starlark.Unpacker = (*relayList)(nil)
	_ starlark.Unpacker = (*onionAddress)(nil)
	_ starlark.Unpacker = (*onionPorts)(nil)
	_ starlark.Unpacker = (*onionClientAuth)(nil)
)
