package builtins

import (
	"context"
	"fmt"
	"time"

	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

const docExtendCircuit = `extend_circuit(path=None, purpose=None, circuit="0", on_built=None, on_failed=None, timeout="1m") -> str
EXTENDCIRCUIT: builds a new circuit along path, or extends circuit (a
circuit or its id) by it, and returns the circuit's id at once; CIRC events
tell when it is BUILT or FAILED. path is a list of relays: fingerprints
("$9695DFC35FFEB861329B9F1AB04C46397020CE31"), nicknames, tor.hop or
tor.router values. Without a path tor chooses one. purpose is "general"
(tor's default) or "controller" (tor then leaves the circuit to the script).
on_built(circuit) is called once when it is BUILT, on_failed(id, reason)
once if it FAILs or CLOSEs first (reason: tor's REASON and REMOTE_REASON)
or timeout (default "1m") passes first (reason "TIMEOUT_WAITING"), on the
event loop like a handler.
  id = tor.extend_circuit([guard, middle, exit], purpose="controller")
  tor.extend_circuit(on_built=lambda c: print(c.path), on_failed=print)`

func (t *torMod) extendCircuit(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var path relayList
	var purpose string
	circuit := CircuitID("0")
	var onBuilt, onFailed callback
	timeout := Duration(defaultWait)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "path??", &path, "purpose??", &purpose, "circuit??", &circuit,
		"on_built?", &onBuilt, "on_failed?", &onFailed, "timeout?", &timeout); err != nil {
		return nil, err
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("%s: timeout must be positive", b.Name())
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
	if onBuilt.fn != nil || onFailed.fn != nil {
		if err := t.h.Await(circuitWaiter(id, onBuilt.fn, onFailed.fn, time.Duration(timeout), t.h)); err != nil {
			return nil, failed(b, err)
		}
	}
	return starlark.String(id), nil
}

// defaultWait is how long on_built and on_published wait before on_failed.
const defaultWait = time.Minute

// circuitWaiter calls onBuilt(circuit) when circuit id is BUILT, or
// onFailed(id, reason) when it fails or closes first (tor's REASON) or
// timeout passes ("TIMEOUT_WAITING").
func circuitWaiter(id string, onBuilt, onFailed starlark.Callable, timeout time.Duration, h Host) *Waiter {
	return &Waiter{
		What:    "extend_circuit " + id,
		Events:  []string{ctl.EventCirc},
		Timeout: timeout,
		Match: func(ev ctl.Event) (starlark.Callable, starlark.Tuple, bool) {
			e, ok := ev.(*ctl.CircEvent)
			if !ok || e.ID != id {
				return nil, nil, false
			}
			switch e.Status {
			case ctl.CircBuilt:
				if onBuilt == nil {
					return nil, nil, true
				}
				return onBuilt, starlark.Tuple{EventValue(ev, h)}, true
			case ctl.CircFailed, ctl.CircClosed:
				if onFailed == nil {
					return nil, nil, true
				}
				reason := e.Reason
				if e.RemoteReason != "" {
					reason += " " + e.RemoteReason
				}
				return onFailed, starlark.Tuple{starlark.String(id), starlark.String(reason)}, true
			}
			return nil, nil, false
		},
		OnTimeout: func() (starlark.Callable, starlark.Tuple) {
			if onFailed == nil {
				return nil, nil
			}
			return onFailed, starlark.Tuple{starlark.String(id), starlark.String("TIMEOUT_WAITING")}
		},
	}
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
