package runtime

import (
	"context"
	"slices"

	"github.com/torscript/torscript/ctl"
)

// liveState is tor's circuits and streams, kept current from CIRC and
// STREAM events once tracking starts, and resynced from circuit-status and
// stream-status on every connection.
type liveState struct {
	tracking bool
	circs    map[string]*ctl.Circuit
	streams  map[string]*ctl.Stream
	circSeq  map[string]uint64 // creation order
	strSeq   map[string]uint64
	seq      uint64
	// closed remembers circuits that closed or failed lately, to tell a
	// circuit that is gone from one whose first event is still queued.
	closed map[string]struct{}
}

func newLiveState() *liveState {
	return &liveState{closed: map[string]struct{}{}, circs: map[string]*ctl.Circuit{}, streams: map[string]*ctl.Stream{}, circSeq: map[string]uint64{}, strSeq: map[string]uint64{}}
}

func (s *liveState) circuit(c *ctl.Circuit) {
	if !s.tracking {
		return
	}
	switch c.Status {
	case ctl.CircClosed, ctl.CircFailed:
		delete(s.circs, c.ID)
		delete(s.circSeq, c.ID)
		if len(s.closed) >= 4096 {
			clear(s.closed)
		}
		s.closed[c.ID] = struct{}{}
		return
	}
	if _, ok := s.circSeq[c.ID]; !ok {
		s.seq++
		s.circSeq[c.ID] = s.seq
	}
	s.circs[c.ID] = c
}

// launched records a circuit tor has said it is building (EXTENDCIRCUIT
// answered) before its LAUNCHED event arrives.
func (s *liveState) launched(id string) {
	if _, known := s.circs[id]; known {
		return
	}
	if _, gone := s.closed[id]; gone {
		return
	}
	s.circuit(&ctl.Circuit{ID: id, Status: ctl.CircLaunched})
}

func (s *liveState) stream(st *ctl.Stream) {
	if !s.tracking {
		return
	}
	if old, ok := s.streams[st.ID]; ok {
		// Later events leave out what NEW said (source, purpose, ...):
		// fill it in, so that handlers see it too.
		mergeStream(st, old)
	}
	switch st.Status {
	case ctl.StreamClosed, ctl.StreamFailed:
		delete(s.streams, st.ID)
		delete(s.strSeq, st.ID)
		return
	}
	if _, ok := s.strSeq[st.ID]; !ok {
		s.seq++
		s.strSeq[st.ID] = s.seq
	}
	s.streams[st.ID] = st
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
	s.circs = make(map[string]*ctl.Circuit, len(circs))
	s.streams = make(map[string]*ctl.Stream, len(streams))
	s.circSeq = make(map[string]uint64, len(circs))
	s.strSeq = make(map[string]uint64, len(streams))
	s.tracking = true
	for i := range circs {
		s.circuit(&circs[i])
	}
	for i := range streams {
		s.stream(&streams[i])
	}
	return nil
}

func (s *liveState) circuitList() []*ctl.Circuit {
	l := make([]*ctl.Circuit, 0, len(s.circs))
	for _, c := range s.circs {
		l = append(l, c)
	}
	slices.SortFunc(l, func(a, b *ctl.Circuit) int { return cmpSeq(s.circSeq[a.ID], s.circSeq[b.ID]) })
	return l
}

func (s *liveState) streamList() []*ctl.Stream {
	l := make([]*ctl.Stream, 0, len(s.streams))
	for _, st := range s.streams {
		l = append(l, st)
	}
	slices.SortFunc(l, func(a, b *ctl.Stream) int { return cmpSeq(s.strSeq[a.ID], s.strSeq[b.ID]) })
	return l
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
