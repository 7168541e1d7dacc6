package ctl

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestRealTorMicrodescriptors: the microdescriptors a tor 0.4.9 client of
// the private network gave for GETINFO md/all, each found by the digest
// the microdescriptor consensus names it by.
func TestRealTorMicrodescriptors(t *testing.T) {
	md, err := os.ReadFile("testdata/tor-0.4.9/getinfo-md-all.txt")
	if err != nil {
		t.Fatal(err)
	}
	cons, err := os.ReadFile("testdata/tor-0.4.9/getinfo-dir-status-vote-current-consensus-microdesc.txt")
	if err != nil {
		t.Fatal(err)
	}
	mds, err := ParseMicrodescriptors(string(md))
	if err != nil || len(mds) != 8 {
		t.Fatalf("ParseMicrodescriptors: %d, %v", len(mds), err)
	}
	entries, err := ParseConsensusEntries(string(cons))
	if err != nil || len(entries) != 8 {
		t.Fatalf("consensus: %d entries, %v", len(entries), err)
	}
	for _, e := range entries {
		i := slices.IndexFunc(mds, func(m Microdescriptor) bool { return m.Digest == e.Microdesc })
		if i < 0 {
			t.Errorf("%s: no microdescriptor with digest %q", e.Nickname, e.Microdesc)
			continue
		}
		if m := mds[i]; m.Ed25519 == "" || len(m.Unknown) > 0 {
			t.Errorf("%s: %+v", e.Nickname, m)
		}
	}

	// Relays on a client that fetches microdescriptors.
	f, c := NewFakeControlPort(t, Options{})
	f.Serve(-1, func(cmd string) string {
		switch k := strings.TrimPrefix(strings.TrimSpace(cmd), "GETINFO "); k {
		case "dir/status-vote/current/consensus-microdesc":
			return dataReply(k, string(cons))
		case "md/all":
			return dataReply(k, string(md))
		}
		return "551 Could not open cached consensus\r\n"
	})
	rs, err := c.Relays(context.Background())
	if err != nil || len(rs) != 8 {
		t.Fatalf("Relays: %d, %v", len(rs), err)
	}
	for _, r := range rs {
		if r.Micro == nil || r.Descriptor != nil {
			t.Errorf("%s: microdescriptor %v, descriptor %v", r.Nickname, r.Micro != nil, r.Descriptor != nil)
		}
	}
}

func TestParseMicrodescriptors(t *testing.T) {
	text := "onion-key\n-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\nntor-onion-key AAAA\nfamily $" + strings.Repeat("B", 40) + " nick\np accept 80,443\np6 accept 443\nid ed25519 KEY\n" +
		"ntor-onion-key BBBB\nfamily-ids ed25519:FAM\nnew-line x\n" +
		"ntor-onion-key CCCC\n"
	mds, err := ParseMicrodescriptors(text)
	if err != nil || len(mds) != 3 {
		t.Fatalf("ParseMicrodescriptors = %d, %v", len(mds), err)
	}
	a, b := mds[0], mds[1]
	if !slices.Equal(a.Family, []string{"$" + strings.Repeat("B", 40), "nick"}) || a.Policy.String() != "accept 80,443" || a.IPv6Policy.String() != "accept 443" || a.Ed25519 != "KEY" {
		t.Errorf("first: %+v", a)
	}
	if !slices.Equal(b.FamilyIDs, []string{"ed25519:FAM"}) || !slices.Equal(b.Unknown, []string{"new-line x"}) {
		t.Errorf("second (no onion-key): %+v", b)
	}
	if a.Digest == b.Digest || mds[2].Digest == "" {
		t.Errorf("digests %q %q %q", a.Digest, b.Digest, mds[2].Digest)
	}
	if _, err := ParseMicrodescriptors("p accept 80\nonion-key\n"); err == nil {
		t.Error("a line before the first onion-key: no error")
	}
	if _, err := ParseMicrodescriptors("onion-key\np allow 80\n"); err == nil {
		t.Error("a bad p line: no error")
	}
}

// TestMicrodescriptorFamiliesAndIPv6: with microdescriptors only, family
// lines must name each other, family-ids need not; an IPv6 destination is
// judged by p6.
func TestMicrodescriptorFamiliesAndIPv6(t *testing.T) {
	fp := func(c byte) string { return strings.Repeat(string(c), 40) }
	relay := func(nick string, c byte, m Microdescriptor) Relay {
		return Relay{RouterStatus: RouterStatus{Nickname: nick, Fingerprint: fp(c)}, Micro: &m}
	}
	rs := []Relay{
		relay("a", 'A', Microdescriptor{Family: []string{"$" + fp('B')}}),
		relay("b", 'B', Microdescriptor{Family: []string{"a"}}),
		relay("c", 'C', Microdescriptor{FamilyIDs: []string{"ed25519:X"}}),
		relay("d", 'D', Microdescriptor{FamilyIDs: []string{"ed25519:X", "ed25519:Y"}, IPv6Policy: PolicySummary{Accept: true, Ports: []PortRange{{443, 443}}}}),
	}
	SetEffectiveFamilies(rs)
	want := map[string][]string{"a": {fp('B')}, "b": {fp('A')}, "c": {fp('D')}, "d": {fp('C')}}
	for _, r := range rs {
		if !slices.Equal(r.EffectiveFamily, want[r.Nickname]) {
			t.Errorf("%s: %v, want %v", r.Nickname, r.EffectiveFamily, want[r.Nickname])
		}
	}
	d := rs[3]
	if ok, _ := d.CanExitTo("[2001:db8::1]", 443, false, true); !ok {
		t.Error("p6 accept 443: [2001:db8::1]:443 refused")
	}
	if ok, _ := d.CanExitTo("2001:db8::1", 80, false, true); ok {
		t.Error("p6 accept 443: port 80 allowed")
	}
	if ok, _ := rs[0].CanExitTo("2001:db8::1", 443, false, true); ok {
		t.Error("no p6: IPv6 allowed")
	}
}

func FuzzMicrodescriptors(f *testing.F) {
	if b, err := os.ReadFile("testdata/tor-0.4.9/getinfo-md-all.txt"); err == nil {
		f.Add(string(b))
	}
	f.Add("ntor-onion-key A\nfamily-ids x\np6 accept 1-2\n-----BEGIN X-----\n")
	f.Fuzz(func(t *testing.T, text string) {
		mds, _ := ParseMicrodescriptors(text)
		for _, m := range mds {
			if m.Digest == "" {
				t.Fatalf("no digest: %+v", m)
			}
		}
	})
}
