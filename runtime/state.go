package runtime

import (
	"context"
	"sync"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

// liveState is tor's circuits and streams, kept current from CIRC and
// STREAM events once tracking starts, and resynced from circuit-status and
// stream-status on every connection. Each is a builtins.Live: creation
// order without a sort, and the Starlark value of a circuit or stream built
// once per change (tor.circuits() and tor.streams() read it directly).
type liveState struct {
	tracking bool
	circs    *builtins.Live[ctl.Circuit]
	streams  *builtins.Live[ctl.Stream]
	// closed remembers circuits that closed or failed lately, to tell a
	// circuit that is gone from one whose first event is still queued.
	closed builtins.IDMap[struct{}]
}

// newLiveState is an empty state; a stream's value reaches its circuit
// through h.
func newLiveState(h builtins.Host) *liveState {
	return &liveState{
		circs:   builtins.NewLive(func(c *ctl.Circuit) starlark.Value { return &builtins.Circuit{C: c} }),
		streams: builtins.NewLive(func(s *ctl.Stream) starlark.Value { return &builtins.Stream{S: s, Host: h} }),
	}
}

func (s *liveState) circuit(c *ctl.Circuit) {
	if s.tracking && !s.circuitGone(c.ID, c.Status) {
		s.circs.Set(c.ID, c)
	}
}

// deferredCircuit is circuit for a CIRC event left unparsed (id and
// status are its head): it is parsed when a script reads the circuit.
func (s *liveState) deferredCircuit(id string, status ctl.CircStatus, d *ctl.Deferred) {
	if s.tracking && !s.circuitGone(id, status) {
		s.circs.SetSource(id, (*deferredCirc)(d))
	}
}

// circuitGone removes a circuit that closed or failed and says whether it
// did.
func (s *liveState) circuitGone(id string, status ctl.CircStatus) bool {
	switch status {
	case ctl.CircClosed, ctl.CircFailed:
		s.circs.Delete(id)
		if s.closed.Len() >= 4096 {
			s.closed.Clear()
		}
		s.closed.Set(id, struct{}{})
		return true
	}
	return false
}

// deferredCirc is a deferred CIRC event as a live circuit's state.
type deferredCirc ctl.Deferred

func (d *deferredCirc) Parse() *ctl.Circuit { return builtins.CircuitOf((*ctl.Deferred)(d)) }

// launched records a circuit tor has said it is building (EXTENDCIRCUIT
// answered) before its LAUNCHED event arrives.
func (s *liveState) launched(id string) {
	if s.circs.Has(id) {
		return
	}
	if _, gone := s.closed.Get(id); gone {
		return
	}
	s.circuit(&ctl.Circuit{ID: id, Status: ctl.CircLaunched})
}

func (s *liveState) stream(st *ctl.Stream) {
	if !s.tracking {
		return
	}
	if old := s.streams.Get(st.ID); old != nil {
		// Later events leave out what NEW said (source, purpose, ...):
		// fill it in, so that handlers see it too.
		mergeStream(st, old)
	}
	switch st.Status {
	case ctl.StreamClosed, ctl.StreamFailed:
		s.streams.Delete(st.ID)
		return
	}
	s.streams.Set(st.ID, st)
}

// deferredStream is stream for a STREAM event left unparsed (id and
// status are its head), and the event's value for handlers: it is parsed,
// and filled in from the stream's earlier state (mergeStream), when a
// script reads the stream. A stream that closed or failed is removed.
// Without the live state it is nil: the event's value is its own stream
// (builtins.EventValue). It is nil too for a stream that closed or failed
// when no handler takes the event (not value).
//
// With value, the event's value for handlers comes in the same allocation
// (streamWithValue), for SetDeferred to fill in; it is nil otherwise.
func (s *liveState) deferredStream(id string, status ctl.StreamStatus, d *ctl.Deferred, value bool) (_ builtins.Source[ctl.Stream], val *builtins.Stream) {
	if !s.tracking {
		return nil, nil // as stream: without the live state, nothing to fill in
	}
	if !value && (status == ctl.StreamClosed || status == ctl.StreamFailed) {
		// No handler takes the event, and the live state drops the
		// stream: nothing reads what it was.
		s.streams.Take(id)
		return nil, nil
	}
	var src *deferredStream
	if value {
		x := &streamWithValue{deferredStream: deferredStream{d: d}}
		src, val = &x.deferredStream, &x.val
	} else {
		src = &deferredStream{d: d}
	}
	var cur *ctl.Stream
	var prev builtins.Source[ctl.Stream]
	switch status {
	case ctl.StreamClosed, ctl.StreamFailed:
		cur, prev, _ = s.streams.Take(id)
	default:
		cur, prev, _ = s.streams.ReplaceSource(id, src)
	}
	// What the stream was before: its parsed state, or an unparsed
	// event to parse with this one.
	src.prevStream = cur
	if p, ok := prev.(*deferredStream); ok {
		if p.depth+1 >= maxStreamChain {
			src.prevStream = p.Parse()
		} else {
			src.prev, src.depth = p, p.depth+1
		}
	} else if prev != nil {
		src.prevStream = prev.Parse()
	}
	return src, val
}

// streamWithValue is a deferredStream and the value of its event for
// handlers, allocated together.
type streamWithValue struct {
	deferredStream
	val builtins.Stream
}

// maxStreamChain bounds how many unparsed events of one stream wait on
// each other (a stream's XOFF and XON events come by the hundred): the
// earlier ones are then parsed.
const maxStreamChain = 16

// deferredStream is a deferred STREAM event as the stream's state: its
// stream, filled in from what the stream was before the event (prev, or
// prevStream), parsed once.
type deferredStream struct {
	d          *ctl.Deferred
	prev       *deferredStream // the event before, unparsed when it came
	prevStream *ctl.Stream     // or the stream as it was, parsed
	depth      int             // how many unparsed events prev leads back through
	once       sync.Once
	st         *ctl.Stream
}

func (ds *deferredStream) Parse() *ctl.Stream {
	ds.once.Do(func() {
		st := builtins.StreamOf(ds.d)
		old := ds.prevStream
		if ds.prev != nil {
			old = ds.prev.Parse()
		}
		if old != nil {
			mergeStream(st, old)
		}
		ds.st, ds.prev, ds.prevStream = st, nil, nil
	})
	return ds.st
}

// mergeStream fills in what a later STREAM event leaves out from what an
// earlier one said.
func mergeStream(st, old *ctl.Stream) {
	if st.SourceAddr == "" {
		st.SourceAddr = old.SourceAddr
	}
	if st.Purpose == "" {
		st.Purpose = old.Purpose
	}
	if st.SocksUsername == "" {
		st.SocksUsername, st.SocksPassword = old.SocksUsername, old.SocksPassword
	}
	if st.ClientProtocol == "" {
		st.ClientProtocol = old.ClientProtocol
	}
	if st.IsoFields == nil {
		st.IsoFields = old.IsoFields
	}
	if st.NymEpoch == 0 {
		st.NymEpoch = old.NymEpoch
	}
	if st.SessionGroup == 0 {
		st.SessionGroup = old.SessionGroup
	}
}

// resync replaces the state with tor's answer to circuit-status and
// stream-status.
func (s *liveState) resync(ctx context.Context, c *ctl.Conn) error {
	circs, err := c.Circuits(ctx)
	if err != nil {
		return err
	}
	streams, err := c.Streams(ctx)
	if err != nil {
		return err
	}
	s.circs.Reset()
	s.streams.Reset()
	s.tracking = true
	for i := range circs {
		s.circuit(&circs[i])
	}
	for i := range streams {
		s.stream(&streams[i])
	}
	return nil
}
