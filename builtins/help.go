package builtins

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// torOverview is the docstring of the tor module, Docs["tor"].
const torOverview = `tor: the Tor daemon torscript is connected to.
Handlers and timers: tor.on(event, fn), tor.every(d, fn), tor.after(d, fn).
A stream policy: tor.policy(fn, ...), which returns a circuit, None,
tor.attach(...), tor.close(...), tor.redirect(...) or tor.hold() per stream.
Live state: tor.circuits(), tor.streams(); tor.routers(), tor.router(x).
Every control command is a function named after it in snake_case, with
keyword arguments: GETINFO is tor.get_info, ATTACHSTREAM tor.attach_stream,
ADD_ONION tor.add_onion, and tor.raw("...") sends any command as typed.
A refusal by tor is an error with tor's code and text, e.g.
  tor.attach_stream: 552 Unknown stream "42"
Not here, on purpose: SETEVENTS (torscript subscribes to what tor.on
handlers and the policy need), AUTHENTICATE and AUTHCHALLENGE (torscript
authenticates when it connects) and QUIT (torscript hangs up when the script
ends); tor.raw refuses them too.`

// typeDocs describe the value types, for help(value).
var typeDocs = map[string]string{
	"tor.stream": `tor.stream: a stream, as a STREAM event or tor.streams() gives it.
Equal to another with the same id; usable where a stream id is wanted.
stream.circuit is the circuit it is attached to, or None.`,
	"tor.circuit": `tor.circuit: a circuit, as a CIRC event or tor.circuits() gives it.
Equal to another with the same id; a policy may return it, and it is usable
where a circuit id is wanted. .path is a tuple of tor.hop, .exit the last.`,
	"tor.hop": `tor.hop: a relay of a circuit's path: .fingerprint, .nickname.
str(hop) is "$FINGERPRINT~nickname", as extend_circuit takes it.`,
	"tor.decision": `tor.decision: what a policy decided for a stream, made by tor.attach,
tor.close, tor.redirect or tor.hold.`,
	"tor.timer": `tor.timer: made by tor.every or tor.after; timer.cancel() stops it.`,
	"tor.event": `tor.event: an event, with its fields as attributes, .type (tor's
keyword, "BW") and .raw (its text).`,
	"tor.router": `tor.router: a relay as the consensus lists it (tor.routers()).
"$" + router.fingerprint names it for extend_circuit.`,
}

// NewHelp returns the help builtin: help(x) prints the docstring of x (a
// tor builtin, found in docs by its name; a Starlark function; a module,
// whose members it lists; a value, whose attributes it lists; or a name
// such as "attach_stream"). help() prints an overview.
func NewHelp(docs Docs) *starlark.Builtin {
	return starlark.NewBuiltin("help", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var x starlark.Value
		if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0, &x); err != nil {
			return nil, err
		}
		if text := helpText(docs, x); thread.Print != nil {
			thread.Print(thread, text)
		} else {
			fmt.Fprintln(os.Stderr, text) // as Starlark's print does
		}
		return starlark.None, nil
	})
}

func helpText(docs Docs, x starlark.Value) string {
	switch x := x.(type) {
	case nil:
		return `help(x) describes x: help(tor) lists the tor module, help(tor.attach_stream)
or help("attach_stream") describes a function, help(fn) prints the
docstring of a function you wrote, and help(value) lists its attributes.`
	case *starlark.Builtin:
		if doc, ok := docs[x.Name()]; ok {
			return doc
		}
		if r := x.Receiver(); r != nil {
			return fmt.Sprintf("%s: a method of %s", x.Name(), r.Type())
		}
		return fmt.Sprintf("%s: a built-in function", x.Name())
	case *starlark.Function:
		doc := cleanDoc(x.Doc())
		if doc == "" {
			doc = "(no docstring)"
		}
		return signature(x) + "\n" + doc
	case *starlarkstruct.Module:
		var b strings.Builder
		if doc, ok := docs[x.Name]; ok {
			b.WriteString(doc)
			b.WriteString("\n\n")
		}
		names := x.AttrNames()
		sort.Strings(names)
		fmt.Fprintf(&b, "%s has %d members:", x.Name, len(names))
		for _, n := range names {
			line, _, _ := strings.Cut(docs[x.Name+"."+n], "\n")
			if line == "" {
				line = n
			}
			b.WriteString("\n  " + x.Name + "." + line)
		}
		return b.String()
	case starlark.String:
		name := string(x)
		for _, n := range []string{name, "tor." + name} {
			if doc, ok := docs[n]; ok {
				return doc
			}
			if doc, ok := typeDocs[n]; ok {
				return doc
			}
		}
		return fmt.Sprintf("no help for %q (help(tor) lists the tor module)", name)
	}
	var b strings.Builder
	if doc, ok := typeDocs[x.Type()]; ok {
		b.WriteString(doc)
	} else {
		b.WriteString(x.Type())
	}
	if ha, ok := x.(starlark.HasAttrs); ok {
		names := ha.AttrNames()
		sort.Strings(names)
		b.WriteString("\nattributes: " + strings.Join(names, ", "))
	}
	return b.String()
}

// signature writes a function's parameters as its def did:
// "f(a, b=1, *args, c, **kwargs)".
func signature(fn *starlark.Function) string {
	n := fn.NumParams()
	if fn.HasKwargs() {
		n--
	}
	if fn.HasVarargs() {
		n--
	}
	param := func(i int) string {
		name, _ := fn.Param(i)
		if d := fn.ParamDefault(i); d != nil {
			return name + "=" + d.String()
		}
		return name
	}
	var ps []string
	kwonly := n - fn.NumKwonlyParams()
	for i := 0; i < kwonly; i++ {
		ps = append(ps, param(i))
	}
	switch {
	case fn.HasVarargs():
		name, _ := fn.Param(n)
		ps = append(ps, "*"+name)
	case fn.NumKwonlyParams() > 0:
		ps = append(ps, "*")
	}
	for i := kwonly; i < n; i++ {
		ps = append(ps, param(i))
	}
	if fn.HasKwargs() {
		name, _ := fn.Param(fn.NumParams() - 1)
		ps = append(ps, "**"+name)
	}
	return fmt.Sprintf("%s(%s)", fn.Name(), strings.Join(ps, ", "))
}

// cleanDoc removes the indentation a docstring has from its def, as
// Python's inspect.cleandoc does: the lines after the first lose the
// indentation they all share, and blank lines at either end are dropped.
func cleanDoc(doc string) string {
	lines := strings.Split(strings.ReplaceAll(doc, "\t", "        "), "\n")
	indent := -1
	for _, l := range lines[1:] {
		if t := strings.TrimLeft(l, " "); t != "" {
			if n := len(l) - len(t); indent < 0 || n < indent {
				indent = n
			}
		}
	}
	lines[0] = strings.TrimSpace(lines[0])
	for i := 1; i < len(lines); i++ {
		if len(lines[i]) >= indent && indent > 0 {
			lines[i] = lines[i][indent:]
		} else {
			lines[i] = strings.TrimLeft(lines[i], " ")
		}
	}
	return strings.Trim(strings.Join(lines, "\n"), "\n")
}
