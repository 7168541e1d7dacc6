package builtins

import (
	"context"
	"fmt"

	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

const docExtendCircuit = `extend_circuit(path=None, purpose=None, circuit="0") -> str
EXTENDCIRCUIT: builds a new circuit along path, or extends circuit (a
circuit or its id) by it, and returns the circuit's id at once; CIRC events
tell when it is BUILT or FAILED. path is a list of relays: fingerprints
("$9695DFC35FFEB861329B9F1AB04C46397020CE31"), nicknames, tor.hop or
tor.router values. Without a path tor chooses one. purpose is "general"
(tor's default) or "controller" (tor then leaves the circuit to the script).
  id = tor.extend_circuit([guard, middle, exit], purpose="controller")`

func (t *torMod) extendCircuit(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var path relayList
	var purpose string
	circuit := CircuitID("0")
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "path??", &path, "purpose??", &purpose, "circuit??", &circuit); err != nil {
		return nil, err
	}
	c, err := t.conn(b)
	if err != nil {
		return nil, err
	}
	id, err := c.ExtendCircuit(Context(thread), string(circuit), path, purpose)
	if err != nil {
		return nil, failed(b, err)
	}
	if circuit == "0" {
		t.h.Launched(id)
	}
	return starlark.String(id), nil
}

const docCloseCircuit = `close_circuit(circuit, if_unused=False)
CLOSECIRCUIT: closes circuit (a circuit or its id); with if_unused, only if
no stream uses it.`

func (t *torMod) closeCircuit(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var circuit CircuitID
	var ifUnused bool
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "circuit", &circuit, "if_unused?", &ifUnused); err != nil {
		return nil, err
	}
	return t.okCommand(thread, b, func(c *ctl.Conn, ctx context.Context) error {
		return c.CloseCircuit(ctx, string(circuit), ifUnused)
	})
}

const docSetCircuitPurpose = `set_circuit_purpose(circuit, purpose)
SETCIRCUITPURPOSE: changes the purpose of circuit (a circuit or its id) to
"general" or "controller".`

func (t *torMod) setCircuitPurpose(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var circuit CircuitID
	var purpose string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "circuit", &circuit, "purpose", &purpose); err != nil {
		return nil, err
	}
	return t.okCommand(thread, b, func(c *ctl.Conn, ctx context.Context) error {
		return c.SetCircuitPurpose(ctx, string(circuit), purpose)
	})
}

const docSetRouterPurpose = `set_router_purpose(router, purpose)
SETROUTERPURPOSE: changes the purpose of a router descriptor (a nickname,
fingerprint, tor.hop or tor.router). Tor removed this command in
0.2.0.8-alpha and answers 510; it is here for completeness.`

func (t *torMod) setRouterPurpose(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var router starlark.Value
	var purpose string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "router", &router, "purpose", &purpose); err != nil {
		return nil, err
	}
	r, err := relaySpec(router)
	if err != nil {
		return nil, fmt.Errorf("%s: router: %w", b.Name(), err)
	}
	return t.okCommand(thread, b, func(c *ctl.Conn, ctx context.Context) error {
		return c.SetRouterPurpose(ctx, r, purpose)
	})
}
