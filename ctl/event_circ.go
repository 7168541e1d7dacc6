package ctl

import (
	"errors"
	"strings"
	"time"
)

// PathHop is a relay as tor names it in events (a ServerSpec, control-spec
// 2.4): "$fingerprint~nickname", the older "$fingerprint=nickname",
// "$fingerprint", or a bare nickname.
type PathHop struct {
	Fingerprint string // 40 hex digits without "$"; "" when only a nickname was given
	Nickname    string // "" when only a fingerprint was given
}

// String writes h as a LongName ("$fingerprint~nickname"), or as the bare
// nickname when there is no fingerprint.
func (h PathHop) String() string {
	switch {
	case h.Fingerprint == "":
		return h.Nickname
	case h.Nickname == "":
		return "$" + h.Fingerprint
	}
	return "$" + h.Fingerprint + "~" + h.Nickname
}

var (
	errBadFingerprint = errors.New("bad fingerprint")
	errBadNickname    = errors.New("bad nickname")
)

// ParseServerSpec reads a relay name as tor writes it in events and GETINFO
// answers: "$fingerprint~nickname", "$fingerprint=nickname", "$fingerprint",
// a nickname, or 40 hex digits without "$" (the ServerID2 of entry-guards).
func ParseServerSpec(s string) (PathHop, error) {
	if s != "" && s[0] == '$' {
		if len(s) < 41 || !isHex(s[1:41]) {
			return PathHop{}, errBadFingerprint
		}
		h := PathHop{Fingerprint: s[1:41]}
		if len(s) == 41 {
			return h, nil
		}
		if s[41] != '~' && s[41] != '=' || !isNickname(s[42:]) {
			return PathHop{}, errBadNickname
		}
		h.Nickname = s[42:]
		return h, nil
	}
	if len(s) == 40 && isHex(s) {
		return PathHop{Fingerprint: s}, nil
	}
	if !isNickname(s) {
		return PathHop{}, errBadNickname
	}
	return PathHop{Nickname: s}, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !hexDigit[s[i]] {
			return false
		}
	}
	return true
}

var hexDigit = [256]bool{
	'0': true, '1': true, '2': true, '3': true, '4': true, '5': true, '6': true, '7': true, '8': true, '9': true,
	'A': true, 'B': true, 'C': true, 'D': true, 'E': true, 'F': true,
	'a': true, 'b': true, 'c': true, 'd': true, 'e': true, 'f': true,
}

// isNickname reports whether s is 1 to 19 letters and digits.
func isNickname(s string) bool { return isAlnumWord(s, 19) }

// isAlnumWord reports whether s is 1 to max ASCII letters and digits.
func isAlnumWord(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

// isKeyword reports whether s is a non-empty run of letters, digits and '_'.
func isKeyword(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isKeyChar(s[i]) {
			return false
		}
	}
	return true
}

// parsePath reads a comma-separated list of ServerSpecs into buf, or into
// a new slice if buf is too short.
func parsePath(s string, buf []PathHop) ([]PathHop, error) {
	path := buf[:0]
	if n := strings.Count(s, ",") + 1; n > cap(buf) {
		path = make([]PathHop, 0, n)
	}
	for {
		i := strings.IndexByte(s, ',')
		item := s
		if i >= 0 {
			item = s[:i]
		}
		h, err := ParseServerSpec(item)
		if err != nil {
			return nil, err
		}
		path = append(path, h)
		if i < 0 {
			return path, nil
		}
		s = s[i+1:]
	}
}

// CircStatus is the status of a circuit in a CIRC event or in
// circuit-status. Tor may send values not listed here.
type CircStatus string

const (
	CircLaunched  CircStatus = "LAUNCHED"
	CircBuilt     CircStatus = "BUILT"
	CircGuardWait CircStatus = "GUARD_WAIT"
	CircExtended  CircStatus = "EXTENDED"
	CircFailed    CircStatus = "FAILED"
	CircClosed    CircStatus = "CLOSED"

	// The CircEvent of a CIRC_MINOR event.
	CircPurposeChanged CircStatus = "PURPOSE_CHANGED"
	CircCannibalized   CircStatus = "CANNIBALIZED"
)

// Circuit is a circuit as a CIRC event or a line of GETINFO circuit-status
// describes it (control-spec 4.1.1). Fields tor did not send are zero.
type Circuit struct {
	ID     string
	Status CircStatus
	Path   []PathHop // the hops built so far, first hop first
	// BuildFlags: ONEHOP_TUNNEL, IS_INTERNAL, NEED_CAPACITY, NEED_UPTIME,
	// or others.
	BuildFlags []string
	// Purpose: GENERAL, HS_CLIENT_INTRO, HS_CLIENT_REND, HS_SERVICE_INTRO,
	// HS_SERVICE_REND, TESTING, CONTROLLER, MEASURE_TIMEOUT, HS_VANGUARDS,
	// PATH_BIAS_TESTING, CIRCUIT_PADDING, or others.
	Purpose       string
	HSState       string    // HSCI_CONNECTING, HSCR_JOINED, ...
	RendQuery     string    // the onion address, without ".onion"
	TimeCreated   time.Time // UTC; the exact text is in the raw reply
	Reason        string    // for FAILED and CLOSED
	RemoteReason  string
	SocksUsername string
	SocksPassword string
	HSPoWType     string // HS_POW, e.g. "v1"
	HSPoWEffort   int64
	// ConfluxID and ConfluxRTT (milliseconds) are sent by tor 0.4.8 and
	// later for conflux circuits, though the spec does not name them yet.
	ConfluxID  string
	ConfluxRTT int64
	// Unknown holds the arguments and additional lines not recognised,
	// in order.
	Unknown []KeyValue
}

// Exit returns the last hop of the path and whether there is one.
func (c *Circuit) Exit() (PathHop, bool) {
	if len(c.Path) == 0 {
		return PathHop{}, false
	}
	return c.Path[len(c.Path)-1], true
}

var (
	errBadCircuitID = errors.New("bad circuit ID")
	errBadStatus    = errors.New("missing or bad status")
)

// circBufs holds the Path and BuildFlags of a typical circuit, so that an
// event and its slices are one allocation.
type circBufs struct {
	hops  [4]PathHop
	flags [4]string
}

// parsePositional reads "CircuitID SP CircStatus [SP Path]". bufs, if not
// nil, is where Path goes if it fits.
func (c *Circuit) parsePositional(a *Args, bufs *circBufs) error {
	id, ok := a.Word()
	if !ok || !isID(id) {
		return errBadCircuitID
	}
	st, ok := a.Word()
	if !ok || !isKeyword(st) {
		return errBadStatus
	}
	c.ID, c.Status = id, CircStatus(st)
	if a.More() && !a.AtKeyword() {
		p, _ := a.Word()
		var buf []PathHop
		if bufs != nil {
			buf = bufs.hops[:0:len(bufs.hops)]
		}
		path, err := parsePath(p, buf)
		if err != nil {
			return err
		}
		c.Path = path[:len(path):len(path)]
	}
	return nil
}

// set takes the keyword arguments of control-spec 4.1.1.
func (c *Circuit) set(kv KeyValue) bool {
	if !kv.HasValue {
		return false
	}
	switch kv.Key {
	case "BUILD_FLAGS":
		c.BuildFlags = splitList(kv.Value)
	case "PURPOSE":
		c.Purpose = kv.Value
	case "HS_STATE":
		c.HSState = kv.Value
	case "REND_QUERY":
		c.RendQuery = kv.Value
	case "TIME_CREATED":
		t, ok := parseISOTime2Frac(kv.Value)
		if !ok {
			return false
		}
		c.TimeCreated = t
	case "REASON":
		c.Reason = kv.Value
	case "REMOTE_REASON":
		c.RemoteReason = kv.Value
	case "SOCKS_USERNAME":
		c.SocksUsername = kv.Value
	case "SOCKS_PASSWORD":
		c.SocksPassword = kv.Value
	case "HS_POW":
		typ, effort, ok := strings.Cut(kv.Value, ",")
		n, nok := parseUint(effort)
		if !ok || !nok {
			return false
		}
		c.HSPoWType, c.HSPoWEffort = typ, n
	case "CONFLUX_ID":
		c.ConfluxID = kv.Value
	case "CONFLUX_RTT":
		return setUint(&c.ConfluxRTT, kv.Value)
	default:
		return false
	}
	return true
}

// parseCircuit reads a circuit from its event text or a circuit-status
// line, with any additional event lines in extra.
func parseCircuit(c *Circuit, a *Args, extra []Line, bufs *circBufs) error {
	if err := c.parsePositional(a, bufs); err != nil {
		return err
	}
	set := c.set
	if bufs != nil {
		set = func(kv KeyValue) bool {
			if kv.Key == "BUILD_FLAGS" && kv.HasValue {
				c.BuildFlags = splitListInto(kv.Value, bufs.flags[:0:len(bufs.flags)])
				return true
			}
			return c.set(kv)
		}
	}
	return keywords(a, extra, set, &c.Unknown)
}

// CircEvent is a CIRC event: a circuit changed status (control-spec 4.1.1).
type CircEvent struct {
	Base
	Circuit
}

func parseCircEvent(b Base, a *Args) (Event, error) {
	// One allocation for the event, its slices and its Reply struct.
	ev := &struct {
		CircEvent
		bufs  circBufs
		reply Reply
	}{CircEvent: CircEvent{Base: b}}
	if err := parseCircuit(&ev.Circuit, a, extraLines(b.Raw), &ev.bufs); err != nil {
		return nil, err
	}
	ev.ownReply(&ev.reply)
	return &ev.CircEvent, nil
}

// CircMinorEvent is a CIRC_MINOR event: a circuit's purpose or HS state
// changed, or it was cannibalized (control-spec 4.1.19). Status holds the
// CircEvent: CircPurposeChanged, CircCannibalized or another.
type CircMinorEvent struct {
	Base
	Circuit
	OldPurpose string
	OldHSState string
	// OldTimeCreated is sent by tor 0.4.9 for a cannibalized circuit,
	// though the spec does not name it yet (UTC).
	OldTimeCreated time.Time
}

func (e *CircMinorEvent) set(kv KeyValue) bool {
	switch {
	case !kv.HasValue:
		return false
	case kv.Key == "OLD_PURPOSE":
		e.OldPurpose = kv.Value
	case kv.Key == "OLD_HS_STATE":
		e.OldHSState = kv.Value
	case kv.Key == "OLD_TIME_CREATED":
		t, ok := parseISOTime2Frac(kv.Value)
		if !ok {
			return false
		}
		e.OldTimeCreated = t
	default:
		return e.Circuit.set(kv)
	}
	return true
}

func parseCircMinorEvent(b Base, a *Args) (Event, error) {
	ev := &CircMinorEvent{Base: b}
	if err := ev.parsePositional(a, nil); err != nil {
		return nil, err
	}
	if err := keywords(a, extraLines(b.Raw), ev.set, &ev.Unknown); err != nil {
		return nil, err
	}
	return ev, nil
}
