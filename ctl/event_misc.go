package ctl

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

// AddrMapEvent is an ADDRMAP event: a new address mapping, or the answer to
// a RESOLVE (control-spec 4.1.7).
type AddrMapEvent struct {
	Base
	Address    string
	NewAddress string // "<error>" when the lookup failed
	// Expiry is when the mapping expires, as tor's local time (a bug the
	// spec keeps for compatibility), read in this process's time.Local;
	// prefer Expires. Both are zero when Never is set.
	Expiry  time.Time
	Never   bool
	Error   string    // error=: "yes", "internal", ...
	Expires time.Time // EXPIRES, in UTC
	Cached  bool      // CACHED="YES": the mapping is kept until it expires
	// StreamID is the stream or circuit the address was resolved for.
	StreamID string
	Unknown  []KeyValue
}

// Failed reports whether the mapping records a failed lookup.
func (e *AddrMapEvent) Failed() bool { return e.NewAddress == "<error>" }

func (e *AddrMapEvent) set(kv KeyValue) bool {
	if !kv.HasValue {
		return false
	}
	switch kv.Key {
	case "error":
		e.Error = kv.Value
	case "EXPIRES":
		if kv.Value == "NEVER" {
			e.Never = true
			return true
		}
		t, ok := parseTime(kv.Value, ' ', time.UTC)
		if !ok {
			return false
		}
		e.Expires = t
	case "CACHED":
		switch kv.Value {
		case "YES":
			e.Cached = true
		case "NO":
			e.Cached = false
		default:
			return false
		}
	case "STREAMID":
		e.StreamID = kv.Value
	default:
		return false
	}
	return true
}

var errBadExpiry = errors.New("missing or bad expiry")

// expiryWord reads an Expiry: "NEVER", a quoted ISOTime, or an ISOTime
// without its quotes (two words).
func expiryWord(a *Args, loc *time.Location) (t time.Time, never bool, err error) {
	w, ok := a.Word()
	if !ok {
		return time.Time{}, false, errBadExpiry
	}
	if w == "NEVER" {
		return time.Time{}, true, nil
	}
	if len(w) == 10 && a.More() && !a.AtKeyword() {
		hms, _ := a.Word()
		w += " " + hms
	}
	t, ok = parseTime(w, ' ', loc)
	if !ok {
		return time.Time{}, false, errBadExpiry
	}
	return t, false, nil
}

func parseAddrMapEvent(b Base, a *Args) (Event, error) {
	ev := &AddrMapEvent{Base: b}
	from, ok := a.Word()
	if !ok || from == "" {
		return nil, errors.New("missing address")
	}
	to, ok := a.Word()
	if !ok || to == "" {
		return nil, errors.New("missing new address")
	}
	ev.Address, ev.NewAddress = from, to
	var err error
	if ev.Expiry, ev.Never, err = expiryWord(a, time.Local); err != nil {
		return nil, err
	}
	if err := keywords(a, extraLines(b.Raw), ev.set, &ev.Unknown); err != nil {
		return nil, err
	}
	return ev, nil
}

// AuthDirNewDescsEvent is an AUTHDIR_NEWDESCS event: a relay uploaded a
// descriptor to us, a directory authority (control-spec 4.1.8; removed in
// tor 0.3.2.1-alpha).
type AuthDirNewDescsEvent struct {
	Base
	Action     string // ACCEPTED, DROPPED or REJECTED
	Message    string
	Descriptor string
	Unknown    []KeyValue
}

func parseAuthDirNewDescsEvent(b Base, a *Args) (Event, error) {
	first := &b.Raw.Lines[0]
	if first.Sep != '+' {
		return nil, errors.New("no data")
	}
	ev := &AuthDirNewDescsEvent{Base: b}
	ev.Action, ev.Descriptor, _ = strings.Cut(first.Data, "\n")
	ev.Message, ev.Descriptor, _ = strings.Cut(ev.Descriptor, "\n")
	if ev.Action == "" {
		return nil, errors.New("missing action")
	}
	if err := keywords(a, extraLines(b.Raw), noKeywords, &ev.Unknown); err != nil {
		return nil, err
	}
	return ev, nil
}

// DescChangedEvent is a DESCCHANGED event: our own relay descriptor changed
// (control-spec 4.1.9).
type DescChangedEvent struct {
	Base
	Unknown []KeyValue
}

func parseDescChangedEvent(b Base, a *Args) (Event, error) {
	ev := &DescChangedEvent{Base: b}
	if err := keywords(a, extraLines(b.Raw), noKeywords, &ev.Unknown); err != nil {
		return nil, err
	}
	return ev, nil
}

// NSEvent is an NS event: tor's view of some relays changed (control-spec
// 4.1.12).
type NSEvent struct {
	Base
	Relays  []RouterStatus
	Unknown []KeyValue
}

// NewConsensusEvent is a NEWCONSENSUS event: a new consensus arrived, and
// Relays lists every relay in it (control-spec 4.1.15).
type NewConsensusEvent struct {
	Base
	Relays  []RouterStatus
	Unknown []KeyValue
}

func parseNSEvent(b Base, a *Args) (Event, error) {
	first := &b.Raw.Lines[0]
	if first.Sep != '+' {
		return nil, errors.New("no data")
	}
	relays, err := ParseRouterStatuses(first.Data)
	if err != nil {
		return nil, err
	}
	var unknown []KeyValue
	if err := keywords(a, extraLines(b.Raw), noKeywords, &unknown); err != nil {
		return nil, err
	}
	if b.Type == EventNewConsensus {
		return &NewConsensusEvent{Base: b, Relays: relays, Unknown: unknown}, nil
	}
	return &NSEvent{Base: b, Relays: relays, Unknown: unknown}, nil
}

// ClientsSeenEvent is a CLIENTS_SEEN event: a summary of the countries
// clients came from, for bridges (control-spec 4.1.14).
type ClientsSeenEvent struct {
	Base
	TimeStarted    time.Time // UTC
	CountrySummary []Count   // country code and rounded count of clients
	IPVersions     []Count   // "v4", "v6" and rounded count of clients
	Unknown        []KeyValue
}

func (e *ClientsSeenEvent) set(kv KeyValue) bool {
	if !kv.HasValue {
		return false
	}
	var counts *[]Count
	switch kv.Key {
	case "TimeStarted":
		t, ok := parseTime(kv.Value, ' ', time.UTC)
		if !ok {
			// Tor before 0.2.1 wrote "Thu Dec 25 23:50:43 EST 2008".
			var err error
			if t, err = time.Parse(time.UnixDate, kv.Value); err != nil {
				return false
			}
		}
		e.TimeStarted = t
		return true
	case "CountrySummary":
		counts = &e.CountrySummary
	case "IPVersions":
		counts = &e.IPVersions
	default:
		return false
	}
	c, ok := parseCounts(kv.Value, '=')
	if ok {
		*counts = c
	}
	return ok
}

func parseClientsSeenEvent(b Base, a *Args) (Event, error) {
	ev := &ClientsSeenEvent{Base: b}
	return keywordEvent(ev, a, ev.set, &ev.Unknown)
}

// BuildTimeoutSetEvent is a BUILDTIMEOUT_SET event: tor set a new circuit
// build timeout (control-spec 4.1.16).
type BuildTimeoutSetEvent struct {
	Base
	SetType        string // COMPUTED, RESET, SUSPENDED, DISCARD, RESUME, or others
	TotalTimes     int64
	TimeoutMs      int64
	Xm             int64
	Alpha          float64
	CutoffQuantile float64
	TimeoutRate    float64
	CloseMs        int64
	CloseRate      float64
	Unknown        []KeyValue
}

func setFloat(p *float64, s string) bool {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return false
	}
	*p = f
	return true
}

func (e *BuildTimeoutSetEvent) set(kv KeyValue) bool {
	if !kv.HasValue {
		return false
	}
	switch kv.Key {
	case "TOTAL_TIMES":
		return setUint(&e.TotalTimes, kv.Value)
	case "TIMEOUT_MS":
		return setUint(&e.TimeoutMs, kv.Value)
	case "XM":
		return setUint(&e.Xm, kv.Value)
	case "ALPHA":
		return setFloat(&e.Alpha, kv.Value)
	case "CUTOFF_QUANTILE":
		return setFloat(&e.CutoffQuantile, kv.Value)
	case "TIMEOUT_RATE":
		return setFloat(&e.TimeoutRate, kv.Value)
	case "CLOSE_MS":
		return setUint(&e.CloseMs, kv.Value)
	case "CLOSE_RATE":
		return setFloat(&e.CloseRate, kv.Value)
	}
	return false
}

func parseBuildTimeoutSetEvent(b Base, a *Args) (Event, error) {
	ev := &BuildTimeoutSetEvent{Base: b}
	typ, ok := a.Word()
	if !ok || !isKeyword(typ) {
		return nil, errors.New("missing or bad type")
	}
	ev.SetType = typ
	if err := keywords(a, extraLines(b.Raw), ev.set, &ev.Unknown); err != nil {
		return nil, err
	}
	return ev, nil
}

// SignalEvent is a SIGNAL event: tor acted on a signal (control-spec
// 4.1.17).
type SignalEvent struct {
	Base
	Signal  Signal // RELOAD, DUMP, DEBUG, NEWNYM, CLEARDNSCACHE, or others
	Unknown []KeyValue
}

func parseSignalEvent(b Base, a *Args) (Event, error) {
	ev := &SignalEvent{Base: b}
	sig, ok := a.Word()
	if !ok || !isKeyword(sig) {
		return nil, errors.New("missing or bad signal")
	}
	ev.Signal = Signal(sig)
	if err := keywords(a, extraLines(b.Raw), noKeywords, &ev.Unknown); err != nil {
		return nil, err
	}
	return ev, nil
}

// ConfChangedEvent is a CONF_CHANGED event: configuration options changed
// (control-spec 4.1.18).
type ConfChangedEvent struct {
	Base
	// Changes holds one entry for each line tor sent, in order: the option
	// and its new value as tor wrote it, or HasValue false for an option
	// that is now unset. An option with several values appears once for
	// each.
	Changes []KeyValue
	Unknown []KeyValue
}

func parseConfChangedEvent(b Base, a *Args) (Event, error) {
	ev := &ConfChangedEvent{Base: b}
	if err := keywords(a, nil, noKeywords, &ev.Unknown); err != nil {
		return nil, err
	}
	extra := extraLines(b.Raw)
	if len(extra) > 0 {
		ev.Changes = make([]KeyValue, len(extra))
	}
	for i := range extra {
		l := &extra[i]
		k, v, ok := strings.Cut(l.Text, "=")
		if l.Sep == '+' {
			v, ok = l.Data, true
		}
		ev.Changes[i] = KeyValue{Key: k, Value: v, HasValue: ok}
	}
	return ev, nil
}

// TransportLaunchedEvent is a TRANSPORT_LAUNCHED event: a pluggable
// transport is listening (control-spec 4.1.20).
type TransportLaunchedEvent struct {
	Base
	TransportType string // "server" or "client"
	Name          string
	Address       string
	Port          int
	Unknown       []KeyValue
}

func parseTransportLaunchedEvent(b Base, a *Args) (Event, error) {
	ev := &TransportLaunchedEvent{Base: b}
	var ok bool
	var port string
	if ev.TransportType, ok = a.Word(); !ok || ev.TransportType == "" {
		return nil, errors.New("missing type")
	}
	if ev.Name, ok = a.Word(); !ok || ev.Name == "" {
		return nil, errors.New("missing name")
	}
	if ev.Address, ok = a.Word(); !ok || ev.Address == "" {
		return nil, errors.New("missing address")
	}
	if port, ok = a.Word(); ok {
		ev.Port, ok = parsePort(port)
	}
	if !ok {
		return nil, errors.New("missing or bad port")
	}
	if err := keywords(a, extraLines(b.Raw), noKeywords, &ev.Unknown); err != nil {
		return nil, err
	}
	return ev, nil
}

// HSDescEvent is an HS_DESC event: an onion service descriptor was fetched,
// uploaded or created, or that failed (control-spec 4.1.25).
type HSDescEvent struct {
	Base
	// Action: REQUESTED, UPLOAD, RECEIVED, UPLOADED, IGNORE, FAILED,
	// CREATED, or others.
	Action   string
	Address  string // the onion address without ".onion", or "UNKNOWN"
	AuthType string // NO_AUTH, BASIC_AUTH, STEALTH_AUTH, UNKNOWN
	// HSDir is the directory as tor sent it: a LongName, a fingerprint or
	// "UNKNOWN"; HSDirRelay is it parsed, zero for "UNKNOWN".
	HSDir        string
	HSDirRelay   PathHop
	DescriptorID string
	Reason       string // for FAILED: BAD_DESC, QUERY_REJECTED, NOT_FOUND, ...
	Replica      int64  // for v2 CREATED
	HSDirIndex   string // v3: the directory's index, in hex
	Unknown      []KeyValue
}

func (e *HSDescEvent) set(kv KeyValue) bool {
	if !kv.HasValue {
		return false
	}
	switch kv.Key {
	case "REASON":
		e.Reason = kv.Value
	case "REPLICA":
		return setUint(&e.Replica, kv.Value)
	case "HSDIR_INDEX":
		e.HSDirIndex = kv.Value
	default:
		return false
	}
	return true
}

// hsDirWord reads an HsDir: a ServerSpec or "UNKNOWN".
func hsDirWord(a *Args) (string, PathHop, error) {
	w, ok := a.Word()
	if !ok || w == "" {
		return "", PathHop{}, errors.New("missing HS directory")
	}
	if w == "UNKNOWN" {
		return w, PathHop{}, nil
	}
	h, err := ParseServerSpec(w)
	return w, h, err
}

func parseHSDescEvent(b Base, a *Args) (Event, error) {
	ev := &HSDescEvent{Base: b}
	var ok bool
	if ev.Action, ok = a.Word(); !ok || !isKeyword(ev.Action) {
		return nil, errors.New("missing or bad action")
	}
	if ev.Address, ok = a.Word(); !ok || ev.Address == "" {
		return nil, errors.New("missing address")
	}
	if ev.AuthType, ok = a.Word(); !ok || ev.AuthType == "" {
		return nil, errors.New("missing auth type")
	}
	var err error
	if ev.HSDir, ev.HSDirRelay, err = hsDirWord(a); err != nil {
		return nil, err
	}
	if a.More() && !a.AtKeyword() {
		ev.DescriptorID, _ = a.Word()
	}
	if err := keywords(a, extraLines(b.Raw), ev.set, &ev.Unknown); err != nil {
		return nil, err
	}
	return ev, nil
}

// HSDescContentEvent is an HS_DESC_CONTENT event: the text of a fetched
// onion service descriptor (control-spec 4.1.26).
type HSDescContentEvent struct {
	Base
	Address      string // without ".onion"; "UNKNOWN" when the fetch failed
	DescriptorID string
	HSDir        string // as tor sent it; HSDirRelay is it parsed
	HSDirRelay   PathHop
	Descriptor   string // "" when the fetch failed
	Unknown      []KeyValue
}

func parseHSDescContentEvent(b Base, a *Args) (Event, error) {
	ev := &HSDescContentEvent{Base: b, Descriptor: b.Raw.Lines[0].Data}
	var ok bool
	if ev.Address, ok = a.Word(); !ok || ev.Address == "" {
		return nil, errors.New("missing address")
	}
	if ev.DescriptorID, ok = a.Word(); !ok || ev.DescriptorID == "" {
		return nil, errors.New("missing descriptor ID")
	}
	var err error
	if ev.HSDir, ev.HSDirRelay, err = hsDirWord(a); err != nil {
		return nil, err
	}
	if err := keywords(a, extraLines(b.Raw), noKeywords, &ev.Unknown); err != nil {
		return nil, err
	}
	return ev, nil
}

// NetworkLivenessEvent is a NETWORK_LIVENESS event (control-spec 4.1.27).
type NetworkLivenessEvent struct {
	Base
	Status  string // "UP", "DOWN", or others
	Unknown []KeyValue
}

func parseNetworkLivenessEvent(b Base, a *Args) (Event, error) {
	ev := &NetworkLivenessEvent{Base: b}
	st, ok := a.Word()
	if !ok || !isKeyword(st) {
		return nil, errBadStatus
	}
	ev.Status = st
	if err := keywords(a, extraLines(b.Raw), noKeywords, &ev.Unknown); err != nil {
		return nil, err
	}
	return ev, nil
}
