package runtime

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl/ctltest"
	"go.starlark.net/starlark"

	"github.com/torscript/torscript/ctl"
)

// exitOf is the exit status torscript gives a run that ended with err
// (cmd/torscript exitCode reads the same error types), and the error that
// caused it: nil when the script ended with exit(n). The tests of Run
// assert both.
func exitOf(err error) (int, error) {
	var (
		exit *ExitError
		ce   *ConnectError
	)
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exit):
		return exit.Code, nil
	case errors.As(err, &ce):
		return 4, err
	case ctl.ErrorCode(err) != 0:
		return 3, err
	}
	return 1, err
}

// TestRunErrorTypes: Run says how a script ended with an error of its own
// type, never a number: exit(n) an *ExitError (nil for exit(0)), a
// connection that cannot be opened a *ConnectError, a script that fails a
// *ScriptError (tor's refusal inside it a *ctl.Error).
func TestRunErrorTypes(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	wait := func(src string, opts Options) error {
		t.Helper()
		r := startScript(t, f, src, opts)
		r.wait(2 * time.Second)
		return r.runErr
	}
	var exit *ExitError
	if err := wait("exit(7)", Options{}); !errors.As(err, &exit) || exit.Code != 7 {
		t.Errorf("exit(7): Run = %#v, want *ExitError{7}", err)
	}
	if err := wait("exit(0)", Options{}); err != nil {
		t.Errorf("exit(0): Run = %#v, want nil", err)
	}
	var se *ScriptError
	if err := wait("fail(\"top\")", Options{}); !errors.As(err, &se) || ctl.ErrorCode(err) != 0 {
		t.Errorf("fail(): Run = %#v, want a *ScriptError", err)
	}
	var te *ctl.Error
	if err := wait("tor.get_info(\"nope\")", Options{}); !errors.As(err, &se) || !errors.As(err, &te) || te.Code != 552 {
		t.Errorf("refused by tor: Run = %#v, want a *ScriptError holding a *ctl.Error", err)
	}
	if err := wait("print(", Options{}); !errors.As(err, &se) {
		t.Errorf("syntax error: Run = %#v, want a *ScriptError", err)
	}
	f.FailDials(1)
	var ce *ConnectError
	if err := wait("print(1)", Options{}); !errors.As(err, &ce) {
		t.Errorf("no tor: Run = %#v, want a *ConnectError", err)
	}
}

// TestSessionCloseExit: Session.Close returns exit()'s code as an
// *ExitError, nil when nothing asked for one.
func TestSessionCloseExit(t *testing.T) {
	t.Parallel()
	r := New(Options{Logger: discardLogger(), Stdout: &ctltest.SyncBuffer{}})
	s, err := r.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.Do(func(th *starlark.Thread, g starlark.StringDict) error {
		_, err := starlark.ExecFileOptions(FileOptions(), th, "<stdin>", "exit(5)", g)
		return err
	})
	var exit *ExitError
	if err := s.Close(); !errors.As(err, &exit) || exit.Code != 5 {
		t.Errorf("Close = %#v, want *ExitError{5}", err)
	}
	s2, err := New(Options{Logger: discardLogger(), Stdout: &ctltest.SyncBuffer{}}).Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Errorf("Close = %#v, want nil", err)
	}
}
