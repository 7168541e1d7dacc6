package runtime

import (
	"fmt"
	"slices"
	"sort"

	"go.starlark.net/resolve"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
)

// Check flags X.NAME where X is a module whose attributes are known before
// the script runs and NAME is not one of them: tor.atach, sim.expect_atach,
// assert.equal, routes.exitt. The modules are the predeclared ones (tor,
// json, math, time), those torscript test adds (Options.ExtraGlobalAttrs)
// and what a script loads that its module makes with module(...) or
// struct(...) at its top level (the stdlib's modules are made so).

// moduleExports reads f's top level for NAME = module("name", k = ...) or
// NAME = struct(k = ...) and returns each NAME's keys. A call with
// **kwargs is left out: its keys are not known.
func moduleExports(f *syntax.File) map[string][]string {
	out := map[string][]string{}
	for _, st := range f.Stmts {
		as, ok := st.(*syntax.AssignStmt)
		if !ok || as.Op != syntax.EQ {
			continue
		}
		lhs, ok := as.LHS.(*syntax.Ident)
		if !ok {
			continue
		}
		call, ok := as.RHS.(*syntax.CallExpr)
		if !ok {
			continue
		}
		fn, ok := call.Fn.(*syntax.Ident)
		if !ok || (fn.Name != "module" && fn.Name != "struct") {
			continue
		}
		var keys []string
		known := true
		for _, a := range call.Args {
			switch a := a.(type) {
			case *syntax.BinaryExpr:
				if id, ok := a.X.(*syntax.Ident); ok && a.Op == syntax.EQ {
					keys = append(keys, id.Name)
				}
			case *syntax.UnaryExpr:
				if a.Op == syntax.STARSTAR {
					known = false
				}
			}
		}
		if known {
			out[lhs.Name] = keys
		}
	}
	return out
}

// checkAttrs returns an error for the first X.NAME in f (in source order)
// where X is a module of known attributes and NAME is not one of them.
// loaded maps the bindings of f's load statements to the attributes of
// what they load, where those are known.
func (c *checker) checkAttrs(f *syntax.File, loaded map[*resolve.Binding][]string, pre func(string) bool) error {
	var err error
	syntax.Walk(f, func(n syntax.Node) bool {
		if err != nil {
			return false
		}
		d, ok := n.(*syntax.DotExpr)
		if !ok {
			return true
		}
		id, ok := d.X.(*syntax.Ident)
		if !ok {
			return true
		}
		b, _ := id.Binding.(*resolve.Binding)
		if b == nil {
			return true
		}
		var attrs []string
		switch b.Scope {
		case resolve.Predeclared, resolve.Universal:
			if !pre(id.Name) {
				return true
			}
			if m, ok := c.r.pre[id.Name].(*starlarkstruct.Module); ok {
				attrs = m.AttrNames()
			} else if a, ok := c.r.opts.ExtraGlobalAttrs[id.Name]; ok {
				attrs = a
			} else {
				return true
			}
		default:
			a, ok := loaded[b]
			if !ok {
				return true
			}
			attrs = a
		}
		if slices.Contains(attrs, d.Name.Name) {
			return true
		}
		msg := fmt.Sprintf("%s: %s has no attribute %q", d.Name.NamePos, id.Name, d.Name.Name)
		if near := nearest(d.Name.Name, attrs); near != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", near)
		}
		err = fmt.Errorf("%s", msg)
		return false
	})
	return err
}

// nearest returns the name in names closest to x by edit distance, if it
// is close enough to be what was meant.
func nearest(x string, names []string) string {
	names = slices.Clone(names)
	sort.Strings(names)
	best, bestD := "", len(x)/2+1
	for _, n := range names {
		if d := editDistance(x, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
