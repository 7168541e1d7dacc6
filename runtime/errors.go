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
		bt := strings.TrimRight(evalErr.Backtrace(), "\n")
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
		return bt
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

// ExitError is how exit(code) ends a script.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit(%d)", e.Code) }

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
