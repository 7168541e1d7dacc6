package repl

import (
	"fmt"
	"strings"

	"go.starlark.net/starlark"
)

// How much of a long value the REPL prints.
const (
	prettyWidth = 100 // a value whose repr is longer goes one element a line
	prettyItems = 50  // elements of a list, tuple or dict shown
	prettyLines = 200 // lines of a multi-line string shown
)

// pretty formats a value the REPL prints: records as their repr (a
// circuit shows its id, status, purpose and path), long lists, tuples and
// dicts one element a line and cut after prettyItems with a count, and a
// string with newlines (a GETINFO answer) as its text, cut after
// prettyLines.
func pretty(v starlark.Value) string { return prettyCut(v, true) }

// Format formats a value as the REPL prints it, whole: long lists, tuples
// and dicts one element a line, long records one field a line, a string
// with newlines as its text (torscript eval).
func Format(v starlark.Value) string { return prettyCut(v, false) }

func prettyCut(v starlark.Value, cut bool) string {
	switch x := v.(type) {
	case starlark.String:
		s := string(x)
		if !strings.Contains(s, "\n") {
			return x.String()
		}
		lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
		if cut && len(lines) > prettyLines {
			more := len(lines) - prettyLines
			lines = append(lines[:prettyLines], fmt.Sprintf("… %d more lines (%d in all; _ holds the whole string)", more, more+prettyLines))
		}
		return strings.Join(lines, "\n")
	case *starlark.List, starlark.Tuple, *starlark.Dict, starlark.Indexable:
		// Indexable: tor.circuits() and tor.streams() too.
		s := v.String()
		if len(s) <= prettyWidth {
			return s
		}
		return prettyContainer(v, cut)
	case starlark.HasAttrs:
		s := v.String()
		if len(s) <= prettyWidth {
			return s
		}
		return prettyRecord(x)
	}
	return v.String()
}

// prettyRecord prints a long record (a tor.router, an event) one field a
// line; its methods are left out.
func prettyRecord(v starlark.HasAttrs) string {
	var b strings.Builder
	b.WriteString(v.Type() + "(\n")
	for _, name := range v.AttrNames() {
		a, err := v.Attr(name)
		if err != nil || a == nil {
			continue
		}
		if _, ok := a.(starlark.Callable); ok {
			continue
		}
		fmt.Fprintf(&b, "  %s = %s,\n", name, a.String())
	}
	b.WriteString(")")
	return b.String()
}

func prettyContainer(v starlark.Value, cut bool) string {
	var b strings.Builder
	open, close := "[", "]"
	var items []string
	n := 0
	max := prettyItems
	if !cut {
		max = int(^uint(0) >> 1)
	}
	switch x := v.(type) {
	case *starlark.List:
		n = x.Len()
		for i := 0; i < n && i < max; i++ {
			items = append(items, x.Index(i).String())
		}
	case starlark.Tuple:
		open, close = "(", ")"
		n = x.Len()
		for i := 0; i < n && i < max; i++ {
			items = append(items, x[i].String())
		}
	case starlark.Indexable: // tor.circuits(), tor.streams(): printed as a list
		n = x.Len()
		for i := 0; i < n && i < max; i++ {
			items = append(items, x.Index(i).String())
		}
	case *starlark.Dict:
		open, close = "{", "}"
		n = x.Len()
		for i, kv := range x.Items() {
			if i == max {
				break
			}
			items = append(items, kv[0].String()+": "+kv[1].String())
		}
	}
	b.WriteString(open + "\n")
	for _, it := range items {
		b.WriteString("  " + it + ",\n")
	}
	if n > len(items) {
		fmt.Fprintf(&b, "  … %d more (%d in all)\n", n-len(items), n)
	}
	b.WriteString(close)
	return b.String()
}
