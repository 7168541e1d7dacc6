package main

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// torMix generates an event stream shaped like what tor 0.4.9 sends a
// controller subscribed to CIRC, STREAM, BW and ORCONN (and, as a busy
// controller also is, to CONF_CHANGED and NS): the forms are those of the
// recordings in ctl/testdata/tor-0.4.9/events.txt.
//
//   - Circuits have full lifecycles: LAUNCHED, EXTENDED hop by hop, BUILT,
//     then CLOSED (REASON=FINISHED, ...) or, while building, FAILED. Paths
//     are "$FP~nick" hops; every event carries BUILD_FLAGS, PURPOSE and
//     TIME_CREATED; onion-service purposes carry HS_STATE and REND_QUERY,
//     conflux ones CONFLUX_ID. About m.live circuits are kept alive.
//   - Streams go NEW (SOURCE_ADDR, PURPOSE, SOCKS credentials,
//     CLIENT_PROTOCOL, NYM_EPOCH, SESSION_GROUP, ISO_FIELDS) or NEWRESOLVE,
//     SENTCONNECT/SENTRESOLVE, REMAP, SUCCEEDED, sometimes DETACHED and
//     back, then CLOSED; some FAILED, then CLOSED; some are tor's own
//     directory streams.
//   - BW (sometimes with DIR/OR/EXIT/APP), ORCONN (LAUNCHED, CONNECTED,
//     CLOSED with NCIRCS, REASON, ID).
//   - Every 50th event is a "650-" multi-line CONF_CHANGED, every 400th a
//     "650+" NS data event.
//
// It is deterministic for a seed. Counted says how many of the events were
// CIRC, STREAM, BW or ORCONN (what the benchmark's handlers count);
// userStreams how many NEW and NEWRESOLVE streams a policy is asked about.
type torMix struct {
	rng    *rand.Rand
	relays []string
	live   int // circuits to keep alive

	circs    []*mixCirc // live, oldest first
	building []*mixCirc
	streams  []*mixStream
	orconns  []int
	nextID   int
	nextConn int
	clock    int64 // seconds since the start, for TIME_CREATED

	n           int // events generated
	Counted     int
	userStreams int
	seen        map[string]int // event form -> count, for the tests
}

type mixCirc struct {
	id      string
	purpose string
	flags   string
	extra   string // HS_STATE/REND_QUERY or CONFLUX_ID
	created string
	path    []string
	hops    int // built so far
	built   bool
}

type mixStream struct {
	id       string
	status   string
	target   string
	circ     string
	resolve  bool
	internal bool
	detached bool
	iso      string // the keywords every event of the stream repeats
}

// mixStreams bounds the live streams, as a busy client's.
const mixStreams = 300

// purposes are the circuit purposes, with their weights.
var mixPurposes = []struct {
	purpose, flags string
	weight         int
}{
	{"GENERAL", "NEED_CAPACITY", 55},
	{"GENERAL", "IS_INTERNAL,NEED_CAPACITY", 10},
	{"HS_CLIENT_REND", "IS_INTERNAL,NEED_CAPACITY", 8},
	{"HS_SERVICE_INTRO", "IS_INTERNAL,NEED_UPTIME", 7},
	{"HS_VANGUARDS", "IS_INTERNAL,NEED_CAPACITY,NEED_UPTIME", 10},
	{"CONFLUX_LINKED", "NEED_CAPACITY,NEED_UPTIME", 10},
}

func newTorMix(seed uint64, live int) *torMix {
	m := &torMix{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), live: live, nextID: 1, seen: map[string]int{}}
	for i := range 300 {
		var fp [20]byte
		for j := range fp {
			fp[j] = byte(m.rng.IntN(256))
		}
		m.relays = append(m.relays, fmt.Sprintf("$%X~relay%d", fp[:], i))
	}
	return m
}

// next appends the next event, with its CRLFs, to b.
func (m *torMix) next(b []byte) []byte {
	m.n++
	switch {
	case m.n%400 == 0:
		return m.nsEvent(b)
	case m.n%50 == 0:
		return m.confChanged(b)
	}
	m.Counted++
	r := m.rng.IntN(100)
	switch {
	case len(m.circs) < m.live && r < 60 || r < 30:
		return m.circEvent(b)
	case r < 80:
		return m.streamEvent(b)
	case r < 90:
		return m.bwEvent(b)
	default:
		return m.orconnEvent(b)
	}
}

func (m *torMix) id() string {
	m.nextID++
	return strconv.Itoa(m.nextID)
}

func (m *torMix) circEvent(b []byte) []byte {
	switch r := m.rng.IntN(10); {
	case len(m.building) > 0 && r < 6:
		return m.extend(b)
	case len(m.circs) < m.live:
		return m.launch(b)
	default:
		return m.closeCirc(b)
	}
}

func (m *torMix) launch(b []byte) []byte {
	w := m.rng.IntN(100)
	p := mixPurposes[0]
	for _, q := range mixPurposes {
		if w < q.weight {
			p = q
			break
		}
		w -= q.weight
	}
	m.clock++
	c := &mixCirc{id: m.id(), purpose: p.purpose, flags: p.flags,
		created: fmt.Sprintf("2026-11-22T%02d:%02d:%02d.%06d", m.clock/3600%24, m.clock/60%60, m.clock%60, m.rng.IntN(1000000))}
	switch {
	case strings.HasPrefix(p.purpose, "HS_CLIENT"):
		c.extra = " HS_STATE=HSCR_CONNECTING REND_QUERY=" + m.onion()
	case strings.HasPrefix(p.purpose, "HS_SERVICE"):
		c.extra = " HS_STATE=HSSI_CONNECTING REND_QUERY=" + m.onion()
	case strings.HasPrefix(p.purpose, "CONFLUX"):
		c.extra = fmt.Sprintf(" CONFLUX_ID=%032X", m.rng.Uint64())
	}
	hops := 3
	if c.flags != "NEED_CAPACITY" && m.rng.IntN(3) == 0 {
		hops = 4
	}
	for range hops {
		c.path = append(c.path, m.relays[m.rng.IntN(len(m.relays))])
	}
	m.circs = append(m.circs, c)
	m.building = append(m.building, c)
	return m.circLine(b, c, "LAUNCHED", "")
}

func (m *torMix) onion() string {
	const a = "abcdefghijklmnopqrstuvwxyz234567"
	var s [56]byte
	for i := range s {
		s[i] = a[m.rng.IntN(len(a))]
	}
	return string(s[:])
}

// extend moves a circuit under construction one hop on: EXTENDED, BUILT,
// or (one in twenty) FAILED.
func (m *torMix) extend(b []byte) []byte {
	i := m.rng.IntN(len(m.building))
	c := m.building[i]
	if m.rng.IntN(20) == 0 {
		m.building = append(m.building[:i], m.building[i+1:]...)
		m.forget(c)
		return m.circLine(b, c, "FAILED", " REASON="+[]string{"TIMEOUT", "DESTROYED", "CHANNEL_CLOSED"}[m.rng.IntN(3)])
	}
	c.hops++
	if c.hops < len(c.path) {
		return m.circLine(b, c, "EXTENDED", "")
	}
	c.built = true
	m.building = append(m.building[:i], m.building[i+1:]...)
	return m.circLine(b, c, "BUILT", "")
}

// closeCirc closes a circuit, the oldest more often than the others.
func (m *torMix) closeCirc(b []byte) []byte {
	i := m.rng.IntN(len(m.circs))
	if m.rng.IntN(2) == 0 {
		i = m.rng.IntN(1 + len(m.circs)/10)
	}
	c := m.circs[i]
	if !c.built {
		return m.extend(b)
	}
	m.forget(c)
	return m.circLine(b, c, "CLOSED", " REASON="+[]string{"FINISHED", "FINISHED", "REQUESTED", "IOERROR"}[m.rng.IntN(4)])
}

func (m *torMix) forget(c *mixCirc) {
	for i, x := range m.circs {
		if x == c {
			m.circs = append(m.circs[:i], m.circs[i+1:]...)
			return
		}
	}
}

func (m *torMix) circLine(b []byte, c *mixCirc, status, reason string) []byte {
	m.seen["CIRC "+status]++
	b = append(b, "650 CIRC "...)
	b = append(b, c.id...)
	b = append(b, ' ')
	b = append(b, status...)
	if c.hops > 0 {
		b = append(b, ' ')
		b = append(b, strings.Join(c.path[:c.hops], ",")...)
	}
	b = append(b, " BUILD_FLAGS="...)
	b = append(b, c.flags...)
	b = append(b, " PURPOSE="...)
	b = append(b, c.purpose...)
	b = append(b, c.extra...)
	b = append(b, " TIME_CREATED="...)
	b = append(b, c.created...)
	b = append(b, reason...)
	return append(b, "\r\n"...)
}

// builtGeneral is a built GENERAL circuit for a stream, or "" when there is
// none yet.
func (m *torMix) builtGeneral() string {
	for range 8 {
		if len(m.circs) == 0 {
			break
		}
		c := m.circs[m.rng.IntN(len(m.circs))]
		if c.built && c.purpose == "GENERAL" {
			return c.id
		}
	}
	return ""
}

func (m *torMix) streamEvent(b []byte) []byte {
	if len(m.streams) < mixStreams/2 || len(m.streams) < mixStreams && m.rng.IntN(4) == 0 {
		return m.newStream(b)
	}
	i := m.rng.IntN(len(m.streams))
	s := m.streams[i]
	next, extra := m.streamStep(s)
	if next == "" { // no circuit for it yet
		return m.bwEvent(b)
	}
	s.status = next
	if next == "CLOSED" {
		m.streams = append(m.streams[:i], m.streams[i+1:]...)
	}
	return m.streamLine(b, s, extra)
}

// streamStep is a stream's next status and what its event adds, or "" when
// it cannot move (no built circuit yet).
func (m *torMix) streamStep(s *mixStream) (status, extra string) {
	switch s.status {
	case "NEW", "NEWRESOLVE", "DETACHED":
		if s.circ = m.builtGeneral(); s.circ == "" {
			return "", ""
		}
		if s.resolve {
			return "SENTRESOLVE", ""
		}
		return "SENTCONNECT", ""
	case "SENTCONNECT", "SENTRESOLVE":
		if m.rng.IntN(15) == 0 {
			return "FAILED", " REASON=END REMOTE_REASON=" + []string{"EXITPOLICY", "CONNECTREFUSED", "TIMEOUT"}[m.rng.IntN(3)]
		}
		return "REMAP", " SOURCE=EXIT"
	case "REMAP":
		return "SUCCEEDED", ""
	case "SUCCEEDED":
		if !s.detached && !s.resolve && m.rng.IntN(10) == 0 {
			s.detached = true
			return "DETACHED", " REASON=TIMEOUT"
		}
		return "CLOSED", " REASON=DONE"
	case "FAILED":
		return "CLOSED", " REASON=END REMOTE_REASON=EXITPOLICY"
	}
	return "CLOSED", " REASON=DONE"
}

func (m *torMix) newStream(b []byte) []byte {
	s := &mixStream{id: m.id(), status: "NEW", circ: "0"}
	user := m.rng.IntN(50)
	s.iso = fmt.Sprintf(` SOCKS_USERNAME="user%d" SOCKS_PASSWORD="pw%d" CLIENT_PROTOCOL=SOCKS5 NYM_EPOCH=%d SESSION_GROUP=-4 ISO_FIELDS=SOCKS_USERNAME,SOCKS_PASSWORD,CLIENTADDR,SESSION_GROUP,NYM_EPOCH`, user, user, m.n/100000)
	source := fmt.Sprintf(" SOURCE_ADDR=127.0.0.1:%d PURPOSE=USER", 20000+m.rng.IntN(40000))
	switch r := m.rng.IntN(20); {
	case r == 0: // tor's own directory fetch: no policy
		s.internal = true
		s.target = fmt.Sprintf("10.%d.%d.%d:443", m.rng.IntN(256), m.rng.IntN(256), m.rng.IntN(256))
		s.iso = " CLIENT_PROTOCOL=UNKNOWN NYM_EPOCH=0 SESSION_GROUP=-2 ISO_FIELDS="
		source = " SOURCE_ADDR=(Tor_internal):0 PURPOSE=DIR_FETCH"
	case r < 3:
		s.resolve, s.status = true, "NEWRESOLVE"
		s.target = fmt.Sprintf("host%d.example:0", m.rng.IntN(1000))
		s.iso = " CLIENT_PROTOCOL=UNKNOWN NYM_EPOCH=0 SESSION_GROUP=-3 ISO_FIELDS=SOCKS_USERNAME,SOCKS_PASSWORD,CLIENTADDR,SESSION_GROUP,NYM_EPOCH"
		source = fmt.Sprintf(" SOURCE_ADDR=127.0.0.1:%d PURPOSE=DNS_REQUEST", 20000+m.rng.IntN(40000))
	default:
		s.target = fmt.Sprintf("www%d.example.com:%d", m.rng.IntN(1000), []int{443, 443, 80, 8080}[m.rng.IntN(4)])
	}
	if !s.internal {
		m.userStreams++
	}
	m.streams = append(m.streams, s)
	return m.streamLine(b, s, source)
}

func (m *torMix) streamLine(b []byte, s *mixStream, extra string) []byte {
	m.seen["STREAM "+s.status]++
	circ := s.circ
	if s.status == "NEW" || s.status == "NEWRESOLVE" {
		circ = "0"
	}
	b = append(b, "650 STREAM "...)
	b = append(b, s.id...)
	b = append(b, ' ')
	b = append(b, s.status...)
	b = append(b, ' ')
	b = append(b, circ...)
	b = append(b, ' ')
	b = append(b, s.target...)
	b = append(b, extra...)
	b = append(b, s.iso...)
	return append(b, "\r\n"...)
}

func (m *torMix) bwEvent(b []byte) []byte {
	rd, wr := m.rng.IntN(2_000_000), m.rng.IntN(2_000_000)
	if m.rng.IntN(3) == 0 {
		m.seen["BW by type"]++
		return fmt.Appendf(b, "650 BW %d %d DIR=%d OR=%d EXIT=%d APP=%d\r\n", rd, wr, rd/20, rd/2, rd/4, rd/5)
	}
	m.seen["BW"]++
	return fmt.Appendf(b, "650 BW %d %d\r\n", rd, wr)
}

func (m *torMix) orconnEvent(b []byte) []byte {
	relay := m.relays[m.rng.IntN(len(m.relays))]
	switch r := m.rng.IntN(3); {
	case r == 0 || len(m.orconns) == 0:
		m.nextConn++
		m.orconns = append(m.orconns, m.nextConn)
		m.seen["ORCONN LAUNCHED"]++
		return fmt.Appendf(b, "650 ORCONN %s LAUNCHED ID=%d\r\n", relay, m.nextConn)
	case r == 1:
		id := m.orconns[m.rng.IntN(len(m.orconns))]
		m.seen["ORCONN CONNECTED"]++
		return fmt.Appendf(b, "650 ORCONN %s CONNECTED NCIRCS=%d ID=%d\r\n", relay, m.rng.IntN(20), id)
	default:
		i := m.rng.IntN(len(m.orconns))
		id := m.orconns[i]
		m.orconns = append(m.orconns[:i], m.orconns[i+1:]...)
		m.seen["ORCONN CLOSED"]++
		return fmt.Appendf(b, "650 ORCONN %s CLOSED NCIRCS=%d REASON=DONE ID=%d\r\n", relay, m.rng.IntN(5), id)
	}
}

func (m *torMix) confChanged(b []byte) []byte {
	m.seen["650- CONF_CHANGED"]++
	return fmt.Appendf(b, "650-CONF_CHANGED\r\n650-MaxCircuitDirtiness=%d\r\n650-Log=notice stdout\r\n650 OK\r\n", 600+m.rng.IntN(60))
}

func (m *torMix) nsEvent(b []byte) []byte {
	m.seen["650+ NS"]++
	r := m.relays[m.rng.IntN(len(m.relays))]
	nick := r[strings.IndexByte(r, '~')+1:]
	return fmt.Appendf(b, "650+NS\r\nr %s f0EiwEkqMHJn43W915UMAmpLLgU DRLg/xno78V7tMbdBqbt2CmRMso 2038-01-01 00:00:00 127.0.0.%d 9001 0\r\ns Exit Fast Guard HSDir Running Stable V2Dir Valid\r\nw Bandwidth=%d\r\np accept 80,443\r\n.\r\n650 OK\r\n",
		nick, 1+m.rng.IntN(250), m.rng.IntN(100000))
}
