package ctl

import (
	"strings"
	"testing"
)

// TestRouterSet reads router sets as tor's routerset_parse does and
// matches relays as routerset_contains does.
func TestRouterSet(t *testing.T) {
	fp := strings.Repeat("AB", 20)
	relay := func(nick, fp, addr string, port int, country string, more ...string) *Relay {
		return &Relay{RouterStatus: RouterStatus{Nickname: nick, Fingerprint: fp, Address: addr, ORPort: port, ORAddresses: more}, Country: country}
	}
	a := relay("Alpha", fp, "1.2.3.4", 9001, "de")
	b := relay("beta", strings.Repeat("CD", 20), "10.9.8.7", 443, "", "[2001:db8::7]:9001")
	c := relay("gamma", strings.Repeat("EF", 20), "5.6.7.8", 9001, "nl")
	for _, tc := range []struct {
		spec    string
		in, out []*Relay
	}{
		{"$" + fp, []*Relay{a}, []*Relay{b, c}},
		{strings.ToLower(fp) + "~Alpha", []*Relay{a}, []*Relay{b, c}},
		{"$" + fp + "=Alpha", []*Relay{a}, []*Relay{b, c}},
		{"ALPHA, Beta", []*Relay{a, b}, []*Relay{c}},
		{"{DE},{nl}", []*Relay{a, c}, []*Relay{b}},
		{"10.0.0.0/8", []*Relay{b}, []*Relay{a, c}},
		{"1.2.3.4:443", nil, []*Relay{a, b, c}},
		{"1.2.3.4:9001", []*Relay{a}, []*Relay{b, c}},
		{"[2001:db8::]/32", []*Relay{b}, []*Relay{a, c}},
		{"*", []*Relay{a, b, c}, nil},
		{" , ,", nil, []*Relay{a, b, c}},
	} {
		rs, err := ParseRouterSet(tc.spec)
		if err != nil {
			t.Errorf("ParseRouterSet(%q): %v", tc.spec, err)
			continue
		}
		for _, r := range tc.in {
			if !rs.Contains(r) {
				t.Errorf("%q does not contain %s", tc.spec, r.Nickname)
			}
		}
		for _, r := range tc.out {
			if rs.Contains(r) {
				t.Errorf("%q contains %s", tc.spec, r.Nickname)
			}
		}
	}
	for _, bad := range []string{"not a relay", "{d}", "1.2.3.4/40", "$" + fp + "~", "toolongnicknameabcdefgh"} {
		if _, err := ParseRouterSet(bad); err == nil {
			t.Errorf("ParseRouterSet(%q): no error", bad)
		}
	}
}

// FuzzRouterSet: any option value parses or fails without panicking, and a
// set that parses answers for any relay.
func FuzzRouterSet(f *testing.F) {
	for _, s := range []string{"$" + strings.Repeat("AB", 20) + "~nick", "Alpha, {de}, 10.0.0.0/8:443", "[2001:db8::]/32,*", " , "} {
		f.Add(s)
	}
	r := &Relay{RouterStatus: RouterStatus{Nickname: "alpha", Fingerprint: strings.Repeat("AB", 20), Address: "10.1.2.3", ORPort: 443, ORAddresses: []string{"[2001:db8::1]:443"}}, Country: "de"}
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseRouterSet(s)
		if err != nil {
			return
		}
		_ = rs.Contains(r)
	})
}
