package ctl

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// An exit policy says which addresses and ports a relay's exit connections
// may reach. Tor publishes it twice: whole, as the accept and reject lines
// of the relay's server descriptor (ExitPolicy), and summarized, as a list
// of ports in the consensus's "p" line and the microdescriptor
// (PolicySummary). A summary speaks only of public addresses: an exit whose
// policy is "accept 127.0.0.0/8:*, reject *:*" has the summary "reject
// 1-65535". The rules here are tor's own (src/core/or/policies.c,
// src/feature/dirparse/policy_parse.c, src/lib/net/address.c); where they
// differ from the spec's wording, tor's code won.

// PolicyResult is what a policy says of an address and a port, as tor's
// compare_tor_addr_to_addr_policy answers: certain, or "probably" when the
// address or the port is unknown, or when the policy is a summary.
type PolicyResult int

const (
	PolicyAccepted PolicyResult = iota
	PolicyRejected
	PolicyProbablyAccepted
	PolicyProbablyRejected
)

func (r PolicyResult) String() string {
	switch r {
	case PolicyAccepted:
		return "accepted"
	case PolicyRejected:
		return "rejected"
	case PolicyProbablyAccepted:
		return "probably accepted"
	case PolicyProbablyRejected:
		return "probably rejected"
	}
	return fmt.Sprintf("PolicyResult(%d)", int(r))
}

// Allows reports whether r lets the connection through: accepted, or with
// strict false also probably accepted (tor's clients choose an exit on
// "probably accepted").
func (r PolicyResult) Allows(strict bool) bool {
	return r == PolicyAccepted || !strict && r == PolicyProbablyAccepted
}

// PolicyRule is one accept or reject line of an exit policy: the addresses
// of Prefix (an IPv4 or an IPv6 prefix; they never match addresses of the
// other family) and the ports MinPort to MaxPort. A line naming port 0
// alone has MinPort 1 and MaxPort 0, as in tor: it matches no port.
type PolicyRule struct {
	Accept           bool
	Prefix           netip.Prefix
	MinPort, MaxPort int
}

// String writes r as a descriptor line (DescriptorPolicy syntax, where
// "*" is every IPv4 address): "accept 127.0.0.0/8:*", "reject *:*",
// "reject6 [fc00::]/7:80-443", "accept6 [::]/0:443".
func (r PolicyRule) String() string {
	var b strings.Builder
	if r.Accept {
		b.WriteString("accept")
	} else {
		b.WriteString("reject")
	}
	a := r.Prefix.Addr()
	if a.Is6() {
		b.WriteByte('6')
	}
	b.WriteByte(' ')
	wild := r.Prefix.Bits() == 0 && a.Is4()
	switch {
	case wild:
		b.WriteByte('*')
	case a.Is6():
		b.WriteString("[" + a.String() + "]")
	default:
		b.WriteString(a.String())
	}
	if r.Prefix.Bits() != a.BitLen() && !wild {
		b.WriteString("/" + strconv.Itoa(r.Prefix.Bits()))
	}
	b.WriteByte(':')
	switch {
	case r.MinPort == 1 && r.MaxPort == 65535:
		b.WriteByte('*')
	case r.MaxPort == 0:
		b.WriteByte('0') // tor reads port 0 as the range 1-0: no port
	case r.MinPort == r.MaxPort:
		b.WriteString(strconv.Itoa(r.MinPort))
	default:
		b.WriteString(strconv.Itoa(r.MinPort) + "-" + strconv.Itoa(r.MaxPort))
	}
	return b.String()
}

// ExitPolicy is a whole exit policy: its rules in order; the first that
// matches decides, and an address and port no rule matches are accepted.
type ExitPolicy []PolicyRule

// privateNets are the networks "private" stands for (tor's private_nets).
var privateNets = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("::/8"),
	netip.MustParsePrefix("fc00::/7"), netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("fec0::/10"), netip.MustParsePrefix("ff00::/8"),
	netip.MustParsePrefix("::/127"),
}

// PolicySyntax says how "*" reads in a policy line. In a server
// descriptor (DescriptorPolicy) "accept *:80" means every IPv4 address and
// an accept line must name an IPv4 address, an accept6 line an IPv6 one; in
// a torrc's ExitPolicy (TorrcPolicy) "*" is every address of both families,
// "*4" and "*6" one family each, and accept6 "*" the IPv6 ones.
type PolicySyntax int

const (
	DescriptorPolicy PolicySyntax = iota
	TorrcPolicy
)

// ParsePolicyLine reads one line of an exit policy, "accept ADDR:PORTS" or
// reject, accept6, reject6, as tor reads it in syntax. It returns one rule,
// or several for "private" (and for "*" in a torrc policy).
func ParsePolicyLine(line string, syntax PolicySyntax) ([]PolicyRule, error) {
	kw, arg, ok := strings.Cut(strings.TrimSpace(line), " ")
	arg = strings.TrimSpace(arg)
	if !ok || arg == "" || strings.ContainsAny(arg, " \t") {
		return nil, fmt.Errorf("exit policy line %q: want KEYWORD ADDRESS:PORTS", line)
	}
	var accept, six bool
	switch kw {
	case "accept":
		accept = true
	case "reject":
	case "accept6":
		accept, six = true, true
	case "reject6":
		six = true
	default:
		return nil, fmt.Errorf("exit policy line %q: %q is not accept, reject, accept6 or reject6", line, kw)
	}
	rules, err := parsePolicyArg(arg, accept, six, syntax)
	if err != nil {
		return nil, fmt.Errorf("exit policy line %q: %w", line, err)
	}
	return rules, nil
}

func parsePolicyArg(arg string, accept, six bool, syntax PolicySyntax) ([]PolicyRule, error) {
	if rest, ok := strings.CutPrefix(arg, "private"); ok {
		// router_parse_addr_policy_private: "private:PORTS", every
		// private network of both families whatever the keyword.
		rest = strings.TrimLeft(rest, " \t")
		if !strings.HasPrefix(rest, ":") {
			return nil, errors.New(`"private" without ":PORTS"`)
		}
		lo, hi, err := parsePortRange(rest[1:])
		if err != nil {
			return nil, err
		}
		out := make([]PolicyRule, len(privateNets))
		for i, p := range privateNets {
			out[i] = PolicyRule{Accept: accept, Prefix: p, MinPort: lo, MaxPort: hi}
		}
		return out, nil
	}
	prefixes, lo, hi, err := parseAddrMaskPorts(arg, six, syntax)
	if err != nil {
		return nil, err
	}
	if syntax == DescriptorPolicy && prefixes[0].Addr().Is6() != six {
		// router_add_exit_policy discards the whole descriptor.
		return nil, errors.New("the address's family does not match the keyword (accept/reject take IPv4, accept6/reject6 IPv6)")
	}
	out := make([]PolicyRule, len(prefixes))
	for i, p := range prefixes {
		out[i] = PolicyRule{Accept: accept, Prefix: p, MinPort: lo, MaxPort: hi}
	}
	return out, nil
}

// maxPolicyAddr is tor's MAX_ADDRESS_LENGTH: an address, its mask and its
// ports.
const maxPolicyAddr = 48 + 2 + (1 + 16) + 12 + 1

// parseAddrMaskPorts is tor_addr_parse_mask_ports for a policy:
// ADDR[/MASK][:PORTS], split where tor splits it: after a '[', the
// address runs to the ']'; the mask starts at the first '/' after it (or
// after the start), the ports at the first ':' after the mask (or after
// the ']', or the start).
func parseAddrMaskPorts(s string, six bool, syntax PolicySyntax) ([]netip.Prefix, int, int, error) {
	if len(s) > maxPolicyAddr {
		return nil, 0, 0, fmt.Errorf("address pattern longer than %d bytes", maxPolicyAddr)
	}
	address, from, end := s, 0, -1
	if strings.HasPrefix(s, "[") {
		address = s[1:]
		end = strings.IndexByte(address, ']')
		if end < 0 {
			return nil, 0, 0, errors.New("no closing ] after an IPv6 address")
		}
		from = end
	}
	maskAt := strings.IndexByte(address[from:], '/')
	portFrom := from
	if maskAt >= 0 {
		maskAt += from
		portFrom = maskAt
	}
	portAt := strings.IndexByte(address[portFrom:], ':')
	var mask, ports string
	hasMask := maskAt >= 0
	if portAt >= 0 {
		portAt += portFrom
		ports = address[portAt+1:]
		address = address[:portAt]
	}
	if hasMask {
		mask = address[maskAt+1:]
		address = address[:maskAt]
	}
	if end >= 0 {
		address = address[:end]
	}
	lo, hi, err := parsePortRange(ports)
	if err != nil {
		return nil, 0, 0, err
	}
	var any4, any6 bool
	switch {
	case address == "*" && syntax == TorrcPolicy && six:
		any6 = true
	case address == "*" && syntax == TorrcPolicy:
		any4, any6 = true, true
	case address == "*":
		any4 = true
	case address == "*4" && syntax == TorrcPolicy:
		any4 = true
	case address == "*6" && syntax == TorrcPolicy:
		any6 = true
	}
	if any4 || any6 {
		if hasMask {
			return nil, 0, 0, errors.New("a mask after a wildcard address")
		}
		var out []netip.Prefix
		if any4 {
			out = append(out, netip.PrefixFrom(netip.IPv4Unspecified(), 0))
		}
		if any6 {
			out = append(out, netip.PrefixFrom(netip.IPv6Unspecified(), 0))
		}
		return out, lo, hi, nil
	}
	addr, err := parsePolicyAddr(address)
	if err != nil {
		return nil, 0, 0, err
	}
	bits := addr.BitLen()
	if hasMask {
		if bits, err = parseMask(mask, addr); err != nil {
			return nil, 0, 0, err
		}
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return nil, 0, 0, err
	}
	// Tor keeps the address as written and compares under the mask; the
	// masked prefix compares the same.
	return []netip.Prefix{p}, lo, hi, nil
}

// parsePolicyAddr reads an IPv6 address (tor tries it first) or an IPv4
// one, without a zone.
func parsePolicyAddr(s string) (netip.Addr, error) {
	if strings.ContainsRune(s, '%') {
		return netip.Addr{}, fmt.Errorf("malformed address %q", s)
	}
	a, err := netip.ParseAddr(s)
	if err == nil {
		return a, nil
	}
	if a, ok := dottedQuad(s); ok {
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("malformed address %q", s)
}

// dottedQuad reads four decimal numbers of up to three digits each, at
// most 255, as tor_inet_aton's sscanf does: "010.0.0.1" is 10.0.0.1.
func dottedQuad(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, p := range parts {
		if len(p) == 0 || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return netip.Addr{}, false
		}
		v, _ := strconv.Atoi(p)
		if v > 255 {
			return netip.Addr{}, false
		}
		b[i] = byte(v)
	}
	return netip.AddrFrom4(b), true
}

// parseMask reads the bits of a mask, or an IPv4 netmask such as
// 255.255.0.0; for an IPv4-mapped IPv6 address tor maps the bits onto
// 96-128.
func parseMask(mask string, addr netip.Addr) (int, error) {
	bits, err := strtolWhole(mask)
	if err == nil {
		if bits < 0 || bits > 128 || addr.Is4() && bits > 32 {
			return 0, fmt.Errorf("bad mask bits %d", bits)
		}
	} else {
		m, perr := netip.ParseAddr(mask)
		if perr != nil || !m.Is4() {
			return 0, fmt.Errorf("malformed mask %q", mask)
		}
		b := m.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		bits = 0
		for v&(1<<31) != 0 {
			bits++
			v <<= 1
		}
		if v != 0 {
			return 0, fmt.Errorf("netmask %q is not a prefix", mask)
		}
	}
	if addr.Is4In6() {
		if bits > 32 && bits < 96 {
			return 0, fmt.Errorf("bad mask bits %d for an IPv4-mapped IPv6 address", bits)
		}
		bits = 96 + bits%32
	}
	return bits, nil
}

// strtolWhole reads s as strtol does when all of it must be read: leading
// white space, a sign, digits; an empty s is 0 (strtol reads nothing and
// stops at the end).
func strtolWhole(s string) (int, error) {
	t := strings.TrimLeft(s, " \t\n\v\f\r")
	if t == "" {
		if s == "" {
			return 0, nil
		}
		return 0, errors.New("not a number")
	}
	v, err := strconv.ParseInt(t, 10, 32)
	if err != nil {
		return 0, err
	}
	return int(v), nil
}

// parsePortRange is tor's parse_port_range: "" or "*" for every port, "N"
// or "N-M"; 0 reads as 1.
func parsePortRange(s string) (int, int, error) {
	if s == "" || s == "*" {
		return 1, 65535, nil
	}
	a, b, isRange := strings.Cut(s, "-")
	if isRange && a == "" {
		// strtol would read "-N" as a negative number, out of range.
		return 0, 0, fmt.Errorf("malformed port %q", s)
	}
	lo, err := strtolPort(a, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed port %q", s)
	}
	hi := lo
	if isRange {
		if hi, err = strtolPort(b, 1); err != nil {
			return 0, 0, fmt.Errorf("malformed port %q", s)
		}
	}
	if lo > hi {
		return 0, 0, fmt.Errorf("port range %q runs backwards", s)
	}
	return max(lo, 1), min(hi, 65535), nil
}

// strtolPort reads a whole decimal number from min to 65535 as tor_parse_long
// does: strtol's optional sign, no other text.
func strtolPort(s string, min int) (int, error) {
	if s == "" || strings.ContainsAny(s, " \t\n\v\f\r") {
		return 0, errors.New("not a number")
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < int64(min) || v > 65535 {
		return 0, errors.New("out of range")
	}
	return int(v), nil
}

// ParseExitPolicy reads the accept and reject lines of a server descriptor
// (other lines are left out), in DescriptorPolicy syntax.
func ParseExitPolicy(text string) (ExitPolicy, error) {
	var p ExitPolicy
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		kw, _, _ := strings.Cut(line, " ")
		switch kw {
		case "accept", "reject", "accept6", "reject6":
		default:
			continue
		}
		rules, err := ParsePolicyLine(line, DescriptorPolicy)
		if err != nil {
			return nil, err
		}
		p = append(p, rules...)
	}
	return p, nil
}

// String writes the policy one rule a line.
func (p ExitPolicy) String() string {
	var b strings.Builder
	for i, r := range p {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(r.String())
	}
	return b.String()
}

// Evaluate says what the policy does with a connection to addr:port, as
// compare_tor_addr_to_addr_policy does: addr invalid (the zero Addr) for an
// address not known yet (a hostname), port 0 for a port not known. With
// neither known it rejects.
func (p ExitPolicy) Evaluate(addr netip.Addr, port int) PolicyResult {
	switch {
	case !addr.IsValid() && port == 0:
		return PolicyRejected
	case !addr.IsValid():
		return p.evaluate(func(r PolicyRule) (bool, bool) {
			in := r.MinPort <= port && port <= r.MaxPort
			return in, in && r.Prefix.Bits() == 0
		})
	case port == 0:
		return p.evaluate(func(r PolicyRule) (bool, bool) {
			in := r.Prefix.Contains(addr)
			return in, in && r.MinPort <= 1 && r.MaxPort >= 65535
		})
	}
	for _, r := range p {
		if r.Prefix.Contains(addr) && r.MinPort <= port && port <= r.MaxPort {
			if r.Accept {
				return PolicyAccepted
			}
			return PolicyRejected
		}
	}
	return PolicyAccepted
}

// evaluate is tor's evaluation with something unknown: match says whether
// a rule may match and whether it surely does.
func (p ExitPolicy) evaluate(match func(PolicyRule) (maybe, surely bool)) PolicyResult {
	maybeAccept, maybeReject := false, false
	for _, r := range p {
		maybe, surely := match(r)
		switch {
		case surely && r.Accept:
			if maybeReject {
				return PolicyProbablyAccepted
			}
			return PolicyAccepted
		case surely:
			if maybeAccept {
				return PolicyProbablyRejected
			}
			return PolicyRejected
		case maybe && r.Accept:
			maybeAccept = true
		case maybe:
			maybeReject = true
		}
	}
	if maybeReject {
		return PolicyProbablyAccepted
	}
	return PolicyAccepted
}

// Evaluate says what the summary does with a connection to addr:port, as
// compare_tor_addr_to_short_policy does: at best "probably accepted", since
// a summary does not list the addresses a relay refuses. With
// rejectInternal (a client's ClientRejectInternalAddresses, on unless
// TestingTorNetwork) an internal or loopback address is rejected. port
// must be known. A relay without a summary rejects.
func (p PolicySummary) Evaluate(addr netip.Addr, port int, rejectInternal bool) PolicyResult {
	if p.Ports == nil || port <= 0 {
		return PolicyRejected
	}
	if addr.IsValid() && addr.IsUnspecified() {
		addr = netip.Addr{}
	}
	if addr.IsValid() && rejectInternal && isInternal(addr) {
		return PolicyRejected
	}
	if p.Allows(port) {
		return PolicyProbablyAccepted
	}
	return PolicyRejected
}

// isInternal is tor_addr_is_internal (not for listening) or loopback.
func isInternal(a netip.Addr) bool {
	if a.Is4In6() {
		a = a.Unmap()
	}
	if a.Is4() {
		for _, p := range internal4 {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	for _, p := range internal6 {
		if p.Contains(a) {
			return true
		}
	}
	return a == netip.IPv6Loopback()
}

var (
	internal4 = []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("100.64.0.0/10"),
		netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
	}
	internal6 = []netip.Prefix{
		netip.MustParsePrefix("fc00::/7"), netip.MustParsePrefix("fe80::/10"),
		netip.MustParsePrefix("fec0::/10"), netip.MustParsePrefix("::/127"),
	}
)

// errNoAddr is returned for an empty address.
var errNoAddr = errors.New("empty address")

// policyAddr reads the address of a connection: an IPv4 or IPv6 literal
// (the latter with or without brackets), known; anything else is a
// hostname, whose address is not known yet.
func policyAddr(s string) (a netip.Addr, known bool, err error) {
	if s == "" {
		return netip.Addr{}, false, errNoAddr
	}
	t := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if a, err := netip.ParseAddr(t); err == nil && a.Zone() == "" {
		return a, true, nil
	}
	return netip.Addr{}, false, nil
}
