package ctl

import (
	"context"
	"strings"
)

// ExtendCircuit builds a new circuit (id "0") or extends an existing one
// along path (control-spec 3.10), and returns the circuit's id from tor's
// "250 EXTENDED id". Each hop is a ServerSpec: "$" and a 40-digit
// fingerprint, optionally followed by "~nickname", or a nickname. With id
// "0" the path may be empty, and tor picks one. purpose, for a new circuit,
// is "general" or "controller"; empty leaves tor's default, "general".
func (c *Conn) ExtendCircuit(ctx context.Context, id string, path []string, purpose string) (string, error) {
	const cmd = "EXTENDCIRCUIT"
	l := newCmdLine(cmd).arg(argID(cmd+" circuit id", id), id)
	if len(path) > 0 {
		p, err := argList(cmd+" hop", path, argServerSpec)
		// Tor reads the path as a keyword argument: "A,$B=nick" would be
		// the key "A,$B" with a value, not a path, and tor would build a
		// circuit of its own choosing. It puts "key=value" back together
		// only when the key starts with "$".
		if err == nil && strings.Contains(p, "=") && !strings.HasPrefix(p, "$") {
			err = cmdUnsafeArg(cmd+" path", p, `has a hop with "=" after a first hop that is not a "$" fingerprint, which tor would not read as a path (write "~" instead of "=")`)
		}
		l.arg(err, p)
	}
	if purpose != "" {
		l.arg(argName(cmd+" purpose", purpose), "purpose="+purpose)
	}
	r, err := l.do(ctx, c)
	if err != nil {
		return "", err
	}
	return ParseExtendedReply(r)
}

// ParseExtendedReply reads "250 EXTENDED CircuitID" and returns the id.
func ParseExtendedReply(r *Reply) (string, error) {
	f := strings.Fields(r.Text())
	if len(f) < 2 || f[0] != "EXTENDED" || argID("circuit id", f[1]) != nil {
		return "", &ProtocolError{Msg: `EXTENDCIRCUIT reply is not "EXTENDED CircuitID"`, Line: r.Text()}
	}
	return f[1], nil
}

// SetCircuitPurpose changes the purpose of a circuit (control-spec 3.11):
// "general" or "controller".
func (c *Conn) SetCircuitPurpose(ctx context.Context, id, purpose string) error {
	const cmd = "SETCIRCUITPURPOSE"
	_, err := newCmdLine(cmd).
		arg(argID(cmd+" circuit id", id), id).
		arg(argName(cmd+" purpose", purpose), "purpose="+purpose).
		do(ctx, c)
	return err
}

// CloseCircuit closes a circuit (control-spec 3.17); with ifUnused, only if
// no stream uses it.
func (c *Conn) CloseCircuit(ctx context.Context, id string, ifUnused bool) error {
	const cmd = "CLOSECIRCUIT"
	l := newCmdLine(cmd).arg(argID(cmd+" circuit id", id), id)
	if ifUnused {
		l.raw("IfUnused")
	}
	_, err := l.do(ctx, c)
	return err
}

// SetRouterPurpose changes the purpose of a router descriptor, named by
// nickname or key (control-spec 3.12). Tor removed this command in
// 0.2.0.8-alpha and answers 510; it is here for completeness.
func (c *Conn) SetRouterPurpose(ctx context.Context, router, purpose string) error {
	const cmd = "SETROUTERPURPOSE"
	_, err := newCmdLine(cmd).
		arg(argName(cmd+" router", router), router).
		arg(argName(cmd+" purpose", purpose), purpose).
		do(ctx, c)
	return err
}
