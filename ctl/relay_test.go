package ctl

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
)

// dataReply is tor's answer to GETINFO key with a multi-line value.
func dataReply(key, value string) string {
	return "250+" + key + "=\r\n" + strings.ReplaceAll(strings.TrimSuffix(value, "\n"), "\n", "\r\n") + "\r\n.\r\n250 OK\r\n"
}

// TestRelays joins the consensus and the server descriptors a tor 0.4.9
// client of the private network keeps: the consensus gives the version
// and Unmeasured that ns/all leaves out, the descriptors the full exit
// policy that the summary ("reject 1-65535") hides.
func TestRelays(t *testing.T) {
	cons, err := os.ReadFile("testdata/tor-0.4.9/getinfo-dir-status-vote-current-consensus.txt")
	if err != nil {
		t.Fatal(err)
	}
	desc, err := os.ReadFile("testdata/tor-0.4.9/getinfo-desc-all-recent.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, withDesc := range []bool{true, false} {
		f, c := NewFakeControlPort(t, Options{})
		f.Serve(-1, func(cmd string) string {
			switch strings.TrimSpace(cmd) {
			case "GETINFO dir/status-vote/current/consensus":
				return dataReply("dir/status-vote/current/consensus", string(cons))
			case "GETINFO ip-to-country/ipv4-available":
				return "250-ip-to-country/ipv4-available=1\r\n250 OK\r\n"
			case "GETINFO ip-to-country/127.0.0.1":
				return "250-ip-to-country/127.0.0.1=??\r\n250 OK\r\n"
			case "GETINFO desc/all-recent":
				if withDesc {
					return dataReply("desc/all-recent", string(desc))
				}
				return "551 Unable to read descriptors\r\n"
			}
			return "552 Unrecognized key\r\n"
		})
		rs, err := c.Relays(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 8 {
			t.Fatalf("%d relays, want 8", len(rs))
		}
		for _, r := range rs {
			if r.Version != "Tor 0.4.9.11" || !r.Unmeasured || r.Published.Year() != 2026 {
				t.Errorf("%s: version %q, unmeasured %v, published %v: want the consensus's", r.Nickname, r.Version, r.Unmeasured, r.Published)
			}
			if withDesc != (r.Descriptor != nil) {
				t.Errorf("%s: descriptor %v, want %v", r.Nickname, r.Descriptor != nil, withDesc)
			}
			exit := strings.HasPrefix(r.Nickname, "exit")
			ok, err := r.CanExitTo("127.0.0.1", 8080, true, false)
			if err != nil {
				t.Fatal(err)
			}
			loose, _ := r.CanExitTo("127.0.0.1", 8080, false, false)
			if want := exit && withDesc; ok != want || loose != want {
				t.Errorf("%s (descriptor %v): can exit to 127.0.0.1:8080 %v (strict), %v; want %v", r.Nickname, withDesc, ok, loose, want)
			}
		}
	}
}

func TestParseConsensusEntries(t *testing.T) {
	doc := "network-status-version 3\nknown-flags Exit\nr a IveE3eKEBZUBx591zLiXyKX05k0 fkD1+sWZBYnUrY3AV4r6x8maQHo 2026-01-01 00:00:00 1.2.3.4 9001 0\ns Exit\ndirectory-footer\nbandwidth-weights Wbd=0\ndirectory-signature x y\n"
	rs, err := ParseConsensusEntries(doc)
	if err != nil || len(rs) != 1 || len(rs[0].Unknown) != 0 || !rs[0].HasFlag("Exit") {
		t.Fatalf("ParseConsensusEntries = %+v, %v", rs, err)
	}
	if rs, err := ParseConsensusEntries("network-status-version 3\n"); rs != nil || err != nil {
		t.Errorf("a consensus without entries: %v, %v", rs, err)
	}
}

// TestEffectiveFamilies: only a family both relays declare counts, by
// fingerprint (in any of its spellings) or nickname.
func TestEffectiveFamilies(t *testing.T) {
	fp := func(c byte) string { return strings.Repeat(string(c), 40) }
	relay := func(nick string, c byte, family ...string) Relay {
		r := Relay{RouterStatus: RouterStatus{Nickname: nick, Fingerprint: fp(c)}}
		if family != nil {
			r.Descriptor = &ServerDescriptor{Nickname: nick, Fingerprint: fp(c), Family: family}
		}
		return r
	}
	rs := []Relay{
		relay("a", 'A', "$"+fp('B')+"~b", "c", "$"+fp('D')),
		relay("b", 'B', "$"+strings.ToLower(fp('A'))),
		relay("c", 'C', "a"),
		relay("d", 'D'), // no descriptor: declares nothing
		relay("e", 'E', "$"+fp('A')+"=a"),
	}
	SetEffectiveFamilies(rs)
	want := map[string][]string{"a": {fp('B'), fp('C')}, "b": {fp('A')}, "c": {fp('A')}, "d": nil, "e": nil}
	for _, r := range rs {
		if !slices.Equal(r.EffectiveFamily, want[r.Nickname]) {
			t.Errorf("%s: effective family %v, want %v", r.Nickname, r.EffectiveFamily, want[r.Nickname])
		}
	}
}

// TestRelaysCountry: with GeoIP data, a relay's country comes from tor's
// ip-to-country, lower-case, "" for tor's "??"; addresses are asked once.
func TestRelaysCountry(t *testing.T) {
	ns := "r a IveE3eKEBZUBx591zLiXyKX05k0 fkD1+sWZBYnUrY3AV4r6x8maQHo 2026-01-01 00:00:00 1.2.3.4 9001 0\n" +
		"r b JcMjwE1oTe0FVrRKfSR5tGZbLu8 kLgCUNELeiu/awUcRig/x6i+mpI 2026-01-01 00:00:00 1.2.3.4 9002 0\n" +
		"r c +SSfUbgTyH1hqft3Yv7X3JIqYRQ Ykk7J51gZlYo8P5f010ZMpmqJ7c 2026-01-01 00:00:00 10.0.0.1 9001 0\n"
	f, c := NewFakeControlPort(t, Options{})
	var asked []string
	f.Serve(-1, func(cmd string) string {
		switch k := strings.TrimPrefix(strings.TrimSpace(cmd), "GETINFO "); k {
		case "ns/all":
			return dataReply(k, ns)
		case "ip-to-country/ipv4-available":
			return "250-" + k + "=1\r\n250 OK\r\n"
		case "ip-to-country/1.2.3.4 ip-to-country/10.0.0.1":
			asked = append(asked, k)
			return "250-ip-to-country/1.2.3.4=DE\r\n250-ip-to-country/10.0.0.1=??\r\n250 OK\r\n"
		}
		return "551 Not kept\r\n"
	})
	rs, err := c.Relays(context.Background())
	if err != nil || len(rs) != 3 {
		t.Fatalf("Relays: %d, %v", len(rs), err)
	}
	got := []string{rs[0].Country, rs[1].Country, rs[2].Country}
	if !slices.Equal(got, []string{"de", "de", ""}) || len(asked) != 1 {
		t.Errorf("countries %q, asked %q", got, asked)
	}
}

// TestRouterStatusesShareFlagSets: entries with the same "s" line (or "p"
// line) share one slice, made once; a "p" line that does not parse is
// kept in Unknown, each time.
func TestRouterStatusesShareFlagSets(t *testing.T) {
	doc := "r a AAAAAAAAAAAAAAAAAAAAAAAAAAA 7hdWDIt3OFtbuNhoeCD5uC8/3N8 2024-01-01 00:00:00 10.0.0.1 9001 0\ns Fast Running Valid\np accept 80,443\n" +
		"r b AQAAAAAAAAAAAAAAAAAAAAAAAAA 7hdWDIt3OFtbuNhoeCD5uC8/3N8 2024-01-01 00:00:00 10.0.0.2 9001 0\ns Fast Running Valid\np accept 80,443\n" +
		"r c AgAAAAAAAAAAAAAAAAAAAAAAAAA 7hdWDIt3OFtbuNhoeCD5uC8/3N8 2024-01-01 00:00:00 10.0.0.3 9001 0\ns Exit Running\np bogus 1\n" +
		"r d AwAAAAAAAAAAAAAAAAAAAAAAAAA 7hdWDIt3OFtbuNhoeCD5uC8/3N8 2024-01-01 00:00:00 10.0.0.4 9001 0\np bogus 1\n"
	rs, err := ParseRouterStatuses(doc)
	if err != nil || len(rs) != 4 {
		t.Fatalf("%d entries, %v", len(rs), err)
	}
	if !slices.Equal(rs[0].Flags, []string{"Fast", "Running", "Valid"}) || &rs[0].Flags[0] != &rs[1].Flags[0] {
		t.Errorf("flags %v and %v: want the same slice", rs[0].Flags, rs[1].Flags)
	}
	if !rs[0].ExitPolicy.Accept || len(rs[0].ExitPolicy.Ports) != 2 || &rs[0].ExitPolicy.Ports[0] != &rs[1].ExitPolicy.Ports[0] {
		t.Errorf("policies %+v and %+v: want the same", rs[0].ExitPolicy, rs[1].ExitPolicy)
	}
	if !slices.Equal(rs[2].Flags, []string{"Exit", "Running"}) || rs[3].Flags != nil {
		t.Errorf("flags %v, %v", rs[2].Flags, rs[3].Flags)
	}
	for _, r := range rs[2:] {
		if !slices.Equal(r.Unknown, []string{"p bogus 1"}) || r.ExitPolicy.Ports != nil {
			t.Errorf("%s: unknown %q, policy %+v", r.Nickname, r.Unknown, r.ExitPolicy)
		}
	}
}
