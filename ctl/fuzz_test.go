package ctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
)

// fuzzLimits are small so that the fuzzer reaches the limits.
var fuzzLimits = Limits{MaxLineBytes: 512, MaxReplyBytes: 4096}

// fuzzEventSeeds returns a transcript of every event sample of the tests,
// one event type at least each.
func fuzzEventSeeds() [][]byte {
	var out [][]byte
	for _, tc := range evCases {
		out = append(out, []byte(evCRLF(tc.in)))
	}
	out = append(out,
		[]byte(evCRLF("650 STATUS_SEVER NOTICE CHECKING_REACHABILITY ORADDRESS=18.244.0.188:9001")),
		[]byte(evCRLF("650-CLIENTS_SEEN TimeStarted=\"Thu Dec 25 23:50:43 EST 2008\"\n650 CountrySummary=us=16,de=8,uk=8")),
		[]byte("650 CIRC 1 BUILT\n650 STREAM 1 NEW 0 a:1\n"), // bare LF, two events
		[]byte(evCRLF("650 FOOBAR x=1")),
		[]byte(evCRLF(`650 CIRC "12" "BU\ILT" PURPOSE=GENERAL`)), // a head no substring of the text
	)
	// What a real tor 0.4.9 sent.
	if data, err := os.ReadFile("testdata/tor-0.4.9/events.txt"); err == nil {
		rs, _ := ParseReplies(data, Limits{})
		for _, r := range rs {
			out = append(out, []byte(r.Raw))
		}
	}
	return out
}

func FuzzParseReplies(f *testing.F) {
	for _, s := range fuzzEventSeeds() {
		f.Add(s)
	}
	f.Add([]byte("250-version=Tor 0.4.9.3\r\n250+config-text=\r\nSocksPort 9050\r\n..hidden\r\n.\r\n250 OK\r\n"))
	f.Add([]byte("552 Unrecognized key \"x\"\r\n"))
	f.Add([]byte("250+x=\r\n.\r\n250 OK"))
	f.Add([]byte("250 OK\r\n250-partial\r\n"))
	f.Add([]byte("25\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		replies, err := ParseReplies(data, fuzzLimits)
		var consumed []byte
		for _, r := range replies {
			consumed = append(consumed, r.Raw...)
			if len(r.Lines) == 0 {
				t.Fatalf("reply with no lines: %q", r.Raw)
			}
			if len(r.Raw) > fuzzLimits.MaxReplyBytes {
				t.Fatalf("reply of %d bytes over the limit", len(r.Raw))
			}
			for i, l := range r.Lines {
				last := i == len(r.Lines)-1
				if last != (l.Sep == ' ') || (l.Sep != ' ' && l.Sep != '-' && l.Sep != '+') {
					t.Fatalf("line %d of %d has separator %q: %q", i, len(r.Lines), l.Sep, r.Raw)
				}
				if l.Code < 0 || l.Code > 999 || strings.ContainsAny(l.Text, "\n") || (l.Sep != '+' && l.Data != "") {
					t.Fatalf("bad line %+v in %q", l, r.Raw)
				}
				if !strings.Contains(r.Raw, l.Text) {
					t.Fatalf("line text %q not in the raw reply %q", l.Text, r.Raw)
				}
			}
			if !strings.HasSuffix(r.Raw, "\n") {
				t.Fatalf("raw reply %q does not end in a line end", r.Raw)
			}
		}
		// The raw replies, concatenated, are exactly the bytes consumed:
		// all of the input when there was no error.
		if !bytes.HasPrefix(data, consumed) {
			t.Fatalf("raw replies %q are not a prefix of the input %q", consumed, data)
		}
		if err == nil && !bytes.Equal(consumed, data) {
			t.Fatalf("no error, but only %d of %d bytes in replies", len(consumed), len(data))
		}
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) && err != io.ErrUnexpectedEOF {
				t.Fatalf("error %T %v is neither a ProtocolError nor ErrUnexpectedEOF", err, err)
			}
		}
		// Read with every data block "big" (unstuffed as it is read, no
		// Raw kept), the replies are the same, and their rebuilt text
		// reads back to them.
		small := fuzzLimits
		small.BigData = 4
		bigs, err2 := ParseReplies(data, small)
		if (err == nil) != (err2 == nil) || len(bigs) != len(replies) {
			t.Fatalf("with small data blocks: %d replies, error %v; want %d, %v", len(bigs), err2, len(replies), err)
		}
		for i, r := range bigs {
			if !reflect.DeepEqual(r.Lines, replies[i].Lines) {
				t.Fatalf("with small data blocks: %+v, want %+v", r.Lines, replies[i].Lines)
			}
			back, err := ParseReplies([]byte(r.String()), Limits{})
			if err != nil || len(back) != 1 || !reflect.DeepEqual(back[0].Lines, r.Lines) {
				t.Fatalf("the text %q rebuilt of %+v reads as %+v, %v", r.String(), r.Lines, back, err)
			}
		}
	})
}

func FuzzUnquote(f *testing.F) {
	for _, s := range []string{
		``, `"`, `""`, `"abc" rest`, `"a\"b"`, `"a\\b"`, `"\n\t\r"`, `"\0\07\377\400"`, `"\x"`, `"unterminated`, `"ends in \`,
		"plain", `\n`, `back\slash`, "tab\there", "a\"b", "nul\x00byte", "crlf\r\n", "\xff\xfe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, rest, err := Unquote(s)
		if err == nil {
			if s == "" || s[0] != '"' || !strings.HasSuffix(s, rest) || len(rest) >= len(s)-1 {
				t.Fatalf("Unquote(%q) = %q, %q: rest is not what follows the closing quote", s, v, rest)
			}
			if len(v) > len(s) {
				t.Fatalf("Unquote(%q) = %q: longer than its input", s, v)
			}
		} else if rest != s {
			t.Fatalf("Unquote(%q) failed (%v) but consumed input: rest %q", s, err, rest)
		}
		// Quote escapes exactly backslash and double quote, and Unquote
		// reads a backslash before anything but n, t, r or a digit as that
		// character; a backslash Quote writes is always followed by one of
		// the two, so the round trip is exact for every s, escapes, CR, LF
		// and NUL included.
		q := Quote(s)
		v2, rest2, err := Unquote(q + " tail")
		if err != nil || v2 != s || rest2 != " tail" {
			t.Fatalf("Unquote(Quote(%q) + tail) = %q, %q, %v", s, v2, rest2, err)
		}
		// And as an argument.
		a := NewArgs("K=" + q + " NEXT")
		kv, ok := a.Next()
		if !ok || kv.Key != "K" || kv.Value != s || !kv.HasValue {
			t.Fatalf("Args on K=%s: %+v, %v, %v", q, kv, ok, a.Err())
		}
		if kv, ok := a.Next(); !ok || kv.Key != "NEXT" {
			t.Fatalf("Args after K=%s: %+v, %v", q, kv, ok)
		}
	})
}

func FuzzParseEvent(f *testing.F) {
	for _, s := range fuzzEventSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		replies, _ := ParseReplies(data, fuzzLimits)
		for _, r := range replies {
			ev := ParseEvent(r)
			fuzzCheckEvent(t, r, ev)
		}
	})
}

// fuzzCheckEvent checks what must hold of any event ParseEvent returns.
func fuzzCheckEvent(t *testing.T, r *Reply, ev Event) {
	t.Helper()
	if ev == nil {
		t.Fatalf("ParseEvent(%q) = nil", r.Raw)
	}
	if got := ev.Reply(); got == nil || got.Raw != r.Raw || !reflect.DeepEqual(got.Lines, r.Lines) {
		t.Fatalf("ParseEvent(%q): Reply() is not the reply parsed", r.Raw)
	}
	if typ, _, _ := strings.Cut(r.Lines[0].Text, " "); ev.EventType() != typ {
		t.Fatalf("ParseEvent(%q): EventType() = %q, want %q", r.Raw, ev.EventType(), typ)
	}
	if u, ok := ev.(*UnknownEvent); ok && errors.Is(u.ParseErr, errParserPanic) {
		t.Fatalf("ParseEvent(%q) panicked: %v", r.Raw, u.ParseErr)
	}
	// Parsing is deterministic.
	if again := ParseEvent(r); !reflect.DeepEqual(again, ev) {
		t.Fatalf("ParseEvent(%q) differs on a second call", r.Raw)
	}
	// The reader can give it a Reply of its own (keepReply).
	if _, ok := ev.(interface{ base() *Base }); !ok {
		t.Fatalf("ParseEvent(%q): %T does not embed Base", r.Raw, ev)
	}
	// Deferred, it parses to the same event, and its CIRC head agrees.
	checkDeferred(t, r, ev)
	// The CLI prints events as JSON: every event must marshal.
	if _, err := json.Marshal(ev); err != nil {
		t.Fatalf("ParseEvent(%q): json.Marshal: %v", r.Raw, err)
	}
	switch e := ev.(type) {
	case *StreamEvent:
		host, port, ok := splitTarget(e.Target)
		if !ok || host != e.TargetHost || port != e.TargetPort || !isID(e.ID) || !isID(e.CircuitID) {
			t.Fatalf("ParseEvent(%q): bad stream %+v", r.Raw, e.Stream)
		}
	case *CircEvent:
		fuzzCheckPath(t, r, e.Path)
	case *CircMinorEvent:
		fuzzCheckPath(t, r, e.Path)
	case *NSEvent:
		fuzzCheckStatuses(t, e.Relays)
	case *NewConsensusEvent:
		fuzzCheckStatuses(t, e.Relays)
	}
}

func fuzzCheckPath(t *testing.T, r *Reply, path []PathHop) {
	t.Helper()
	for _, h := range path {
		if h.Fingerprint == "" && h.Nickname == "" || h.Fingerprint != "" && (len(h.Fingerprint) != 40 || !isHex(h.Fingerprint)) {
			t.Fatalf("ParseEvent(%q): bad hop %+v", r.Raw, h)
		}
		if back, err := ParseServerSpec(h.String()); err != nil || back != h {
			t.Fatalf("hop %+v: String %q reads back as %+v, %v", h, h.String(), back, err)
		}
	}
}

func fuzzCheckStatuses(t *testing.T, rs []RouterStatus) {
	t.Helper()
	for i := range rs {
		s := &rs[i]
		if s.Fingerprint != hexUpper(&s.Identity) || !isNickname(s.Nickname) || s.ORPort < 0 || s.ORPort > 65535 || s.DirPort < 0 || s.DirPort > 65535 {
			t.Fatalf("bad router status %+v", s)
		}
		if s.Digest != "" && (len(s.Digest) != 40 || !isHex(s.Digest)) {
			t.Fatalf("bad digest %+v", s)
		}
		for _, p := range s.ExitPolicy.Ports {
			if p.Lo > p.Hi || p.Lo < 0 || p.Hi > 65535 {
				t.Fatalf("bad port range %+v", s.ExitPolicy)
			}
		}
		if s.ExitPolicy.Ports != nil {
			if back, err := ParsePolicySummary(s.ExitPolicy.String()); err != nil || !reflect.DeepEqual(back, s.ExitPolicy) {
				t.Fatalf("policy %+v: String %q reads back as %+v, %v", s.ExitPolicy, s.ExitPolicy.String(), back, err)
			}
		}
	}
}

func FuzzRouterStatus(f *testing.F) {
	f.Add(rsSample)
	f.Add(nsAll(3))
	if data, err := os.ReadFile("testdata/tor-0.4.9/getinfo-ns-all.txt"); err == nil {
		f.Add(string(data))
	}
	f.Add("r moria1 lpXfw1/+uGEym58asExGOXAgzjE 2038-01-01 00:00:00 128.31.0.39 9201 0\nm 5sVRKUu9h2uNH3z8vRtOwMGkrSE/Bpo8uGcRNHb3KTU\ns Running\n")
	f.Add("r x lpXfw1/+uGEym58asExGOXAgzjE= 7hdWDIt3OFtbuNhoeCD5uC8/3N8= 2026-11-21 23:12:01 1.2.3.4 1 2\ns\nw Bandwidth=x\np allow 80\nzz\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseRouterStatuses(s)
		if rs == nil {
			t.Fatal("nil slice")
		}
		if err == nil && strings.Count(s, "\nr ")+b2i(strings.HasPrefix(s, "r ")) < len(rs) {
			t.Fatalf("%d entries from %d r lines", len(rs), strings.Count(s, "\nr "))
		}
		fuzzCheckStatuses(t, rs)
		// The same document as an NS event gives the same entries, or an
		// UnknownEvent when it has a malformed entry.
		var b bytes.Buffer
		b.WriteString("650+NS\r\n")
		stuff(&b, s)
		b.WriteString("650 OK\r\n")
		replies, perr := ParseReplies(b.Bytes(), Limits{})
		if perr != nil || len(replies) != 1 {
			return // s held something no data block can carry, such as a lone CR
		}
		ev := ParseEvent(replies[0])
		fuzzCheckEvent(t, replies[0], ev)
	})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
