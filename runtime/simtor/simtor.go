// Package simtor is the simulated tor of `torscript test` and of the
// runtime's own tests: a control port, in process, that answers every
// command from a small model of tor (its relays, circuits, streams,
// settings and address mappings) and sends the events a test makes happen.
// It records every command it is sent, for the test's expectations. It
// knows the control protocol (ctl) and nothing of the runtime.
package simtor

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/torscript/torscript/ctl"
)

// Tor is one simulated tor. Create it with New; Connect gives a
// controller a connection to it.
type Tor struct {
	mu sync.Mutex
	w  *bufio.Writer // to the controller: the connection being answered, else the newest; nil until one connects
	// The connections made, newest last, and the harness (harness.go).
	sessions []*session
	harness
	relays  []node
	circs   map[string]*circ
	streams map[string]*stream
	nextID  int // circuit and stream ids
	conf    map[string]string
	subs    map[string]bool // event types subscribed
	cmds    []Command
	replies map[string][]canned // keyword → replies to give next
	maps    map[string]string
	virtual int // for MAPADDRESS 0.0.0.0=name
	// replayed holds, during sim.replay, the replies a transcript recorded
	// for each decision command keyword, to give in order.
	replayed map[string][]string
	// The SocksPort (socks.go): listening from the first GETINFO
	// net/listeners/socks; what each exit does with streams.
	socks net.Listener
	exits map[string]exitRule
}

type node struct {
	nick, fp, flags string
	bandwidth       int
	addr            string
	family          []string // nicknames it declares, in its descriptor
}

type circ struct {
	id, status, purpose string
	path                []string // $FP~nick
}

type stream struct {
	id, status, circ, target, source, purpose string
	socksUser, socksPass                      string
	// sock is the SOCKS client's connection, until it is answered
	// (socks.go); sockR reads it.
	sock  net.Conn
	sockR *bufio.Reader
}

// Command is a command line the simulated tor received.
type Command struct {
	Line   string
	Conn   int       // the connection it came on: 1 for the first
	At     time.Time // when it came
	Result string    // EXTENDCIRCUIT: the id of the circuit it made
	used   bool      // an expectation matched it
	index  int       // in Tor.cmds
}

type canned struct {
	code int
	text string
}

// network are the simulated network's relays: three guards, three
// middles and three exits, each in an IPv4 /16 of its own but middle2 and
// exit2, which share 10.5.0.0/16; guard1 and middle1 declare each other
// in their families (a family tor would never put on one circuit), and
// exit3 declares guard2, which does not declare it back (no family).
var network = func() []node {
	var rs []node
	add := func(nick, flags string, bw int, addr string, family ...string) {
		sum := sha1.Sum([]byte(nick))
		rs = append(rs, node{nick: nick, fp: strings.ToUpper(hex.EncodeToString(sum[:])), flags: flags, bandwidth: bw, addr: addr, family: family})
	}
	add("guard1", "Fast Guard Running Stable Valid", 300, "10.1.0.1", "middle1")
	add("guard2", "Fast Guard Running Stable Valid", 200, "10.2.0.1")
	add("guard3", "Fast Guard Running Stable Valid", 100, "10.3.0.1")
	add("middle1", "Fast Running Stable Valid", 250, "10.4.0.1", "guard1")
	add("middle2", "Fast Running Stable Valid", 150, "10.5.0.1")
	add("middle3", "Fast Running Stable Valid", 50, "10.6.0.1")
	add("exit1", "Exit Fast Running Stable Valid", 400, "10.7.0.1")
	add("exit2", "Exit Fast Running Stable Valid", 220, "10.5.0.2")
	add("exit3", "Exit Fast Running Stable Valid", 80, "10.9.0.1", "guard2")
	return rs
}()

// New is a simulated tor with nine relays and no circuit or stream.
func New() *Tor {
	return &Tor{
		relays:  slices.Clone(network),
		circs:   map[string]*circ{},
		streams: map[string]*stream{},
		conf:    map[string]string{LeaveStreams: "0", "EnforceDistinctSubnets": "1"},
		subs:    map[string]bool{},
		replies: map[string][]canned{},
		maps:    map[string]string{},
	}
}

// Connect gives a controller a connection to the simulated tor (it needs
// no authentication).
func (s *Tor) Connect() *ctl.Conn {
	c, _ := s.Dial(context.Background())
	return c
}

// SyncCommand is a controller's barrier: the simulated tor answers it
// without recording it, after everything it wrote before.
const SyncCommand = "SIMSYNC"

// LeaveStreams is the setting a stream policy sets.
const LeaveStreams = "__LeaveStreamsUnattached"

func (s *Tor) serve(sess *session) {
	br := bufio.NewReader(sess.c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "+") {
			for { // a multi-line command's data, to its "." line
				d, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if strings.TrimRight(d, "\r\n") == "." {
					break
				}
			}
		}
		if line != SyncCommand {
			s.record(line, sess.id)
		}
		// The test's own answer first, without the lock: it may send
		// events, drop the connection or wait.
		if reply, ok := s.hookAnswer(line); ok {
			if sess.write(crlf(reply)) != nil {
				return
			}
			continue
		}
		s.mu.Lock()
		s.w = sess.w
		s.answer(line)
		err = s.w.Flush()
		s.w = s.current()
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// answer writes the reply to one command, and the events it causes.
// Called with mu held.
func (s *Tor) answer(line string) {
	if line == SyncCommand {
		s.reply(250, "OK")
		return
	}
	if s.scripted {
		s.raw(crlf(s.scriptedAnswer(line)))
		return
	}
	f := strings.Fields(line)
	kw := ""
	if len(f) > 0 {
		kw = strings.ToUpper(f[0])
	}
	args := f[min(1, len(f)):]
	if q := s.replayed[kw]; len(q) > 0 {
		s.replayed[kw] = q[1:]
		s.raw(q[0])
		return
	}
	if q := s.replies[kw]; len(q) > 0 {
		s.replies[kw] = q[1:]
		s.reply(q[0].code, q[0].text)
		return
	}
	switch kw {
	case "PROTOCOLINFO":
		s.raw("250-PROTOCOLINFO 1\r\n250-AUTH METHODS=NULL\r\n250-VERSION Tor=\"0.4.9.11\"\r\n250 OK\r\n")
	case "GETINFO":
		s.getInfo(args)
	case "GETCONF":
		s.getConf(args)
	case "SETCONF", "RESETCONF":
		s.setConf(kw, args)
	case "SETEVENTS":
		clear(s.subs)
		for _, a := range args {
			s.subs[strings.ToUpper(a)] = true
		}
		s.reply(250, "OK")
	case "EXTENDCIRCUIT":
		s.extend(args)
	case "ATTACHSTREAM":
		s.attach(args)
	case "REDIRECTSTREAM":
		s.redirect(args)
	case "CLOSESTREAM":
		s.closeStream(args)
	case "CLOSECIRCUIT":
		s.closeCircuit(args)
	case "MAPADDRESS":
		s.mapAddress(args)
	case "SIGNAL":
		s.signal(args)
	default:
		s.reply(250, "OK")
	}
}

func (s *Tor) getConf(args []string) {
	var lines []string
	for _, k := range args {
		if v, ok := s.conf[k]; ok {
			lines = append(lines, k+"="+v)
		} else {
			lines = append(lines, k)
		}
	}
	s.multi(lines)
}

func (s *Tor) setConf(kw string, args []string) {
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || kw == "RESETCONF" {
			delete(s.conf, k)
			if k == LeaveStreams {
				s.conf[k] = "0"
			}
			if !ok {
				continue
			}
		}
		s.conf[k] = strings.Trim(v, `"`)
	}
	s.reply(250, "OK")
}

func (s *Tor) redirect(args []string) {
	st := s.stream(args)
	if st == nil {
		s.reply(552, "Unknown stream")
		return
	}
	host := args[1]
	_, port, _ := strings.Cut(st.target, ":")
	if len(args) > 2 {
		port = args[2]
	}
	st.target = host + ":" + port
	s.reply(250, "OK")
}

func (s *Tor) closeStream(args []string) {
	st := s.stream(args)
	if st == nil {
		s.reply(552, "Unknown stream")
		return
	}
	s.reply(250, "OK")
	reason := "MISC"
	if len(args) > 1 {
		if n, err := strconv.Atoi(args[1]); err == nil {
			reason = ctl.RelayEndReason(n).String()
		}
	}
	s.streamStatus(st, "CLOSED", " REASON="+reason)
	socksClosed(st, reason)
	delete(s.streams, st.id)
}

func (s *Tor) closeCircuit(args []string) {
	c := s.circs[argAt(args, 0)]
	if c == nil {
		s.reply(552, "Unknown circuit")
		return
	}
	s.reply(250, "OK")
	s.circStatus(c, "CLOSED", " REASON=REQUESTED")
	delete(s.circs, c.id)
}

func (s *Tor) mapAddress(args []string) {
	var lines []string
	for _, a := range args {
		from, to, _ := strings.Cut(a, "=")
		if from == "0.0.0.0" || from == "::" || from == "." {
			s.virtual++
			from = "127.192.0." + strconv.Itoa(s.virtual)
		}
		if from == to {
			delete(s.maps, from)
		} else {
			s.maps[from] = to
		}
		lines = append(lines, from+"="+to)
	}
	s.multi(lines)
}

func (s *Tor) signal(args []string) {
	s.reply(250, "OK")
	switch sig := strings.ToUpper(argAt(args, 0)); sig {
	case "RELOAD", "HUP", "DUMP", "USR1", "DEBUG", "USR2", "NEWNYM", "CLEARDNSCACHE":
		// Tor announces the signals it acts on without exiting.
		if s.subs["SIGNAL"] {
			s.raw("650 SIGNAL " + sig + "\r\n")
		}
	}
}

func argAt(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}

func (s *Tor) raw(text string) { s.w.WriteString(text) }

func (s *Tor) reply(code int, text string) {
	fmt.Fprintf(s.w, "%d %s\r\n", code, text)
}

// multi writes a reply of one line a value ("250-a", "250 b").
func (s *Tor) multi(lines []string) {
	if len(lines) == 0 {
		s.reply(250, "OK")
		return
	}
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		fmt.Fprintf(s.w, "250%s%s\r\n", sep, l)
	}
}

func (s *Tor) getInfo(keys []string) {
	var b strings.Builder
	for _, k := range keys {
		v, ok := s.info(k)
		if !ok {
			s.reply(552, "Unrecognized key \""+k+"\"")
			return
		}
		if strings.Contains(v, "\n") || k == "circuit-status" || k == "stream-status" || strings.HasPrefix(k, "ns/") {
			fmt.Fprintf(&b, "250+%s=\r\n%s\r\n.\r\n", k, strings.ReplaceAll(v, "\n", "\r\n"))
		} else {
			fmt.Fprintf(&b, "250-%s=%s\r\n", k, v)
		}
	}
	s.raw(b.String() + "250 OK\r\n")
}

func (s *Tor) info(k string) (string, bool) {
	switch {
	case k == "version":
		return "0.4.9.11", true
	case k == "status/bootstrap-phase":
		return `NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`, true
	case k == "net/listeners/socks":
		return ctl.Quote(s.socksAddr()), true
	case k == "process/pid":
		return "1", true
	case k == "circuit-status":
		var lines []string
		for _, id := range sortedIDs(s.circs) {
			lines = append(lines, s.circLine(s.circs[id], s.circs[id].status))
		}
		return strings.Join(lines, "\n"), true
	case k == "stream-status":
		var lines []string
		for _, id := range sortedIDs(s.streams) {
			st := s.streams[id]
			circ := st.circ
			if circ == "" {
				circ = "0" // not attached
			}
			lines = append(lines, fmt.Sprintf("%s %s %s %s", st.id, st.status, circ, st.target))
		}
		return strings.Join(lines, "\n"), true
	case k == "ns/all":
		var parts []string
		for _, r := range s.relays {
			parts = append(parts, r.ns())
		}
		return strings.Join(parts, "\n"), true
	case k == "desc/all-recent":
		var parts []string
		for _, r := range s.relays {
			parts = append(parts, r.desc())
		}
		return strings.Join(parts, "\n"), true
	case strings.HasPrefix(k, "ns/id/"), strings.HasPrefix(k, "ns/name/"):
		want := strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(k, "ns/id/"), "ns/name/"), "$")
		for _, r := range s.relays {
			if strings.EqualFold(r.fp, want) || r.nick == want {
				return r.ns(), true
			}
		}
		return "", false
	case strings.HasPrefix(k, "ip-to-country/"):
		return "??", true
	case strings.HasPrefix(k, "address-mappings/"):
		var lines []string
		for from, to := range s.maps {
			lines = append(lines, from+" "+to+" NEVER")
		}
		slices.Sort(lines)
		return strings.Join(lines, "\n"), true
	case k == "entry-guards" || k == "orconn-status":
		return "", true
	}
	return "", false
}

func (r node) ns() string {
	id, _ := hex.DecodeString(r.fp)
	b64 := strings.TrimRight(base64.StdEncoding.EncodeToString(id), "=")
	return fmt.Sprintf("r %s %s %s 2038-01-01 00:00:00 %s 9001 0\ns %s\nw Bandwidth=%d\np accept 1-65535", r.nick, b64, b64, r.addr, r.flags, r.bandwidth)
}

// desc is the relay's server descriptor, without keys and signatures.
func (r node) desc() string {
	var b strings.Builder
	fmt.Fprintf(&b, "router %s %s 9001 0 0\nplatform Tor 0.4.9.11 on Linux\nfingerprint %s\nbandwidth %d %d %d\n", r.nick, r.addr, r.fp, r.bandwidth*1000, r.bandwidth*1000, r.bandwidth*1000)
	if len(r.family) > 0 {
		b.WriteString("family " + strings.Join(r.family, " ") + "\n")
	}
	if strings.Contains(r.flags, "Exit") {
		b.WriteString("accept *:*")
	} else {
		b.WriteString("reject *:*")
	}
	return b.String()
}

func sortedIDs[V any](m map[string]V) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	return ids
}

// relay finds a relay by nickname or fingerprint ("$FP", "$FP~nick").
func (s *Tor) relay(spec string) (node, bool) {
	spec = strings.TrimPrefix(spec, "$")
	fp, nick, _ := strings.Cut(spec, "~")
	for _, r := range s.relays {
		if strings.EqualFold(r.fp, fp) || r.nick == fp || (nick != "" && r.nick == nick) {
			return r, true
		}
	}
	return node{}, false
}

// defaultPath is guard1, middle1, exit1.
func (s *Tor) defaultPath() []string {
	var p []string
	for _, n := range []string{"guard1", "middle1", "exit1"} {
		r, _ := s.relay(n)
		p = append(p, "$"+r.fp+"~"+r.nick)
	}
	return p
}

func (s *Tor) newID() string {
	s.nextID++
	return strconv.Itoa(s.nextID)
}

func (s *Tor) extend(args []string) {
	id := argAt(args, 0)
	if id != "0" {
		s.reply(552, "Unknown circuit \""+id+"\"")
		return
	}
	var path []string
	for _, a := range args[1:] {
		if strings.Contains(a, "=") {
			continue // purpose=
		}
		for _, hop := range strings.Split(a, ",") {
			r, ok := s.relay(hop)
			if !ok {
				s.reply(552, "No such router \""+hop+"\"")
				return
			}
			path = append(path, "$"+r.fp+"~"+r.nick)
		}
	}
	if len(path) == 0 {
		path = s.defaultPath()
	}
	c := &circ{id: s.newID(), status: "LAUNCHED", purpose: "GENERAL", path: path}
	s.circs[c.id] = c
	s.cmds[len(s.cmds)-1].Result = c.id
	s.reply(250, "EXTENDED "+c.id)
	s.circStatus(c, "LAUNCHED", "")
}

func (s *Tor) stream(args []string) *stream { return s.streams[argAt(args, 0)] }

func (s *Tor) attach(args []string) {
	st := s.stream(args)
	if st == nil {
		s.reply(552, "Unknown stream \""+argAt(args, 0)+"\"")
		return
	}
	circ := argAt(args, 1)
	if circ == "0" {
		s.reply(250, "OK")
		if st.sock != nil {
			s.socksAttached(st, nil)
		}
		return
	}
	c := s.circs[circ]
	if c == nil {
		s.reply(552, "Unknown circuit \""+circ+"\"")
		return
	}
	if c.status != "BUILT" {
		s.reply(551, "Can't attach stream to non-open origin circuit")
		return
	}
	s.reply(250, "OK")
	st.circ = c.id
	if st.sock != nil {
		s.socksAttached(st, c)
		return
	}
	s.streamStatus(st, "SENTCONNECT", "")
}

func (s *Tor) circLine(c *circ, status string) string {
	line := c.id + " " + status
	if len(c.path) > 0 && status != "LAUNCHED" {
		line += " " + strings.Join(c.path, ",")
	}
	return line + " BUILD_FLAGS=NEED_CAPACITY PURPOSE=" + c.purpose + " TIME_CREATED=2026-01-01T00:00:00.000000"
}

// circStatus sets a circuit's status and sends its CIRC event.
func (s *Tor) circStatus(c *circ, status, extra string) {
	c.status = status
	if s.subs["CIRC"] {
		s.raw("650 CIRC " + s.circLine(c, status) + extra + "\r\n")
	}
}

// streamStatus sets a stream's status and sends its STREAM event.
func (s *Tor) streamStatus(st *stream, status, extra string) {
	st.status = status
	if !s.subs["STREAM"] {
		return
	}
	circ := st.circ
	if circ == "" {
		circ = "0"
	}
	line := fmt.Sprintf("650 STREAM %s %s %s %s", st.id, status, circ, st.target)
	if status == "NEW" || status == "NEWRESOLVE" {
		if st.source != "" {
			line += " SOURCE_ADDR=" + st.source
		}
		line += " PURPOSE=" + st.purpose
		if st.socksUser != "" || st.socksPass != "" {
			line += " SOCKS_USERNAME=" + ctl.Quote(st.socksUser) + " SOCKS_PASSWORD=" + ctl.Quote(st.socksPass)
		}
	}
	s.raw(line + extra + "\r\n")
}

// flush sends what the test made happen.
func (s *Tor) flush() {
	if s.w != nil {
		s.w.Flush()
	}
}
