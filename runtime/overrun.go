package runtime

import (
	"errors"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Where an overrun stopped the script.
//
// Starlark's backtrace gives each frame the position of its current
// instruction, looked up in the function's line table. The compiler
// records a position only for instructions that can fail (calls,
// operators, indexing, attribute and non-universal name lookups, for
// loops); every other instruction takes the last position recorded before
// it in the code. The instructions of `while True: pass` (a universal
// True, a conditional jump, a jump back) record none, so a call stopped in
// that loop reports the last position before the loop: the def line of its
// function, or 1:1 at top level, or the line of an earlier statement. The
// program counter itself is right; what is missing is a line for it, and
// the compiled line table is not ours to extend.
//
// So placeOverrun reads the source: if the frame's position is not inside
// a loop of its function, and the statements after it, up to a while loop,
// record no position either, then the frame can only have been spinning in
// that loop (the code between runs once and cannot take long), and the
// frame is given the position of the loop's body.

// placeOverrun rewrites the innermost frame of the backtrace of a stopped
// evaluation to the line where the script was, when Starlark's own
// position is the last one before a loop that records none.
func (r *Runtime) placeOverrun(err error) {
	var ee *starlark.EvalError
	if !errors.As(err, &ee) || len(ee.CallStack) == 0 {
		return
	}
	fr := &ee.CallStack[len(ee.CallStack)-1]
	src, ok := r.sources[fr.Pos.Filename()]
	if !ok {
		return
	}
	f, err := FileOptions().Parse(fr.Pos.Filename(), src, 0)
	if err != nil {
		return
	}
	if pos, ok := silentLoop(f, fr.Name, fr.Pos); ok {
		fr.Pos = pos
	}
}

// silentLoop finds the loop a frame of function fn reported at pos may be
// spinning in: see placeOverrun.
func silentLoop(f *syntax.File, fn string, pos syntax.Position) (syntax.Position, bool) {
	body, start := f.Stmts, syntax.MakePosition(nil, 1, 1)
	if fn != "<toplevel>" {
		def := innermostDef(f.Stmts, fn, pos)
		if def == nil {
			return pos, false
		}
		body, start = def.Body, def.Def
	}
	// Walk the function's statements in order: first to the one holding
	// pos, then on while none records a position.
	// pos is the function's own position when nothing before recorded
	// one; but a statement of the body may record that position too (a
	// def at 1:1 of a file), and then it holds pos.
	held := false
	for _, st := range body {
		if from, to := st.Span(); within(pos, from, to) {
			held = true
		}
	}
	started := !held && (pos.Line == 0 || pos.Line == start.Line && pos.Col == start.Col)
	var found syntax.Position
	var walk func(stmts []syntax.Stmt) (done bool)
	walk = func(stmts []syntax.Stmt) bool {
		for _, st := range stmts {
			if !started {
				from, to := st.Span()
				if !within(pos, from, to) {
					continue
				}
				switch st := st.(type) {
				case *syntax.IfStmt:
					// pos is in a branch (or the condition: then
					// nothing is placed).
					if walk(st.True) || walk(st.False) {
						return true
					}
					continue
				case *syntax.WhileStmt, *syntax.ForStmt:
					return true // the frame may be spinning at pos itself
				}
				started = true
				continue
			}
			if w, ok := st.(*syntax.WhileStmt); ok && silent(w) {
				found = w.While
				if len(w.Body) > 0 {
					found, _ = w.Body[0].Span()
				}
				return true
			}
			if !silent(st) {
				return true
			}
		}
		return false
	}
	walk(body)
	if found.Line == 0 {
		return pos, false
	}
	return found, true
}

// within reports whether p lies in [from, to].
func within(p, from, to syntax.Position) bool {
	return !before(p, from) && !before(to, p)
}

func before(p, q syntax.Position) bool {
	if p.Line != q.Line {
		return p.Line < q.Line
	}
	return p.Col < q.Col
}

// innermostDef is the deepest def named fn whose text holds pos.
func innermostDef(stmts []syntax.Stmt, fn string, pos syntax.Position) *syntax.DefStmt {
	var best *syntax.DefStmt
	syntax.Walk(&syntax.File{Stmts: stmts}, func(n syntax.Node) bool {
		def, ok := n.(*syntax.DefStmt)
		if !ok {
			return true
		}
		from, to := def.Span()
		if !within(pos, from, to) {
			return false
		}
		if def.Name.Name == fn {
			best = def
		}
		return true
	})
	return best
}

// silent reports whether the code of n records no position: it is made
// only of literals, universal names (True, None, ...), assignments to
// plain names, pass, break, continue, and if and while statements of
// those. Anything else may record one, and then Starlark's own position
// is trusted.
func silent(n syntax.Node) bool {
	ok := true
	syntax.Walk(n, func(n syntax.Node) bool {
		if !ok {
			return false
		}
		switch n := n.(type) {
		case nil: // Walk's end of a node's children
		case *syntax.Literal, *syntax.BranchStmt, *syntax.ExprStmt, *syntax.ParenExpr,
			*syntax.ListExpr, *syntax.TupleExpr, *syntax.IfStmt, *syntax.WhileStmt:
		case *syntax.Ident:
			// In an expression: only a universal name records nothing.
			// Assignment targets are checked below.
			if _, universal := starlark.Universe[n.Name]; !universal {
				ok = false
			}
		case *syntax.AssignStmt:
			if _, isName := n.LHS.(*syntax.Ident); n.Op != syntax.EQ || !isName {
				ok = false
				return false
			}
			ok = silent(n.RHS)
			return false
		default:
			ok = false
		}
		return ok
	})
	return ok
}
