package ctl

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ServerDescriptor is what a relay's server descriptor says of it
// (dir-spec 2.1.1), as GETINFO desc/id/FP, desc/name/NICK and
// desc/all-recent give them to a client that fetches them (tor fetches
// microdescriptors instead unless UseMicrodescriptors 0 or
// FetchUselessDescriptors 1). Signatures, keys and certificates are left
// out; lines this package does not read are kept in Unknown.
type ServerDescriptor struct {
	Nickname    string
	Address     string // IPv4
	ORPort      int
	DirPort     int
	Fingerprint string   // upper-case hex, without spaces
	ORAddresses []string // "or-address" lines, e.g. "[2001:db8::1]:9001"
	Platform    string   // "Tor 0.4.9.11 on Linux"
	Version     string   // from Platform: "0.4.9.11"
	Protocols   string   // "proto" line
	Published   time.Time
	Uptime      time.Duration
	// Bandwidth: average, burst and observed, in bytes per second.
	BandwidthAvg, BandwidthBurst, BandwidthObserved int64
	// Family is the "family" line: "$FP" or nicknames, as the relay
	// declared them (effective family needs the other side's word too).
	Family     []string
	Contact    string
	ExitPolicy ExitPolicy    // the accept and reject lines, in order
	IPv6Policy PolicySummary // "ipv6-policy"; none: every IPv6 address rejected
	HSDir      bool          // "hidden-service-dir"
	Unknown    []string
}

// ParseServerDescriptors reads server descriptors, each starting with a
// "router" line. A descriptor tor would discard (a malformed router,
// bandwidth or policy line) is left out, and the first such error is
// returned with the descriptors that parsed.
func ParseServerDescriptors(text string) ([]ServerDescriptor, error) {
	out := make([]ServerDescriptor, 0, strings.Count(text, "\nrouter ")+1)
	var firstErr error
	var cur *ServerDescriptor // out's last
	var pol policyLines
	cache := policyCache{lines: map[string][]PolicyRule{}, blocks: map[string]ExitPolicy{}}
	bad := false
	fail := func(err error) {
		bad = true
		if firstErr == nil {
			firstErr = fmt.Errorf("server descriptor %q: %w", cur.Nickname, err)
		}
	}
	finish := func() {
		if cur != nil && !bad {
			if err := cache.set(cur, text, &pol); err != nil {
				fail(err)
			}
		}
		if cur != nil && bad {
			out = out[:len(out)-1]
		}
		cur, bad = nil, false
		pol.reset()
	}
	inObject := false
	for remaining := text; remaining != ""; {
		var line string
		off := len(text) - len(remaining)
		line, remaining, _ = strings.Cut(remaining, "\n")
		line = strings.TrimRight(line, "\r")
		if inObject {
			if strings.HasPrefix(line, "-----END ") {
				inObject = false
			}
			continue
		}
		if strings.HasPrefix(line, "-----BEGIN ") {
			inObject = true
			continue
		}
		kw, rest, _ := strings.Cut(line, " ")
		if kw == "router" {
			finish()
			out = append(out, ServerDescriptor{})
			cur = &out[len(out)-1]
		}
		if cur == nil || bad || line == "" {
			continue
		}
		switch kw {
		case "accept", "reject", "accept6", "reject6":
			pol.add(line, off)
			continue
		}
		if err := cur.parseLine(kw, rest, line); err != nil {
			fail(err)
		}
	}
	finish()
	return out, firstErr
}

// policyLines are a descriptor's accept and reject lines, and where they
// are in the document when they are one block of lines.
type policyLines struct {
	lines      []string
	lo, hi     int // the block: text[lo:hi]
	contiguous bool
}

func (p *policyLines) add(line string, off int) {
	if len(p.lines) == 0 {
		p.lo, p.contiguous = off, true
	} else if off != p.hi+1 && off != p.hi+2 { // after "\n" or "\r\n"
		p.contiguous = false
	}
	p.lines = append(p.lines, line)
	p.hi = off + len(line)
}

func (p *policyLines) reset() { p.lines = p.lines[:0] }

// policyCache parses descriptors' policies once each: exits mostly publish
// the same lines (tor's default policy), and tor too keeps one canonical
// copy. A block of lines seen before gets the same ExitPolicy, shared
// (read-only, its capacity its length), and each distinct line is parsed
// once.
type policyCache struct {
	lines  map[string][]PolicyRule
	blocks map[string]ExitPolicy
}

func (c *policyCache) set(d *ServerDescriptor, text string, p *policyLines) error {
	if len(p.lines) == 0 {
		return nil
	}
	var key string
	if p.contiguous && p.hi <= len(text) {
		key = text[p.lo:p.hi]
		if pol, ok := c.blocks[key]; ok {
			d.ExitPolicy = pol
			return nil
		}
	}
	var pol ExitPolicy
	for _, line := range p.lines {
		rules, ok := c.lines[line]
		if !ok {
			var err error
			if rules, err = ParsePolicyLine(line, DescriptorPolicy); err != nil {
				return err
			}
			c.lines[line] = rules
		}
		pol = append(pol, rules...)
	}
	pol = pol[:len(pol):len(pol)]
	if key != "" {
		c.blocks[key] = pol
	}
	d.ExitPolicy = pol
	return nil
}

func (d *ServerDescriptor) parseLine(kw, rest, line string) error {
	var buf [16]string // the fields, without allocating for most lines
	var f []string
	switch kw {
	case "router", "fingerprint", "bandwidth", "family":
		f = appendFields(buf[:0], rest)
	}
	switch kw {
	case "router":
		if len(f) != 5 {
			return fmt.Errorf("router line %q: want 5 fields", line)
		}
		var ok1, ok2, ok3 bool
		d.Nickname, d.Address = f[0], f[1]
		d.ORPort, ok1 = atoiRange(f[2], 0, 65535)
		_, ok2 = atoiRange(f[3], 0, 65535) // SOCKSPort, always 0
		d.DirPort, ok3 = atoiRange(f[4], 0, 65535)
		if !ok1 || !ok2 || !ok3 {
			return fmt.Errorf("router line %q: bad port", line)
		}
	case "fingerprint":
		d.Fingerprint = strings.Join(f, "")
	case "or-address":
		d.ORAddresses = append(d.ORAddresses, rest)
	case "platform":
		d.Platform = rest
		if v, ok := strings.CutPrefix(rest, "Tor "); ok {
			d.Version, _, _ = strings.Cut(v, " ")
		}
	case "proto":
		d.Protocols = rest
	case "published":
		t, err := time.Parse("2006-01-02 15:04:05", rest)
		if err != nil {
			return fmt.Errorf("published line %q: %w", line, err)
		}
		d.Published = t.UTC()
	case "uptime":
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("uptime line %q: not a number of seconds", line)
		}
		d.Uptime = time.Duration(min(n, int64(1<<62)/int64(time.Second))) * time.Second
	case "bandwidth":
		var v [3]int64
		if len(f) < 3 {
			return fmt.Errorf("bandwidth line %q: want 3 numbers", line)
		}
		for i := range v {
			n, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("bandwidth line %q: not a number", line)
			}
			v[i] = n
		}
		d.BandwidthAvg, d.BandwidthBurst, d.BandwidthObserved = v[0], v[1], v[2]
	case "family":
		d.Family = slices.Clone(f)
	case "contact":
		d.Contact = rest
	case "hidden-service-dir":
		d.HSDir = true
	case "ipv6-policy":
		p, err := ParsePolicySummary(rest)
		if err != nil {
			return fmt.Errorf("ipv6-policy line %q: %w", line, err)
		}
		d.IPv6Policy = p
	case "identity-ed25519", "master-key-ed25519", "onion-key", "signing-key",
		"onion-key-crosscert", "ntor-onion-key-crosscert", "ntor-onion-key",
		"router-sig-ed25519", "router-signature", "extra-info-digest",
		"caches-extra-info", "allow-single-hop-exits", "tunnelled-dir-server",
		"hibernating", "eventdns", "family-cert", "overload-general":
		// Keys, signatures and digests: not ours to check or keep.
	default:
		d.Unknown = append(d.Unknown, line)
	}
	return nil
}

func atoiRange(s string, lo, hi int) (int, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, false
	}
	return n, true
}

// ExitPolicyFor says what the relay's policy does with a connection to
// addr:port: its accept and reject lines for an IPv4 address or an unknown
// one, its ipv6-policy summary for an IPv6 address (at best "probably").
func (d *ServerDescriptor) ExitPolicyFor(addr string, port int) (PolicyResult, error) {
	a, known, err := policyAddr(addr)
	if err != nil {
		return PolicyRejected, err
	}
	if known && a.Is6() && !a.Is4In6() {
		return d.IPv6Policy.Evaluate(a, port, false), nil
	}
	if known {
		a = a.Unmap()
	}
	return d.ExitPolicy.Evaluate(a, port), nil
}

// appendFields appends the fields of s, separated by runs of white space
// as tor's tokenizer reads them (space, tab, CR, and VT and FF as
// strings.Fields does), to dst.
func appendFields(dst []string, s string) []string {
	start := -1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\r', '\v', '\f', '\n':
			if start >= 0 {
				dst = append(dst, s[start:i])
				start = -1
			}
		default:
			if start < 0 {
				start = i
			}
		}
	}
	if start >= 0 {
		dst = append(dst, s[start:])
	}
	return dst
}
