package ctl

import (
	"fmt"
	"net/netip"
	"strings"
)

// RouterSet is a set of relays as tor's options name them (ExcludeNodes,
// ExcludeExitNodes, ExitNodes, EntryNodes, ...), read as tor's
// routerset_parse reads it: comma-separated entries, each a fingerprint
// ("$FP", "FP", "$FP~nick", "$FP=nick"), a nickname (compared without
// regard to case), a country ("{de}"), or an address pattern ("1.2.3.0/24",
// "[2001:db8::]/32", "*", with optional ports), the latter matched against
// a relay's OR addresses and ports.
type RouterSet struct {
	Fingerprints map[string]bool // upper-case hex
	Nicknames    map[string]bool // lower case
	Countries    map[string]bool // lower case
	Addresses    ExitPolicy      // reject rules: a relay they reject is in the set
}

// ParseRouterSet reads s; an entry tor would call malformed is an error
// (tor then refuses the whole option).
func ParseRouterSet(s string) (RouterSet, error) {
	rs := RouterSet{Fingerprints: map[string]bool{}, Nicknames: map[string]bool{}, Countries: map[string]bool{}}
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		switch {
		case isHexDigestEntry(e):
			rs.Fingerprints[strings.ToUpper(strings.TrimPrefix(e, "$")[:40])] = true
		case isNickname(e):
			rs.Nicknames[strings.ToLower(e)] = true
		case len(e) == 4 && e[0] == '{' && e[3] == '}':
			rs.Countries[strings.ToLower(e[1:3])] = true
		case strings.ContainsAny(e, ".:*"):
			rules, err := ParsePolicyLine("reject "+e, TorrcPolicy)
			if err != nil {
				return RouterSet{}, fmt.Errorf("router set entry %q: %w", e, err)
			}
			rs.Addresses = append(rs.Addresses, rules...)
		default:
			return RouterSet{}, fmt.Errorf("router set entry %q is malformed", e)
		}
	}
	return rs, nil
}

// isHexDigestEntry is tor's is_legal_hexdigest: "$" optional, 40 hex
// digits, optionally "=" or "~" and a nickname.
func isHexDigestEntry(s string) bool {
	s = strings.TrimPrefix(s, "$")
	if len(s) < 40 || !isHex(s[:40]) {
		return false
	}
	if len(s) == 40 {
		return true
	}
	return (s[40] == '=' || s[40] == '~') && isNickname(s[41:])
}

// Empty reports whether the set names nothing.
func (rs RouterSet) Empty() bool {
	return len(rs.Fingerprints) == 0 && len(rs.Nicknames) == 0 && len(rs.Countries) == 0 && len(rs.Addresses) == 0
}

// Contains reports whether r is in the set, as routerset_contains decides
// it: by fingerprint, nickname, country, or an address pattern that
// rejects one of its OR addresses and ports.
func (rs RouterSet) Contains(r *Relay) bool {
	if rs.Fingerprints[r.Fingerprint] || rs.Nicknames[strings.ToLower(r.Nickname)] {
		return true
	}
	if r.Country != "" && rs.Countries[r.Country] {
		return true
	}
	if len(rs.Addresses) == 0 {
		return false
	}
	if a, err := netip.ParseAddr(r.Address); err == nil && rs.Addresses.Evaluate(a, r.ORPort) == PolicyRejected {
		return true
	}
	for _, ap := range r.ORAddresses {
		if a, err := netip.ParseAddrPort(ap); err == nil && rs.Addresses.Evaluate(a.Addr(), int(a.Port())) == PolicyRejected {
			return true
		}
	}
	return false
}
