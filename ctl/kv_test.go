package ctl

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestArgsWordsThenKeywords(t *testing.T) {
	a := NewArgs(`  25 NEW  0 "quoted word" 127.0.0.1:8080 SOURCE_ADDR=127.0.0.1:41234 EMPTY= QUOTED="a \"b\" \\c\n" FLAG $` + evFPA + `=nick X=="y"  `)
	for _, want := range []string{"25", "NEW", "0", "quoted word", "127.0.0.1:8080"} {
		if a.AtKeyword() {
			t.Fatalf("AtKeyword before %q", want)
		}
		w, ok := a.Word()
		if !ok || w != want {
			t.Fatalf("Word() = %q, %v; want %q", w, ok, want)
		}
	}
	if !a.AtKeyword() {
		t.Fatal("AtKeyword() = false before SOURCE_ADDR=")
	}
	var got []KeyValue
	for a.More() {
		kv, ok := a.Next()
		if !ok {
			t.Fatalf("Next failed: %v", a.Err())
		}
		got = append(got, kv)
	}
	want := []KeyValue{
		{Key: "SOURCE_ADDR", Value: "127.0.0.1:41234", HasValue: true},
		{Key: "EMPTY", Value: "", HasValue: true},
		{Key: "QUOTED", Value: "a \"b\" \\c\n", HasValue: true},
		{Key: "FLAG"},
		{Key: "$" + evFPA, Value: "nick", HasValue: true},
		{Key: "X", Value: `="y"`, HasValue: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if _, ok := a.Next(); ok || a.Err() != nil {
		t.Errorf("Next at the end: %v, %v", ok, a.Err())
	}
	if _, ok := a.Word(); ok {
		t.Error("Word at the end: ok")
	}
}

func TestArgsMalformedQuote(t *testing.T) {
	for _, in := range []string{`K="abc`, `"abc`, `K="abc"def`, `K="a\`, `"a"b`} {
		a := NewArgs(in + " NEXT=1")
		var n int
		for {
			if _, ok := a.Next(); !ok {
				break
			}
			n++
		}
		if a.Err() == nil {
			t.Errorf("%q: no error", in)
		}
		if a.More() {
			t.Errorf("%q: More() after an error", in)
		}
	}
}

func TestArgsAtKeyword(t *testing.T) {
	for in, want := range map[string]bool{
		"PURPOSE=GENERAL": true, "  a_1=": true, "=x": false, "$ABC=nick": false, "moria1,moria2": false,
		"word": false, `"K=v"`: false, "": false, "K-1=v": false,
	} {
		a := NewArgs(in)
		if got := a.AtKeyword(); got != want {
			t.Errorf("AtKeyword(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestArgsRest(t *testing.T) {
	a := NewArgs("NOTICE  the rest  of it ")
	a.Word()
	if r := a.Rest(); r != "the rest  of it " {
		t.Errorf("Rest() = %q", r)
	}
	if a.More() {
		t.Error("More() after Rest")
	}
}

func TestParseKeyValues(t *testing.T) {
	got, err := ParseKeyValues(`A=1 B="two words" C`)
	if err != nil || !reflect.DeepEqual(got, kvs("A=1", "B=two words", "C")) {
		t.Errorf("got %+v, %v", got, err)
	}
	if v, ok := Lookup(got, "B"); !ok || v != "two words" {
		t.Errorf("Lookup(B) = %q, %v", v, ok)
	}
	if _, ok := Lookup(got, "C"); ok {
		t.Error("Lookup of a key without a value: ok")
	}
	if _, err := ParseKeyValues(`A="x`); err == nil {
		t.Error("unterminated quote: no error")
	}
	for _, kv := range got {
		back, err := ParseKeyValues(kv.String())
		if err != nil || len(back) != 1 || back[0] != kv {
			t.Errorf("%+v.String() = %q reads back as %+v, %v", kv, kv.String(), back, err)
		}
	}
}

func TestLineKeyValue(t *testing.T) {
	for _, tc := range []struct {
		l    Line
		want KeyValue
	}{
		{Line{Sep: '-', Text: "EXTRAMAGIC=99"}, KeyValue{"EXTRAMAGIC", "99", true}},
		{Line{Sep: ' ', Text: "ANONYMITY=high"}, KeyValue{"ANONYMITY", "high", true}},
		{Line{Sep: '-', Text: "K=several words here"}, KeyValue{"K", "several words here", true}},
		{Line{Sep: '-', Text: `K="quoted \"value\""`}, KeyValue{"K", `quoted "value"`, true}},
		{Line{Sep: '-', Text: `K="two" "quoted"`}, KeyValue{"K", `"two" "quoted"`, true}},
		{Line{Sep: '-', Text: "FLAG"}, KeyValue{"FLAG", "", false}},
		{Line{Sep: '+', Text: "DATA=", Data: "a\nb"}, KeyValue{"DATA", "a\nb", true}},
	} {
		if got := lineKeyValue(&tc.l); got != tc.want {
			t.Errorf("lineKeyValue(%+v) = %+v, want %+v", tc.l, got, tc.want)
		}
	}
}

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		sep  byte
		want time.Time
	}{
		{"2012-01-11 12:15:33", ' ', time.Date(2012, 1, 11, 12, 15, 33, 0, time.UTC)},
		{"2012-01-11T12:15:33", 'T', time.Date(2012, 1, 11, 12, 15, 33, 0, time.UTC)},
		{"2012-01-11T12:15:33.51", 'T', time.Date(2012, 1, 11, 12, 15, 33, 510000000, time.UTC)},
		{"2026-11-22T04:15:38.123456", 'T', time.Date(2026, 11, 22, 4, 15, 38, 123456000, time.UTC)},
		{"2026-11-22T04:15:38.1234567891234", 'T', time.Date(2026, 11, 22, 4, 15, 38, 123456789, time.UTC)},
		{"2024-02-29T23:59:59", 'T', time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC)},
		{"2000-02-29T00:00:00", 'T', time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"0000-01-01T00:00:00", 'T', time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"9999-12-31T23:59:59", 'T', time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
	} {
		got, ok := parseTime(tc.in, tc.sep, time.UTC)
		if !ok || !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("parseTime(%q) = %v, %v; want %v", tc.in, got, ok, tc.want)
		}
	}
	for _, bad := range []string{
		"", "2012-01-11", "2012-01-11 12:15:33", "2012-01-11T12:15", "2012-1-11T12:15:33", "2012-01-11T12:15:33.", "2012-01-11T12:15:33.5x",
		"2012-01-11T12:15:33Z", "2012-13-11T12:15:33", "2012-00-11T12:15:33", "2012-01-32T12:15:33", "2023-02-29T12:15:33",
		"1900-02-29T12:15:33", "2012-01-11T24:00:00", "2012-01-11T12:60:00", "2012-01-11T12:00:61", "2012-04-31T00:00:00",
		"20x2-01-11T12:15:33", "2012-01-11T1a:15:33", "+012-01-11T12:15:33",
	} {
		if got, ok := parseTime(bad, 'T', time.UTC); ok {
			t.Errorf("parseTime(%q) = %v, want failure", bad, got)
		}
	}
	// In time.Local, for ADDRMAP's Expiry.
	got, ok := parseTime("2026-11-22 05:00:00", ' ', time.Local)
	if want := time.Date(2026, 11, 22, 5, 0, 0, 0, time.Local); !ok || !got.Equal(want) {
		t.Errorf("local: %v, want %v", got, want)
	}
}

// TestDaysFromCivil compares the fast UTC path with time.Date over the whole
// range of four-digit years.
func TestDaysFromCivil(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 100000; i++ {
		y, m := r.IntN(10000), 1+r.IntN(12)
		d := 1 + r.IntN(daysIn(m, y))
		want := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC).Unix() / 86400 // exact: midnight
		if got := daysFromCivil(y, m, d); got != want {
			t.Fatalf("daysFromCivil(%d, %d, %d) = %d, want %d", y, m, d, got, want)
		}
	}
}

func TestParseNumbers(t *testing.T) {
	for s, want := range map[string]int64{"0": 0, "7": 7, "9223372036854775807": 1<<63 - 1, "0042": 42} {
		if got, ok := parseUint(s); !ok || got != want {
			t.Errorf("parseUint(%q) = %d, %v", s, got, ok)
		}
	}
	for _, bad := range []string{"", "-1", "+1", "1.5", "9223372036854775808", "99999999999999999999", "1 ", "x"} {
		if got, ok := parseUint(bad); ok {
			t.Errorf("parseUint(%q) = %d, want failure", bad, got)
		}
	}
	for s, want := range map[string]int64{"-2": -2, "+3": 3, "0": 0, "-9223372036854775807": -(1<<63 - 1)} {
		if got, ok := parseInt(s); !ok || got != want {
			t.Errorf("parseInt(%q) = %d, %v", s, got, ok)
		}
	}
	for _, bad := range []string{"-", "+", "--1", ""} {
		if got, ok := parseInt(bad); ok {
			t.Errorf("parseInt(%q) = %d, want failure", bad, got)
		}
	}
	for s, want := range map[string]int{"0": 0, "65535": 65535, "443": 443} {
		if got, ok := parsePort(s); !ok || got != want {
			t.Errorf("parsePort(%q) = %d, %v", s, got, ok)
		}
	}
	for _, bad := range []string{"65536", "-1", "", "000443", "http"} {
		if got, ok := parsePort(bad); ok {
			t.Errorf("parsePort(%q) = %d, want failure", bad, got)
		}
	}
}

func TestParseCounts(t *testing.T) {
	got, ok := parseCounts("us=16,de=8,??=0", '=')
	if !ok || !reflect.DeepEqual(got, []Count{{"us", 16}, {"de", 8}, {"??", 0}}) {
		t.Errorf("got %v, %v", got, ok)
	}
	if got, ok := parseCounts("", ':'); !ok || got != nil {
		t.Errorf("empty: %v, %v", got, ok)
	}
	for _, bad := range []string{"us", "us=x", "us=1,", ",us=1", "us=1,de", "a=-1", "relay:1"} {
		if got, ok := parseCounts(bad, '='); ok {
			t.Errorf("parseCounts(%q) = %v, want failure", bad, got)
		}
	}
}

func TestSplitList(t *testing.T) {
	if got := splitList("a,b,,c"); !reflect.DeepEqual(got, []string{"a", "b", "", "c"}) {
		t.Errorf("got %q", got)
	}
	if got := splitList(""); got != nil {
		t.Errorf("splitList(\"\") = %q", got)
	}
	if got := splitWords(" a  b c "); !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Errorf("splitWords = %q", got)
	}
}

// refNext is Args.next as it read arguments before it scanned a keyword
// in one pass: the token up to the first space, then its first "=".
func refNext(a *Args, kv *KeyValue) bool {
	a.skipSpace()
	switch {
	case a.err != nil || a.s == "":
		return false
	case a.s[0] == '"': // a quoted word
		w, ok := a.quoted()
		*kv = KeyValue{Key: w}
		return ok
	}
	tok, rest, _ := strings.Cut(a.s, " ")
	key, val, hasEq := strings.Cut(tok, "=")
	if hasEq && strings.HasPrefix(val, `"`) {
		a.s = a.s[len(key)+1:]
		v, ok := a.quoted()
		*kv = KeyValue{Key: key, Value: v, HasValue: true}
		return ok
	}
	a.s = rest
	*kv = KeyValue{Key: key, Value: val, HasValue: hasEq}
	return true
}

// FuzzArgsNext: Args.next reads every text as refNext does, argument by
// argument, error included.
func FuzzArgsNext(f *testing.F) {
	for _, s := range []string{
		`PURPOSE=GENERAL TIME_CREATED=2026-12-06T08:00:00.000000`,
		`$AAAA~a,$BBBB~b BUILD_FLAGS=NEED_CAPACITY REASON="a b" x = =y "q" K="" K= K`,
		`A="x\"y" B="unterminated`, `  lead  trail  `, `K="v"x`, `=`, `a=b=c`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, b := NewArgs(s), NewArgs(s)
		for i := 0; ; i++ {
			var x, y KeyValue
			okA, okB := a.next(&x), refNext(&b, &y)
			if okA != okB || x != y || a.s != b.s || (a.err == nil) != (b.err == nil) {
				t.Fatalf("%q, argument %d: next = %v %+v rest %q err %v; before: %v %+v rest %q err %v", s, i, okA, x, a.s, a.err, okB, y, b.s, b.err)
			}
			if !okA {
				return
			}
		}
	})
}
