package repl

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/torscript/torscript/ctl/ctltest"
	"github.com/torscript/torscript/runtime"
)

// TestRun: Run hands Open the REPL's streams, runs the input through the
// session it opened, and returns Close's *ExitError for exit(n); Open's
// error comes back as it is.
func TestRun(t *testing.T) {
	out, errOut := &ctltest.SyncBuffer{}, &ctltest.SyncBuffer{}
	var got Streams
	open := func(ctx context.Context, st Streams) (*runtime.Session, error) {
		got = st
		return runtime.New(runtime.Options{Stdout: st.Out, OnEvent: st.OnEvent}).Open(ctx)
	}
	err := Run(context.Background(), Options{In: strings.NewReader("1 + 2\nprint('p')\nnope\nexit(3)\n4\n"), Out: out, ErrOut: errOut, Open: open})
	var exit *runtime.ExitError
	if !errors.As(err, &exit) || exit.Code != 3 {
		t.Errorf("Run = %#v, want *runtime.ExitError{3}", err)
	}
	if got.Out != out || got.ErrOut != errOut || got.Interactive || got.OnEvent == nil {
		t.Errorf("Open got %+v", got)
	}
	if out.String() != "3\np\n" {
		t.Errorf("stdout %q", out.String())
	}
	if !strings.Contains(errOut.String(), "undefined: nope") {
		t.Errorf("stderr %q", errOut.String())
	}

	if err := Run(context.Background(), Options{In: strings.NewReader("1\n"), Out: out, ErrOut: errOut, Open: open}); err != nil {
		t.Errorf("Run to the end of the input = %v, want nil", err)
	}
	refused := errors.New("no tor")
	if err := Run(context.Background(), Options{In: strings.NewReader("1\n"), Out: out, ErrOut: errOut, Open: func(context.Context, Streams) (*runtime.Session, error) {
		return nil, refused
	}}); err != refused {
		t.Errorf("Run with Open failing = %v, want %v", err, refused)
	}
}
