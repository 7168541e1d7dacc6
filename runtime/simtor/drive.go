package simtor

import (
	"errors"
	"fmt"
	"maps"
	"strings"
)

// What a test makes happen in the simulated tor, and what it reads back.
// Each method locks the simulated tor and sends the events it causes
// before it returns; the controller reads them in its own time.

// locked runs f with the simulated tor locked and sends what it wrote.
func (s *Tor) locked(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
	s.flush()
}

// NewStream makes a client open a stream to target (HOST:PORT) and sends
// its STREAM NEW event (NEWRESOLVE when resolve). It returns its id.
func (s *Tor) NewStream(target, source, purpose string, resolve bool, socksUser, socksPass string) string {
	var id string
	s.locked(func() {
		st := &stream{id: s.newID(), target: target, source: source, purpose: purpose, socksUser: socksUser, socksPass: socksPass}
		s.streams[st.id] = st
		id = st.id
		status := "NEW"
		if resolve {
			status = "NEWRESOLVE"
		}
		s.streamStatus(st, status, "")
	})
	return id
}

// StreamEvent sets a stream's status (on circuit circ, unless "") and sends
// its STREAM event, with REASON and REMOTE_REASON when given. A CLOSED
// stream is forgotten; a DETACHED one names the circuit it left, as tor
// does.
func (s *Tor) StreamEvent(id, status, circ, reason, remoteReason string) error {
	var err error
	s.locked(func() {
		st := s.streams[id]
		if st == nil {
			err = fmt.Errorf("no stream %s", id)
			return
		}
		if circ != "" {
			st.circ = circ
		}
		extra := ""
		if reason != "" {
			extra += " REASON=" + reason
		}
		if remoteReason != "" {
			extra += " REMOTE_REASON=" + remoteReason
		}
		status = strings.ToUpper(status)
		s.streamStatus(st, status, extra)
		if status == "DETACHED" {
			st.circ = "0"
		}
		if status == "CLOSED" { // tor sends FAILED, then CLOSED
			delete(s.streams, id)
		}
	})
	return err
}

// CircEvent sets a circuit's status and sends its CIRC event. With id ""
// a new circuit is made (LAUNCHED or BUILT only) through the default
// path; path, unless nil, is its new path (relay nicknames or
// fingerprints); reason is sent with FAILED and CLOSED, which forget the
// circuit. It returns the circuit's id.
func (s *Tor) CircEvent(status, id string, path []string, purpose, reason string) (string, error) {
	var err error
	var got string
	s.locked(func() {
		var c *circ
		if id == "" {
			if status != "BUILT" && status != "LAUNCHED" {
				err = errors.New("which circuit?")
				return
			}
			c = &circ{id: s.newID(), purpose: purpose, path: s.defaultPath()}
			s.circs[c.id] = c
		} else if c = s.circs[id]; c == nil {
			err = fmt.Errorf("no circuit %s (sim.circ_built() with no id makes one)", id)
			return
		}
		if path != nil {
			c.path = nil
			for _, hop := range path {
				r, ok := s.relay(hop)
				if !ok {
					err = fmt.Errorf("no relay %q in the simulated network", hop)
					return
				}
				c.path = append(c.path, "$"+r.fp+"~"+r.nick)
			}
		}
		extra := ""
		if reason != "" && (status == "FAILED" || status == "CLOSED") {
			extra = " REASON=" + reason
		}
		s.circStatus(c, status, extra)
		if status == "FAILED" || status == "CLOSED" {
			delete(s.circs, c.id)
		}
		got = c.id
	})
	return got, err
}

// Reply makes the next command of keyword (GETINFO, ATTACHSTREAM, ...)
// get code and text instead of the model's answer; replies given for one
// keyword are used in order.
func (s *Tor) Reply(keyword string, code int, text string) {
	kw := strings.ToUpper(keyword)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replies[kw] = append(s.replies[kw], canned{code, text})
}

// Conf is a setting's value.
func (s *Tor) Conf(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.conf[key]
	return v, ok
}

// Mappings are the address mappings in effect (MAPADDRESS), from → to.
func (s *Tor) Mappings() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.maps)
}

// Expect finds the first command of keyword no expectation has matched
// yet for which ok (given its arguments) is true, marks it matched and
// returns it. When there is none it returns the unmatched commands of
// keyword it saw.
func (s *Tor) Expect(keyword string, ok func(args []string) bool) (cmd Command, seen []string, found bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.cmds {
		c := &s.cmds[i]
		f := strings.Fields(c.Line)
		if c.used || len(f) == 0 || !strings.EqualFold(f[0], keyword) {
			continue
		}
		if ok(f[1:]) {
			c.used = true
			return *c, nil, true
		}
		seen = append(seen, c.Line)
	}
	return Command{}, seen, false
}

// Decided is the first decision (ATTACHSTREAM, CLOSESTREAM,
// REDIRECTSTREAM) about stream ("": any stream) no expectation has
// matched.
func (s *Tor) Decided(stream string) (line string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.cmds {
		f := strings.Fields(c.Line)
		if c.used || len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "ATTACHSTREAM", "CLOSESTREAM", "REDIRECTSTREAM":
			if stream == "" || f[1] == stream {
				return c.Line, true
			}
		}
	}
	return "", false
}

// SameRelay reports whether a and b (nicknames, "$FP", "$FP~nick") name
// the same relay of the simulated network. It does not lock the
// simulated tor (its relays never change): an Expect condition may call it.
// Nickname returns the nickname of the relay spec names ("$FP",
// "$FP~nick", a nickname), or spec itself when it names none.
func (s *Tor) Nickname(spec string) string {
	if r, ok := s.relay(spec); ok {
		return r.nick
	}
	return spec
}

func (s *Tor) SameRelay(a, b string) bool {
	r1, ok1 := s.relay(a)
	r2, ok2 := s.relay(b)
	return ok1 && ok2 && r1.fp == r2.fp
}

// StartReplay makes the simulated tor answer commands with replies
// recorded in a transcript (raw, CRLF line ends), given for each keyword in
// order, until EndReplay. It returns how many commands it had received, for
// Since.
func (s *Tor) StartReplay(replies map[string][]string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replayed = replies
	return len(s.cmds)
}

// EndReplay goes back to answering from the model.
func (s *Tor) EndReplay() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replayed = nil
}

// Since is the commands received from the from-th on (counting from 0).
func (s *Tor) Since(from int) []Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Command(nil), s.cmds[min(from, len(s.cmds)):]...)
}

// Use marks c matched by an expectation.
func (s *Tor) Use(c Command) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cmds[c.index].used = true
}

// SendEvent sends raw, an event as tor wrote it ("650 ...\r\n", or
// several lines), if the controller has subscribed to its type.
func (s *Tor) SendEvent(raw string) {
	s.locked(func() {
		typ, _, _ := strings.Cut(strings.TrimPrefix(raw, "650 "), " ")
		if s.subs[strings.TrimRight(typ, "\r\n")] {
			s.raw(raw)
		}
	})
}
