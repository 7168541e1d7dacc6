// Package builtins turns ctl's commands and events into Starlark values and
// functions: the tor module, the value types for streams, circuits, routers
// and events, and the decisions a stream policy returns. It has no socket
// code and no event loop: whoever runs the script (the runtime) implements
// Host and passes it to NewTor.
package builtins

import (
	"context"
	"errors"
	"time"

	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

// Host is what the tor module needs from the program running the script.
// Its methods are called on the goroutine that runs Starlark.
type Host interface {
	// Conn is the control connection, or an error saying why there is
	// none (not connected yet, reconnecting, shutting down).
	Conn() (*ctl.Conn, error)

	// On registers fn for events of type typ (a ctl.Event* constant);
	// cancel removes that registration (false when it was removed
	// already). Off removes every registration of fn for typ and says how
	// many there were.
	On(typ string, fn starlark.Callable) (cancel func() bool, err error)
	Off(typ string, fn starlark.Callable) int
	// Schedule calls fn after d, and then every d when repeat is set,
	// until the returned cancel is called.
	Schedule(d time.Duration, repeat bool, fn starlark.Callable) (cancel func(), err error)
	// SetPolicy installs the stream policy.
	SetPolicy(p *Policy) error

	// Circuits and Streams are tor's live circuits and streams, kept
	// current from events, in creation order (tracking starts at the
	// first call). Circuit looks one up by id.
	Circuits(ctx context.Context) (*Live[ctl.Circuit], error)
	Streams(ctx context.Context) (*Live[ctl.Stream], error)
	Circuit(id string) *ctl.Circuit

	// StreamHandled tells the host that the script attached, redirected
	// or closed a stream itself (a held stream is no longer waiting).
	StreamHandled(id string)
	// Mapped records address mappings the script made, to be removed when
	// it ends unless keep is set, and made again after tor restarts.
	Mapped(pairs []ctl.AddrMap, keep bool)
	// Require declares what the script needs: grants for commands that
	// change tor for everyone, and the config keys it sets. It fails when
	// the user has not granted a command. With keep, the config keys stay
	// as the script set them after it ends; else they are restored.
	Require(commands, config []string, keep bool) error
	// AtExit calls fn when the script ends, before the host undoes what
	// the script changed.
	AtExit(fn starlark.Callable)
	// Instance names the tor the script serves (tor.instance): its
	// control address as given, "" when the host does not say.
	Instance() string
	// Metric makes (or, made before with the same kind and labels, finds)
	// a script metric (tor.metrics).
	Metric(kind MetricKind, name, help string, labels []string, buckets []float64) (MetricSink, error)
	// Relays is tor's relays (consensus entries with their server
	// descriptors where tor has them), kept by the host and read again
	// after tor says they changed; rejectInternal is the client's
	// ClientRejectInternalAddresses, which tor applies to exit policy
	// summaries.
	Relays(ctx context.Context) (relays []ctl.Relay, rejectInternal bool, err error)
	// Await waits for events with callbacks, for builtins that take them
	// (extend_circuit's on_built, add_onion's on_published); see Waiter.
	Await(w *Waiter) error
	// Launched tells the host that tor is building a circuit the script
	// asked for (its CIRC events may still be on their way), so that a
	// policy returning it waits for it to be built.
	Launched(id string)
	// Probe sends a probe (tor.fetch, tor.connect) once the user's grant
	// allows it; its result comes to p.OnDone on the loop.
	Probe(p *Probe) error
}

// Waiter is a wait for events with callbacks. The host subscribes to
// Events, gives Match every event of those types until Match says done,
// and calls OnTimeout if Timeout passes first (0: no timeout). Match and
// OnTimeout return the callback to call and its arguments, or a nil fn;
// the host calls it on the loop, supervised like an event handler, and
// reports its failures as a handler's.
type Waiter struct {
	What      string // for logs: "extend_circuit on_built"
	Events    []string
	Match     func(ev ctl.Event) (fn starlark.Callable, args starlark.Tuple, done bool)
	Timeout   time.Duration
	OnTimeout func() (fn starlark.Callable, args starlark.Tuple)
}

// Policy is a stream policy as tor.policy describes it; the runtime runs it.
type Policy struct {
	Fn starlark.Callable
	// OnError is what happens to a stream when Fn fails, overruns, or
	// the script ends while the stream waits: Attach{Circuit: "0"} (tor
	// chooses) or a Close.
	OnError Decision
	// Timeout bounds how long a stream may wait for its decision to take
	// effect: while held, or while its circuit is being built.
	Timeout time.Duration
	// Map holds address mappings made when the policy starts and removed
	// when it ends.
	Map []ctl.AddrMap
	// AllStreams passes tor's own streams (PURPOSE=DIR_FETCH and the like)
	// to Fn too; otherwise tor chooses their circuits.
	AllStreams bool
}

const threadContextKey = "torscript.context"

// SetContext sets the context that builtins called on thread use for their
// commands; its cancellation abandons a command in flight.
func SetContext(thread *starlark.Thread, ctx context.Context) {
	thread.SetLocal(threadContextKey, ctx)
}

// Context is the context set by SetContext, or context.Background.
func Context(thread *starlark.Thread) context.Context {
	if ctx, ok := thread.Local(threadContextKey).(context.Context); ok {
		return ctx
	}
	return context.Background()
}

// ErrNotConnected is what Conn returns between connections.
var ErrNotConnected = errors.New("not connected to tor")
