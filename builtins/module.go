package builtins

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/torscript/torscript/ctl"
	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
)

// EventValue turns an event into the value handlers receive: a tor.stream
// for STREAM, a tor.circuit for CIRC and CIRC_MINOR, and a tor.event with
// the event's fields for the others. A *ctl.Deferred is parsed on the
// value's first read.
func EventValue(ev ctl.Event, h Host) starlark.Value {
	switch e := ev.(type) {
	case *ctl.StreamEvent:
		return &Stream{S: &e.Stream, Raw: e.Raw, Event: e.Type, Host: h}
	case *ctl.CircEvent:
		return &Circuit{C: &e.Circuit, Raw: e.Raw, Event: e.Type}
	case *ctl.CircMinorEvent:
		return &Circuit{C: &e.Circuit, Raw: e.Raw, Event: e.Type, OldPurpose: e.OldPurpose, OldHSState: e.OldHSState}
	case *ctl.Deferred:
		if _, _, ok := e.CircHead(); ok {
			return DeferredCircuit(e)
		}
		if _, _, ok := e.StreamHead(); ok {
			return DeferredStream(e, nil, h)
		}
		if e.Type == ctl.EventCirc || e.Type == ctl.EventStream || e.Type == ctl.EventCircMinor {
			// Malformed, or of a type with a value of its own: as if
			// parsed at once.
			return EventValue(e.Event(), h)
		}
	}
	return NewEvent(ev)
}

// EventName checks an event name given to tor.on ("circ", "STREAM",
// "status_client") and returns tor's keyword for it.
func EventName(name string) (string, error) {
	up := strings.ToUpper(name)
	for _, t := range ctl.EventTypes() {
		if t == up {
			return t, nil
		}
	}
	names := ctl.EventTypes()
	for i := range names {
		names[i] = strings.ToLower(names[i])
	}
	sort.Strings(names)
	return "", fmt.Errorf("unknown event %q; events are %s", name, strings.Join(names, ", "))
}

// maxSeconds is the longest duration in seconds: about 292 years.
const maxSeconds = int64(1<<63-1) / int64(time.Second)

// Duration unpacks a duration: a time.duration, a string such as "30s" or
// "1m30s", or a number of seconds.
type Duration time.Duration

func (d *Duration) Unpack(v starlark.Value) error {
	switch v := v.(type) {
	case startime.Duration:
		*d = Duration(v)
		return nil
	case starlark.String:
		x, err := time.ParseDuration(string(v))
		if err != nil {
			return fmt.Errorf("bad duration %q (want e.g. \"30s\", \"1m\", \"250ms\")", string(v))
		}
		*d = Duration(x)
		return nil
	case starlark.Int:
		n, ok := v.Int64()
		if !ok || n > maxSeconds || n < -maxSeconds {
			return fmt.Errorf("duration of %s seconds is out of range", v)
		}
		*d = Duration(time.Duration(n) * time.Second)
		return nil
	case starlark.Float:
		f := float64(v)
		if f != f || f > float64(maxSeconds) || f < -float64(maxSeconds) {
			return fmt.Errorf("duration of %s seconds is out of range", v)
		}
		*d = Duration(time.Duration(f * float64(time.Second)))
		return nil
	}
	return fmt.Errorf("got %s, want a duration such as \"30s\" or a number of seconds", v.Type())
}

// callback unpacks a function to call later, or None for none.
type callback struct{ fn starlark.Callable }

func (c *callback) Unpack(v starlark.Value) error {
	switch v := v.(type) {
	case starlark.NoneType:
		c.fn = nil
		return nil
	case starlark.Callable:
		c.fn = v
		return nil
	}
	return fmt.Errorf("got %s, want a function or None", v.Type())
}
