package ctl

import (
	"errors"
	"time"
)

// BWEvent is a BW event: bytes read and written in the last second
// (control-spec 4.1.4).
type BWEvent struct {
	Base
	Read    int64
	Written int64
	// ByType holds the "Type=Num" arguments (DIR, OR, EXIT, APP, ...).
	ByType  []Count
	Unknown []KeyValue
}

func (e *BWEvent) set(kv KeyValue) bool {
	if !kv.HasValue || !isKeyword(kv.Key) {
		return false
	}
	n, ok := parseUint(kv.Value)
	if !ok {
		return false
	}
	e.ByType = append(e.ByType, Count{Name: kv.Key, N: n})
	return true
}

func parseBWEvent(b Base, a *Args) (Event, error) {
	ev := &BWEvent{Base: b}
	var ok bool
	if ev.Read, ok = uintWord(a); !ok {
		return nil, errBadNumber
	}
	if ev.Written, ok = uintWord(a); !ok {
		return nil, errBadNumber
	}
	if err := keywords(a, extraLines(b.Raw), ev.set, &ev.Unknown); err != nil {
		return nil, err
	}
	return ev, nil
}

// ConnBWEvent is a CONN_BW event: bytes an OR, DIR or EXIT connection
// carried since the last one (control-spec 4.1.21).
type ConnBWEvent struct {
	Base
	ID       string
	ConnType string // OR, DIR, EXIT, or others
	Read     int64
	Written  int64
	Unknown  []KeyValue
}

func (e *ConnBWEvent) set(kv KeyValue) bool {
	if !kv.HasValue {
		return false
	}
	switch kv.Key {
	case "ID":
		e.ID = kv.Value
	case "TYPE":
		e.ConnType = kv.Value
	case "READ":
		return setUint(&e.Read, kv.Value)
	case "WRITTEN":
		return setUint(&e.Written, kv.Value)
	default:
		return false
	}
	return true
}

// setUint stores the non-negative integer s in *p, or reports that s is not
// one.
func setUint(p *int64, s string) bool {
	n, ok := parseUint(s)
	if ok {
		*p = n
	}
	return ok
}

func parseConnBWEvent(b Base, a *Args) (Event, error) {
	ev := &ConnBWEvent{Base: b}
	return keywordEvent(ev, a, ev.set, &ev.Unknown)
}

// CircBWEvent is a CIRC_BW event: bytes the streams of a circuit carried
// since the last one (control-spec 4.1.22).
type CircBWEvent struct {
	Base
	ID               string
	Read             int64
	Written          int64
	Time             time.Time // UTC; zero before tor 0.3.2.1-alpha
	DeliveredRead    int64
	OverheadRead     int64
	DeliveredWritten int64
	OverheadWritten  int64
	// CongestionControl reports that the circuit negotiated congestion
	// control, so that SlowStart, CWND, RTT and MinRTT were sent.
	CongestionControl bool
	SlowStart         bool
	CWND              int64 // cells
	RTT               int64 // milliseconds
	MinRTT            int64 // milliseconds
	Unknown           []KeyValue
}

func (e *CircBWEvent) set(kv KeyValue) bool {
	if !kv.HasValue {
		return false
	}
	switch kv.Key {
	case "ID":
		e.ID = kv.Value
	case "READ":
		return setUint(&e.Read, kv.Value)
	case "WRITTEN":
		return setUint(&e.Written, kv.Value)
	case "TIME":
		t, ok := parseISOTime2Frac(kv.Value)
		if !ok {
			return false
		}
		e.Time = t
	case "DELIVERED_READ":
		return setUint(&e.DeliveredRead, kv.Value)
	case "OVERHEAD_READ":
		return setUint(&e.OverheadRead, kv.Value)
	case "DELIVERED_WRITTEN":
		return setUint(&e.DeliveredWritten, kv.Value)
	case "OVERHEAD_WRITTEN":
		return setUint(&e.OverheadWritten, kv.Value)
	case "SS":
		if kv.Value != "0" && kv.Value != "1" {
			return false
		}
		e.SlowStart = kv.Value == "1"
		e.CongestionControl = true
	case "CWND":
		e.CongestionControl = true
		return setUint(&e.CWND, kv.Value)
	case "RTT":
		e.CongestionControl = true
		return setUint(&e.RTT, kv.Value)
	case "MIN_RTT":
		e.CongestionControl = true
		return setUint(&e.MinRTT, kv.Value)
	default:
		return false
	}
	return true
}

func parseCircBWEvent(b Base, a *Args) (Event, error) {
	ev := &CircBWEvent{Base: b}
	return keywordEvent(ev, a, ev.set, &ev.Unknown)
}

// CellStatsEvent is a CELL_STATS event: cells a circuit queued and
// processed, by cell type (control-spec 4.1.23). Fields tor did not send are
// zero.
type CellStatsEvent struct {
	Base
	ID              string // only for circuits that start here
	InboundQueue    string
	InboundConn     string
	InboundAdded    []Count // cells by cell type
	InboundRemoved  []Count
	InboundTime     []Count // milliseconds by cell type
	OutboundQueue   string
	OutboundConn    string
	OutboundAdded   []Count
	OutboundRemoved []Count
	OutboundTime    []Count
	Unknown         []KeyValue
}

func (e *CellStatsEvent) set(kv KeyValue) bool {
	if !kv.HasValue {
		return false
	}
	var counts *[]Count
	switch kv.Key {
	case "ID":
		e.ID = kv.Value
		return true
	case "InboundQueue":
		e.InboundQueue = kv.Value
		return true
	case "InboundConn":
		e.InboundConn = kv.Value
		return true
	case "OutboundQueue":
		e.OutboundQueue = kv.Value
		return true
	case "OutboundConn":
		e.OutboundConn = kv.Value
		return true
	case "InboundAdded":
		counts = &e.InboundAdded
	case "InboundRemoved":
		counts = &e.InboundRemoved
	case "InboundTime":
		counts = &e.InboundTime
	case "OutboundAdded":
		counts = &e.OutboundAdded
	case "OutboundRemoved":
		counts = &e.OutboundRemoved
	case "OutboundTime":
		counts = &e.OutboundTime
	default:
		return false
	}
	c, ok := parseCounts(kv.Value, ':')
	if ok {
		*counts = c
	}
	return ok
}

func parseCellStatsEvent(b Base, a *Args) (Event, error) {
	ev := &CellStatsEvent{Base: b}
	return keywordEvent(ev, a, ev.set, &ev.Unknown)
}

// TBEmptyEvent is a TB_EMPTY event: a token bucket that had run empty was
// refilled (control-spec 4.1.24).
type TBEmptyEvent struct {
	Base
	Bucket  string // GLOBAL, RELAY, ORCONN, or others
	ID      string // the connection, for ORCONN
	Read    int64  // milliseconds the read bucket was empty
	Written int64  // milliseconds the write bucket was empty
	Last    int64  // milliseconds since the last refill
	Unknown []KeyValue
}

func (e *TBEmptyEvent) set(kv KeyValue) bool {
	if !kv.HasValue {
		return false
	}
	switch kv.Key {
	case "ID":
		e.ID = kv.Value
	case "READ":
		return setUint(&e.Read, kv.Value)
	case "WRITTEN":
		return setUint(&e.Written, kv.Value)
	case "LAST":
		return setUint(&e.Last, kv.Value)
	default:
		return false
	}
	return true
}

func parseTBEmptyEvent(b Base, a *Args) (Event, error) {
	ev := &TBEmptyEvent{Base: b}
	bucket, ok := a.Word()
	if !ok || !isKeyword(bucket) {
		return nil, errors.New("missing or bad bucket name")
	}
	ev.Bucket = bucket
	if err := keywords(a, extraLines(b.Raw), ev.set, &ev.Unknown); err != nil {
		return nil, err
	}
	return ev, nil
}
