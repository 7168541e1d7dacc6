package ctl

import (
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestParsePolicyLine reads lines as tor's tor_addr_parse_mask_ports and
// parse_port_range do (src/lib/net/address.c), in both syntaxes.
func TestParsePolicyLine(t *testing.T) {
	for _, tc := range []struct {
		line   string
		syntax PolicySyntax
		want   string // the rules, one a line, or "error"
	}{
		{"reject 192.168.0.0/16:*", DescriptorPolicy, "reject 192.168.0.0/16:*"},
		{"accept 127.0.0.0/8:*", DescriptorPolicy, "accept 127.0.0.0/8:*"},
		{"reject *:*", DescriptorPolicy, "reject *:*"},
		{"accept *:80", DescriptorPolicy, "accept *:80"},
		{"accept *:20-23", DescriptorPolicy, "accept *:20-23"},
		{"accept 1.2.3.4", DescriptorPolicy, "accept 1.2.3.4:*"}, // no ports: all
		{"accept 1.2.3.4:0-80", DescriptorPolicy, "accept 1.2.3.4:1-80"},
		{"accept 1.2.3.4:0", DescriptorPolicy, "accept 1.2.3.4:0"},                  // 1-0: no port            // 0 reads as 1
		{"accept 1.2.3.4:+80", DescriptorPolicy, "accept 1.2.3.4:80"},               // strtol's sign
		{"accept 10.1.2.3/255.255.0.0:*", DescriptorPolicy, "accept 10.1.0.0/16:*"}, // a netmask
		{"accept 10.1.2.3/:443", DescriptorPolicy, "accept *:443"},                  // strtol reads "" as 0
		{"accept 010.0.0.1:80", DescriptorPolicy, "accept 10.0.0.1:80"},             // sscanf's %u
		{"accept6 [2001:db8::]/32:443", DescriptorPolicy, "accept6 [2001:db8::]/32:443"},
		{"reject6 [::1]:*", DescriptorPolicy, "reject6 [::1]:*"},
		{"accept  *:80", DescriptorPolicy, "accept *:80"},
		// In a torrc "*" is both families, "*4" and "*6" one each.
		{"accept *:80", TorrcPolicy, "accept *:80\naccept6 [::]/0:80"},
		{"accept6 *:80", TorrcPolicy, "accept6 [::]/0:80"},
		{"reject *4:*", TorrcPolicy, "reject *:*"},
		{"reject *6:25", TorrcPolicy, "reject6 [::]/0:25"},
		{"accept [2001:db8::1]:*", TorrcPolicy, "accept6 [2001:db8::1]:*"},
		// private: both families whatever the keyword.
		{"reject private:*", DescriptorPolicy, "reject 0.0.0.0/8:*\nreject 169.254.0.0/16:*\nreject 127.0.0.0/8:*\nreject 192.168.0.0/16:*\nreject 10.0.0.0/8:*\nreject 172.16.0.0/12:*\nreject6 [::]/8:*\nreject6 [fc00::]/7:*\nreject6 [fe80::]/10:*\nreject6 [fec0::]/10:*\nreject6 [ff00::]/8:*\nreject6 [::]/127:*"},
		{"accept *:80-20", DescriptorPolicy, "error"}, // backwards
		{"accept *:-80", DescriptorPolicy, "error"},   // negative
		{"accept *:70000", DescriptorPolicy, "error"}, // out of range
		{"accept *:80-", DescriptorPolicy, "error"},   // no upper end
		{"accept 1.2.3.4/33:*", DescriptorPolicy, "error"},
		{"accept 10.0.0.0/255.0.255.0:*", DescriptorPolicy, "error"}, // not a prefix
		{"accept */8:*", DescriptorPolicy, "error"},                  // mask on a wildcard
		{"accept *4:*", DescriptorPolicy, "error"},                   // *4 only in a torrc
		{"accept [::1:*", DescriptorPolicy, "error"},                 // no ]
		{"accept [::1]:*", DescriptorPolicy, "error"},                // IPv6 on accept, in a descriptor
		{"accept6 1.2.3.4:*", DescriptorPolicy, "error"},             // IPv4 on accept6
		{"accept 1.2.3.4:80/8", DescriptorPolicy, "error"},
		{"accept *:80 extra", DescriptorPolicy, "error"}, // two arguments
		{"accept", DescriptorPolicy, "error"},
		{"allow *:80", DescriptorPolicy, "error"},
		{"accept fe80::1%eth0:*", TorrcPolicy, "error"},
		{"accept " + strings.Repeat("1", 90) + ":*", DescriptorPolicy, "error"},
	} {
		rules, err := ParsePolicyLine(tc.line, tc.syntax)
		got := "error"
		if err == nil {
			got = ExitPolicy(rules).String()
		}
		if got != tc.want {
			t.Errorf("ParsePolicyLine(%q, %d) = %q (%v), want %q", tc.line, tc.syntax, got, err, tc.want)
		}
	}
}

func mustPolicy(t *testing.T, lines ...string) ExitPolicy {
	t.Helper()
	var p ExitPolicy
	for _, l := range lines {
		r, err := ParsePolicyLine(l, TorrcPolicy)
		if err != nil {
			t.Fatal(err)
		}
		p = append(p, r...)
	}
	return p
}

// TestExitPolicyEvaluate: compare_tor_addr_to_addr_policy's answers,
// including the cases of src/test/test_policy.c.
func TestExitPolicyEvaluate(t *testing.T) {
	a := netip.MustParseAddr
	none := netip.Addr{}
	for _, tc := range []struct {
		policy []string
		addr   netip.Addr
		port   int
		want   PolicyResult
	}{
		// test_policy.c: reject 192.168.0.0/16:*
		{[]string{"reject 192.168.0.0/16:*"}, a("1.2.3.4"), 2, PolicyAccepted},
		{[]string{"reject 192.168.0.0/16:*"}, none, 2, PolicyProbablyAccepted},
		{[]string{"reject 192.168.0.0/16:*"}, a("192.168.1.2"), 2, PolicyRejected},
		// The private network's exits.
		{[]string{"accept 127.0.0.0/8:*", "reject *:*"}, a("127.0.0.2"), 8080, PolicyAccepted},
		{[]string{"accept 127.0.0.0/8:*", "reject *:*"}, a("93.184.216.34"), 80, PolicyRejected},
		{[]string{"accept 127.0.0.0/8:*", "reject *:*"}, none, 80, PolicyProbablyRejected},
		// First match wins.
		{[]string{"reject 1.2.3.4:*", "accept *:80", "reject *:*"}, a("1.2.3.4"), 80, PolicyRejected},
		{[]string{"reject 1.2.3.4:*", "accept *:80", "reject *:*"}, a("1.2.3.5"), 80, PolicyAccepted},
		{[]string{"reject 1.2.3.4:*", "accept *:80", "reject *:*"}, none, 80, PolicyProbablyAccepted},
		{[]string{"reject 1.2.3.4:*", "accept *:80", "reject *:*"}, none, 443, PolicyRejected},
		{[]string{"accept *:80", "reject *:*"}, none, 80, PolicyAccepted},
		// Port unknown.
		{[]string{"reject 1.2.3.4:*", "accept *:80", "reject *:*"}, a("1.2.3.4"), 0, PolicyRejected},
		{[]string{"accept *:80", "reject *:*"}, a("1.2.3.5"), 0, PolicyProbablyRejected},
		{[]string{"reject *:25", "accept *:*"}, a("1.2.3.5"), 0, PolicyProbablyAccepted},
		{[]string{"accept *:80"}, none, 0, PolicyRejected},
		// Families never match each other; nothing matching accepts.
		{[]string{"reject *4:*"}, a("2001:db8::1"), 80, PolicyAccepted},
		{[]string{"reject *6:*"}, a("2001:db8::1"), 80, PolicyRejected},
		{[]string{"reject *4:*"}, a("::ffff:1.2.3.4"), 80, PolicyAccepted},
		{nil, a("1.2.3.4"), 80, PolicyAccepted},
	} {
		p := mustPolicy(t, tc.policy...)
		if got := p.Evaluate(tc.addr, tc.port); got != tc.want {
			t.Errorf("%q.Evaluate(%v, %d) = %v, want %v", tc.policy, tc.addr, tc.port, got, tc.want)
		}
	}
}

// TestPolicySummaryEvaluate: compare_tor_addr_to_short_policy never says
// more than "probably accepted", and rejects internal addresses for a
// client with ClientRejectInternalAddresses.
func TestPolicySummaryEvaluate(t *testing.T) {
	web, _ := ParsePolicySummary("accept 80,443")
	closed, _ := ParsePolicySummary("reject 1-65535")
	a := netip.MustParseAddr
	for _, tc := range []struct {
		p        PolicySummary
		addr     netip.Addr
		port     int
		internal bool
		want     PolicyResult
	}{
		{web, a("93.184.216.34"), 443, true, PolicyProbablyAccepted},
		{web, netip.Addr{}, 443, true, PolicyProbablyAccepted},
		{web, a("93.184.216.34"), 25, true, PolicyRejected},
		{web, a("10.1.2.3"), 443, true, PolicyRejected},
		{web, a("100.64.0.1"), 443, true, PolicyRejected},
		{web, a("::1"), 443, true, PolicyRejected},
		{web, a("10.1.2.3"), 443, false, PolicyProbablyAccepted},
		{web, a("0.0.0.0"), 443, true, PolicyProbablyAccepted}, // unspecified: no address at all
		// The private network's exits: the summary cannot tell.
		{closed, a("127.0.0.2"), 8080, false, PolicyRejected},
		{PolicySummary{}, a("1.2.3.4"), 80, false, PolicyRejected},
	} {
		if got := tc.p.Evaluate(tc.addr, tc.port, tc.internal); got != tc.want {
			t.Errorf("%q.Evaluate(%v, %d, %v) = %v, want %v", tc.p.String(), tc.addr, tc.port, tc.internal, got, tc.want)
		}
	}
	if !PolicyProbablyAccepted.Allows(false) || PolicyProbablyAccepted.Allows(true) || !PolicyAccepted.Allows(true) || PolicyProbablyRejected.Allows(false) {
		t.Error("Allows: strict answers only what is certain")
	}
}

// TestRealTorServerDescriptors parses the server descriptors a tor 0.4.9
// client of the private network gave for GETINFO desc/all-recent: its
// exits' summaries say "reject 1-65535", their policies accept 127.0.0.0/8.
func TestRealTorServerDescriptors(t *testing.T) {
	b, err := os.ReadFile("testdata/tor-0.4.9/getinfo-desc-all-recent.txt")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := ParseServerDescriptors(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 8 {
		t.Fatalf("%d descriptors, want 8", len(ds))
	}
	exits := 0
	for _, d := range ds {
		if d.Nickname == "" || len(d.Fingerprint) != 40 || d.Version != "0.4.9.11" || d.Published.IsZero() || d.ORPort == 0 || d.BandwidthAvg == 0 || len(d.ExitPolicy) == 0 {
			t.Errorf("descriptor %+v: a field is missing", d)
		}
		if len(d.Unknown) > 0 {
			t.Errorf("%s: lines not read: %q", d.Nickname, d.Unknown)
		}
		web, err := d.ExitPolicyFor("127.0.0.2", 8080)
		if err != nil {
			t.Fatal(err)
		}
		public, _ := d.ExitPolicyFor("93.184.216.34", 80)
		host, _ := d.ExitPolicyFor("example.com", 80)
		v6, _ := d.ExitPolicyFor("[2001:db8::1]", 80)
		if public != PolicyRejected || v6 != PolicyRejected {
			t.Errorf("%s: public %v, IPv6 %v, want rejected", d.Nickname, public, v6)
		}
		if strings.HasPrefix(d.Nickname, "exit") {
			exits++
			if web != PolicyAccepted || host != PolicyProbablyRejected {
				t.Errorf("%s: 127.0.0.2:8080 %v, a hostname %v; want accepted, probably rejected", d.Nickname, web, host)
			}
		} else if web != PolicyRejected || host != PolicyRejected {
			t.Errorf("%s (not an exit): 127.0.0.2:8080 %v, a hostname %v; want rejected", d.Nickname, web, host)
		}
	}
	if exits != 2 {
		t.Errorf("%d exits, want 2", exits)
	}
}

// FuzzPolicyLine: any line parses or fails without panicking; a rule that
// parses writes back as a line that parses to the same rule; evaluation
// answers for any address and port.
func FuzzPolicyLine(f *testing.F) {
	for _, s := range []string{"accept *:80", "reject 192.168.0.0/16:*", "accept6 [2001:db8::]/32:443", "reject private:25",
		"accept 10.1.2.3/255.255.0.0:1-1024", "accept [::ffff:1.2.3.4]/8:*", "accept 010.0.0.1/:+80", "reject *6:0-0"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, line string, torrc bool) {
		syntax := DescriptorPolicy
		if torrc {
			syntax = TorrcPolicy
		}
		rules, err := ParsePolicyLine(line, syntax)
		if err != nil {
			return
		}
		for _, r := range rules {
			if r.MinPort < 1 || r.MaxPort > 65535 || r.MinPort > r.MaxPort && r.MaxPort != 0 || !r.Prefix.IsValid() {
				t.Fatalf("%q: bad rule %+v", line, r)
			}
			back, err := ParsePolicyLine(r.String(), DescriptorPolicy)
			if err != nil || len(back) != 1 || back[0] != r {
				t.Fatalf("%q: rule %+v writes as %q, which reads as %+v (%v)", line, r, r.String(), back, err)
			}
		}
		p := ExitPolicy(rules)
		for _, a := range []netip.Addr{{}, netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("2001:db8::1")} {
			for _, port := range []int{0, 1, 80, 65535} {
				_ = p.Evaluate(a, port)
			}
		}
	})
}

// FuzzServerDescriptors: any text parses or fails without panicking.
func FuzzServerDescriptors(f *testing.F) {
	b, err := os.ReadFile("testdata/tor-0.4.9/getinfo-desc-all-recent.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(b))
	f.Add("router a 1.2.3.4 9001 0 0\nuptime -1\nbandwidth 1 2\naccept [::]:*\n-----BEGIN X-----\n")
	f.Add("router a 1.2.3.4 9001 0 0\naccept 1.2.3.4:80\nreject *:*\nrouter b 1.2.3.5 9001 0 0\naccept 1.2.3.4:80\ncontact x\nreject *:*\nrouter c 1.2.3.6 9001 0 0\r\naccept 1.2.3.4:80\r\nreject *:*\r\n")
	f.Fuzz(func(t *testing.T, text string) {
		ds, _ := ParseServerDescriptors(text)
		for _, d := range ds {
			_, _ = d.ExitPolicyFor("127.0.0.1", 80)
			_, _ = d.ExitPolicyFor("example.com", 443)
		}
		// Policies parsed once and shared between descriptors are the
		// ones each descriptor gets parsed alone.
		var alone []ServerDescriptor
		for _, part := range splitDescriptors(text) {
			one, _ := ParseServerDescriptors(part)
			alone = append(alone, one...)
		}
		if len(alone) != len(ds) {
			t.Fatalf("%d descriptors together, %d one by one", len(ds), len(alone))
		}
		for i := range ds {
			if !slices.Equal(ds[i].ExitPolicy, alone[i].ExitPolicy) {
				t.Fatalf("descriptor %d: policy %v together, %v alone", i, ds[i].ExitPolicy, alone[i].ExitPolicy)
			}
		}
	})
}

// splitDescriptors cuts text before each line whose keyword is "router",
// outside objects, as ParseServerDescriptors reads them.
func splitDescriptors(text string) []string {
	var parts []string
	start, inObject := 0, false
	for off := 0; off < len(text); {
		end := strings.IndexByte(text[off:], '\n')
		next := len(text)
		if end >= 0 {
			next = off + end + 1
		}
		line := strings.TrimRight(text[off:next], "\r\n")
		switch {
		case inObject:
			inObject = !strings.HasPrefix(line, "-----END ")
		case strings.HasPrefix(line, "-----BEGIN "):
			inObject = true
		default:
			if kw, _, _ := strings.Cut(line, " "); kw == "router" && off > start {
				parts = append(parts, text[start:off])
				start = off
			}
		}
		off = next
	}
	return append(parts, text[start:])
}
