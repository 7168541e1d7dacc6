package ctl

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
)

// RouterStatus is a router status entry (dir-spec section 3.4.1): tor's
// view of one relay, as GETINFO ns/all, ns/id/*, ns/name/* and the NS and
// NEWCONSENSUS events give it. Fields of lines tor did not send are zero.
type RouterStatus struct {
	// From the "r" line.
	Nickname    string
	Identity    [20]byte // the relay's identity digest
	Fingerprint string   // Identity in upper-case hex, as in "$FP~nick"
	// Digest is the descriptor digest in upper-case hex; "" when the r
	// line has none (microdescriptor flavour).
	Digest    string
	Published time.Time // UTC
	Address   string    // IPv4 address
	ORPort    int
	DirPort   int

	ORAddresses []string // "a" lines: further addresses, e.g. "[2001:db8::1]:9001"
	// Flags, from the "s" line: Exit, Fast, Guard, Running, Stable,
	// Valid, ... Entries read together share the slice of a flag set
	// (thousands of relays have a few dozen): it is not to be modified.
	Flags   []string
	Version string // "v" line, e.g. "Tor 0.4.9.1"
	// Protocols is the "pr" line, e.g. "Cons=1-2 Link=1-5 Relay=1-4"; see
	// SupportsProtocol.
	Protocols string
	// From the "w" line: the bandwidth weight in kilobytes per second, the
	// measured bandwidth, and whether the weight is unmeasured.
	Bandwidth  int64
	Measured   int64
	Unmeasured bool
	ExitPolicy PolicySummary // "p" line; its Ports are shared as Flags are
	Microdesc  string        // the first "m" line, as tor sent it
	// Unknown holds the entry's other lines, and lines it could not read,
	// in order.
	Unknown []string
}

// HasFlag reports whether the entry has the flag, such as "Exit".
func (rs *RouterStatus) HasFlag(flag string) bool {
	for _, f := range rs.Flags {
		if f == flag {
			return true
		}
	}
	return false
}

// Relay returns the relay as a PathHop.
func (rs *RouterStatus) Relay() PathHop {
	return PathHop{Fingerprint: rs.Fingerprint, Nickname: rs.Nickname}
}

// SupportsProtocol reports whether the "pr" line lists version of the
// subprotocol name, as in SupportsProtocol("Conflux", 1).
func (rs *RouterStatus) SupportsProtocol(name string, version int) bool {
	a := NewArgs(rs.Protocols)
	for {
		kv, ok := a.Next()
		if !ok {
			return false
		}
		if kv.Key != name {
			continue
		}
		for _, r := range splitList(kv.Value) {
			lo, hi, isRange := strings.Cut(r, "-")
			l, lok := parseUint(lo)
			h := l
			hok := true
			if isRange {
				h, hok = parseUint(hi)
			}
			if lok && hok && int64(version) >= l && int64(version) <= h {
				return true
			}
		}
		return false
	}
}

// PolicySummary is an exit policy summary ("p" line): the ports a relay
// accepts, or the ports it rejects, for most addresses.
type PolicySummary struct {
	Accept bool        // true for "accept", false for "reject"
	Ports  []PortRange // nil when there was no "p" line
}

// PortRange is an inclusive range of ports.
type PortRange struct {
	Lo, Hi int
}

// Allows reports whether the summary lets exit streams reach port. Without
// a summary it reports false.
func (p PolicySummary) Allows(port int) bool {
	if p.Ports == nil {
		return false
	}
	for _, r := range p.Ports {
		if port >= r.Lo && port <= r.Hi {
			return p.Accept
		}
	}
	return !p.Accept
}

// String writes the summary as a "p" line's text: "accept 80,443".
func (p PolicySummary) String() string {
	if p.Ports == nil {
		return ""
	}
	var b strings.Builder
	if p.Accept {
		b.WriteString("accept ")
	} else {
		b.WriteString("reject ")
	}
	for i, r := range p.Ports {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(r.Lo))
		if r.Hi != r.Lo {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(r.Hi))
		}
	}
	return b.String()
}

// ParsePolicySummary reads the text of a "p" line: "accept" or "reject",
// then a comma-separated list of ports and port ranges.
func ParsePolicySummary(s string) (PolicySummary, error) {
	verb, list, _ := strings.Cut(s, " ")
	var p PolicySummary
	switch verb {
	case "accept":
		p.Accept = true
	case "reject":
	default:
		return PolicySummary{}, errors.New("policy summary: neither accept nor reject")
	}
	p.Ports = make([]PortRange, 0, strings.Count(list, ",")+1)
	for more := true; more; {
		item := list
		if i := strings.IndexByte(list, ','); i >= 0 {
			item, list = list[:i], list[i+1:]
		} else {
			more = false
		}
		lo, hi, isRange := strings.Cut(item, "-")
		l, ok := parsePort(lo)
		h := l
		if ok && isRange {
			h, ok = parsePort(hi)
		}
		if !ok || h < l {
			return PolicySummary{}, errors.New("policy summary: bad port range")
		}
		p.Ports = append(p.Ports, PortRange{Lo: l, Hi: h})
	}
	return p, nil
}

// ParseRouterStatuses reads router status entries, as GETINFO ns/all gives
// them: each starts with an "r" line, and lines it does not know are kept
// in Unknown. It returns every well-formed entry; if an entry's "r" line is
// malformed it skips that entry and also returns an error naming the first
// such line. Empty text gives no entries and no error.
func ParseRouterStatuses(s string) ([]RouterStatus, error) {
	return parseRouterStatuses(s, func(rs *RouterStatus) *RouterStatus { return rs })
}

// parseRouterStatuses is ParseRouterStatuses into a slice of T, each
// holding its RouterStatus at status(&t): Conn.Relays reads the entries
// straight into Relays, not copying thousands of them.
func parseRouterStatuses[T any](s string, status func(*T) *RouterStatus) ([]T, error) {
	out := make([]T, 0, strings.Count(s, "\nr ")+1)
	populateSlice(out[:cap(out)])
	hex := digestHex{size: cap(out) * 2 * 40} // a Fingerprint and a Digest each
	var firstErr error
	var cur *RouterStatus
	// The flag sets and policy summaries read so far: thousands of relays
	// share a few dozen, so each is made once.
	flags := map[string][]string{}
	policies := map[string]PolicySummary{}
	for s != "" {
		var line string
		line, s = nextLine(s)
		if line == "" {
			continue
		}
		kw, rest, _ := strings.Cut(line, " ")
		if kw == "r" {
			var zero T
			if len(out) < cap(out) {
				out = out[:len(out)+1] // zero: made so, or cleared below
			} else {
				out = append(out, zero)
			}
			cur = status(&out[len(out)-1])
			if err := cur.parseR(rest, &hex); err != nil {
				out[len(out)-1] = zero
				out, cur = out[:len(out)-1], nil
				if firstErr == nil {
					firstErr = &ProtocolError{Msg: "router status: " + err.Error(), Line: line}
				}
			}
			continue
		}
		if cur == nil {
			if firstErr == nil && len(out) == 0 {
				firstErr = &ProtocolError{Msg: "router status: line before the first r line", Line: line}
			}
			continue
		}
		switch kw {
		case "s":
			f, ok := flags[rest]
			if !ok {
				f = splitWords(rest)
				flags[rest] = f
			}
			cur.Flags = f
			continue
		case "p":
			p, ok := policies[rest]
			if !ok {
				var err error
				if p, err = ParsePolicySummary(rest); err != nil {
					cur.Unknown = append(cur.Unknown, line)
					continue
				}
				policies[rest] = p
			}
			cur.ExitPolicy = p
			continue
		}
		if !cur.parseLine(kw, rest) {
			cur.Unknown = append(cur.Unknown, line)
		}
	}
	return out, firstErr
}

// parseLine reads a line after the "r" line, and reports whether it knew
// it.
func (rs *RouterStatus) parseLine(kw, rest string) bool {
	switch kw {
	case "a":
		rs.ORAddresses = append(rs.ORAddresses, rest)
	case "s":
		rs.Flags = splitWords(rest)
	case "v":
		rs.Version = rest
	case "pr":
		rs.Protocols = rest
	case "w":
		return rs.parseW(rest)
	case "p":
		p, err := ParsePolicySummary(rest)
		if err != nil {
			return false
		}
		rs.ExitPolicy = p
	case "m":
		if rs.Microdesc != "" {
			return false
		}
		rs.Microdesc = rest
	default:
		return false
	}
	return true
}

func (rs *RouterStatus) parseW(s string) bool {
	a := NewArgs(s)
	for {
		kv, ok := a.Next()
		if !ok {
			return a.Err() == nil
		}
		switch kv.Key {
		case "Bandwidth":
			ok = setUint(&rs.Bandwidth, kv.Value)
		case "Measured":
			ok = setUint(&rs.Measured, kv.Value)
		case "Unmeasured":
			rs.Unmeasured = kv.Value == "1"
		}
		if !ok {
			return false
		}
	}
}

// splitWords splits s at single spaces, allocating once; "" gives nil.
func splitWords(s string) []string {
	s = strings.Trim(s, " ")
	if s == "" {
		return nil
	}
	out := make([]string, 0, strings.Count(s, " ")+1)
	for {
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			return append(out, s)
		}
		if i > 0 {
			out = append(out, s[:i])
		}
		s = s[i+1:]
	}
}

var errBadRLine = errors.New("malformed r line")

// parseR reads an "r" line: nickname, identity, [digest,] publication date
// and time, address, ORPort, DirPort.
func (rs *RouterStatus) parseR(s string, hex *digestHex) error {
	var f [9]string
	n := 0
	for s != "" && n < len(f) {
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			f[n], s = s, ""
		} else {
			f[n], s = s[:i], s[i+1:]
		}
		if f[n] != "" {
			n++
		}
	}
	var digest string
	switch n {
	case 8:
		digest = f[2]
		copy(f[2:], f[3:8])
	case 7:
	default:
		return errBadRLine
	}
	if !isNickname(f[0]) || !decodeDigest(&rs.Identity, f[1]) {
		return errBadRLine
	}
	rs.Nickname = f[0]
	rs.Fingerprint = hex.upper(&rs.Identity)
	if digest != "" {
		var d [20]byte
		if !decodeDigest(&d, digest) {
			return errBadRLine
		}
		rs.Digest = hex.upper(&d)
	}
	t, ok := parseDateTime(f[2], f[3], time.UTC)
	if !ok {
		return errBadRLine
	}
	rs.Published = t
	rs.Address = f[4]
	if rs.ORPort, ok = parsePort(f[5]); !ok {
		return errBadRLine
	}
	if rs.DirPort, ok = parsePort(f[6]); !ok {
		return errBadRLine
	}
	return nil
}

// b64 maps a base64 character to its value, or 0xff.
var b64 = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// decodeDigest decodes the 27 base64 characters (padding optional) of a
// 20-byte digest.
func decodeDigest(d *[20]byte, s string) bool {
	s = strings.TrimRight(s, "=")
	if len(s) != 27 {
		return false
	}
	// Four characters make three bytes; b64's 0xff for a character
	// outside the alphabet is the only value with its top bits set.
	var bad byte
	for i, j := 0, 0; i < 24; i, j = i+4, j+3 {
		a, b, c, e := b64[s[i]], b64[s[i+1]], b64[s[i+2]], b64[s[i+3]]
		bad |= a | b | c | e
		v := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(e)
		d[j], d[j+1], d[j+2] = byte(v>>16), byte(v>>8), byte(v)
	}
	a, b, c := b64[s[24]], b64[s[25]], b64[s[26]]
	bad |= a | b | c
	v := uint32(a)<<12 | uint32(b)<<6 | uint32(c)
	d[18], d[19] = byte(v>>10), byte(v>>2)
	// 27*6 = 162 bits: 160 of digest and 2 that must be zero.
	return bad&0xc0 == 0 && v&3 == 0
}

// hexUpperBytes is d in upper-case hex.
func hexUpperBytes(d *[20]byte) (b [40]byte) {
	const digits = "0123456789ABCDEF"
	for i, c := range d {
		b[2*i] = digits[c>>4]
		b[2*i+1] = digits[c&15]
	}
	return b
}

// digestHex makes the hex digests of a table's entries in slabs of size
// bytes, rather than an allocation each.
type digestHex struct {
	size int
	s    *slab
}

// upper is d in upper-case hex.
func (h *digestHex) upper(d *[20]byte) string {
	b := hexUpperBytes(d)
	if h.s == nil || h.s.room() < len(b) {
		h.s = newSlab(max(h.size, len(b)))
	}
	return h.s.write(b[:])
}

// RouterStatuses returns every relay the consensus lists (GETINFO ns/all).
// If some entries are malformed it returns the others with an error.
func (c *Conn) RouterStatuses(ctx context.Context) ([]RouterStatus, error) {
	return getInfoParsed(ctx, c, "ns/all", ParseRouterStatuses)
}

// RouterStatusByID returns tor's view of the relay with the given identity
// fingerprint, with or without "$" (GETINFO ns/id/<fingerprint>).
func (c *Conn) RouterStatusByID(ctx context.Context, fingerprint string) (*RouterStatus, error) {
	return c.oneRouterStatus(ctx, "ns/id/"+strings.TrimPrefix(fingerprint, "$"))
}

// RouterStatusByName returns tor's view of the relay with the given
// nickname (GETINFO ns/name/<nickname>).
func (c *Conn) RouterStatusByName(ctx context.Context, nickname string) (*RouterStatus, error) {
	return c.oneRouterStatus(ctx, "ns/name/"+nickname)
}

func (c *Conn) oneRouterStatus(ctx context.Context, key string) (*RouterStatus, error) {
	v, err := c.GetInfoOne(ctx, key)
	if err != nil {
		return nil, err
	}
	rs, err := ParseRouterStatuses(v)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, &ProtocolError{Msg: "GETINFO " + key + ": no router status in the answer"}
	}
	return &rs[0], nil
}
