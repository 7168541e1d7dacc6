package runtime

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// FormatError is the one way torscript prints a script error: a Starlark
// evaluation error with its backtrace, a syntax or resolve error as
// file:line:col: message, anything else as its message.
func FormatError(err error) string {
	var evalErr *starlark.EvalError
	if errors.As(err, &evalErr) {
		// A deep recursion's stack has as many frames as there was room
		// for: format the outermost and innermost ones only.
		e := *evalErr
		elided := 0
		if n := len(e.CallStack); n > btHeadFrames+btTailFrames+1 {
			short := append(starlark.CallStack{}, e.CallStack[:btHeadFrames]...)
			e.CallStack = append(short, e.CallStack[n-btTailFrames:]...)
			elided = n - btHeadFrames - btTailFrames
		}
		bt := strings.TrimRight(e.Backtrace(), "\n")
		if elided > 0 {
			if lines := strings.SplitAfterN(bt, "\n", btHeadFrames+2); len(lines) == btHeadFrames+2 {
				bt = strings.Join(lines[:btHeadFrames+1], "") + fmt.Sprintf("  … %d frames left out …\n", elided) + lines[btHeadFrames+1]
			}
		}
		// Builtins name themselves in their errors ("tor.get_info: 552
		// ..."), as Starlark's own do; the backtrace names them too.
		if i := strings.LastIndex(bt, "\nError in "); i >= 0 {
			rest := bt[i+len("\nError in "):]
			if name, msg, ok := strings.Cut(rest, ": "); ok && strings.HasPrefix(msg, name+": ") {
				bt = bt[:i] + "\nError in " + name + ": " + strings.TrimPrefix(msg, name+": ")
			}
		}
		var ov *OverrunError
		if errors.As(err, &ov) && !strings.Contains(bt, ov.reason()) {
			bt += "\n" + ov.reason()
		}
		return boundBacktrace(bt)
	}
	var list resolve.ErrorList
	if errors.As(err, &list) {
		lines := make([]string, len(list))
		for i, e := range list {
			lines[i] = fmt.Sprintf("%s: %s", e.Pos, e.Msg)
		}
		return strings.Join(lines, "\n")
	}
	var synErr syntax.Error
	if errors.As(err, &synErr) {
		return fmt.Sprintf("%s: %s", synErr.Pos, synErr.Msg)
	}
	return err.Error()
}

// Bounds of a printed error: a deep recursion has as many frames as the
// stack had room for, and a name may be thousands of characters long; the
// log of one failure must stay small (a few KiB), whatever the script.
const (
	btHeadFrames = 5    // frames kept from the outermost
	btTailFrames = 5    // frames kept from the innermost
	btLineMax    = 300  // characters of one line kept
	btTotalMax   = 8000 // characters of the whole text kept
)

// boundBacktrace cuts a backtrace to its outermost and innermost frames,
// each line to btLineMax characters and the whole to btTotalMax.
func boundBacktrace(bt string) string {
	lines := strings.Split(bt, "\n")
	// Frames are the indented lines after "Traceback ...".
	first, last := -1, -1
	for i, l := range lines {
		if strings.HasPrefix(l, "  ") {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if n := last - first + 1; first >= 0 && n > btHeadFrames+btTailFrames+1 {
		elided := n - btHeadFrames - btTailFrames
		kept := append([]string{}, lines[:first+btHeadFrames]...)
		kept = append(kept, fmt.Sprintf("  … %d frames left out …", elided))
		lines = append(kept, lines[last+1-btTailFrames:]...)
	}
	for i, l := range lines {
		lines[i] = cutLine(l, btLineMax)
	}
	out := strings.Join(lines, "\n")
	if len(out) > btTotalMax {
		out = out[:btTotalMax/2] + fmt.Sprintf(" … %d characters left out … ", len(out)-btTotalMax) + out[len(out)-btTotalMax/2:]
	}
	return out
}

// cutLine keeps the start and the end of a line longer than max.
func cutLine(l string, max int) string {
	if len(l) <= max {
		return l
	}
	head, tail := max*2/3, max/4
	return l[:head] + fmt.Sprintf("…(%d characters)…", len(l)-head-tail) + l[len(l)-tail:]
}

// ExitError is how exit(code) ends a script. Run, Eval and Session.Close
// return it when the script asked for a code other than 0.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit(%d)", e.Code) }

// The errors that end a run. Run and Eval return nil, an *ExitError, or
// one of these; the caller (cmd/torscript) turns them into exit codes and
// prints them with FormatError.
type (
	// ConnectError: the control connection could not be opened (or, for
	// Open, tor's live state could not be read on it).
	ConnectError struct{ Err error }
	// BootstrapError: waiting for tor to finish bootstrapping failed.
	BootstrapError struct{ Err error }
	// ScriptError: the script failed. It did not compile, its top level
	// raised an error, or what it set running failed in a way that ends
	// it: its stream policy could not start (another torscript holds
	// this tor's policy: Err wraps an *owner.ErrHeld), it fell too far
	// behind the events (ctl.ErrEventOverflow). A refusal from tor in
	// Err is a *ctl.Error.
	ScriptError struct{ Err error }
)

func (e *ConnectError) Error() string   { return e.Err.Error() }
func (e *ConnectError) Unwrap() error   { return e.Err }
func (e *BootstrapError) Error() string { return e.Err.Error() }
func (e *BootstrapError) Unwrap() error { return e.Err }
func (e *ScriptError) Error() string    { return e.Err.Error() }
func (e *ScriptError) Unwrap() error    { return e.Err }

// exitErr is the error of a run that ended with exit(code): nil for 0.
func exitErr(code int) error {
	if code == 0 {
		return nil
	}
	return &ExitError{Code: code}
}

// OverrunError is an error from an evaluation stopped because it overran:
// a handler, timer or policy call, a top level or a test that ran longer
// than its wall deadline (Timeout) or took more than its step budget
// (Steps). Err is the Starlark error, whose backtrace names the line where
// the script was stopped.
type OverrunError struct {
	What    string        // "call to policy", "top level of x.star", ...
	Limit   string        // the deadline's name ("handler timeout"); "" for the step budget
	Timeout time.Duration // the deadline, if it was the deadline
	Steps   uint64        // the budget, if it was the step budget
	Err     error
}

func (e *OverrunError) Error() string {
	msg := e.Err.Error()
	if strings.Contains(msg, e.reason()) { // the cancellation's own reason
		return msg
	}
	return msg + " (" + e.reason() + ")"
}

func (e *OverrunError) Unwrap() error { return e.Err }
func (e *OverrunError) reason() string {
	if e.Limit == "" {
		return fmt.Sprintf("%s took more than %d steps (--max-steps)", e.What, e.Steps)
	}
	return e.What + " ran longer than the " + e.Limit + " (" + e.Timeout.String() + ")"
}
