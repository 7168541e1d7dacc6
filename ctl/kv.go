package ctl

import (
	"errors"
	"strings"
	"time"
)

// KeyValue is one argument of an event or of a GETINFO line: KEYWORD=value,
// or a bare word, which has a Key and no value.
type KeyValue struct {
	Key   string
	Value string // unquoted when the argument was a QuotedString
	// HasValue reports that "=" followed Key: it tells "KEY=" (an empty
	// value) apart from "KEY" (no value).
	HasValue bool
}

// String writes kv back as an argument: Key, or Key=Value with the value
// quoted when it is empty or holds a space, quote or backslash.
func (kv KeyValue) String() string {
	if !kv.HasValue {
		return kv.Key
	}
	return kv.Key + "=" + QuoteIfNeeded(kv.Value)
}

// Lookup returns the value of the first argument named key.
func Lookup(kvs []KeyValue, key string) (value string, ok bool) {
	for i := range kvs {
		if kvs[i].Key == key && kvs[i].HasValue {
			return kvs[i].Value, true
		}
	}
	return "", false
}

// Args reads the arguments of an event or GETINFO line: positional words
// first, then KEYWORD=value arguments whose value is a bare word or a
// QuotedString (control-spec 4.1). Runs of spaces separate arguments.
//
// Words and values are substrings of the text given to NewArgs unless they
// were QuotedStrings with escapes, so reading allocates nothing. The first
// malformed QuotedString stops the reader: every later call reports the end
// of the text, and Err says why.
type Args struct {
	s   string
	err error
}

// NewArgs returns a reader of the arguments in s.
func NewArgs(s string) Args { return Args{s: s} }

// Err is the error that stopped the reader, if any.
func (a *Args) Err() error { return a.err }

// More reports whether any argument is left.
func (a *Args) More() bool {
	a.skipSpace()
	return a.err == nil && a.s != ""
}

// Rest returns the unread text without its leading spaces, and consumes it.
func (a *Args) Rest() string {
	a.skipSpace()
	s := a.s
	a.s = ""
	return s
}

// AtKeyword reports whether the next argument has the form KEYWORD=...
// with KEYWORD made of letters, digits and '_'.
func (a *Args) AtKeyword() bool {
	a.skipSpace()
	if a.err != nil {
		return false
	}
	s := a.s
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '=' {
			return i > 0
		}
		if !isKeyChar(c) {
			return false
		}
	}
	return false
}

func isKeyChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_'
}

func (a *Args) skipSpace() {
	if len(a.s) == 0 || a.s[0] != ' ' {
		return
	}
	i := 1
	for i < len(a.s) && a.s[i] == ' ' {
		i++
	}
	a.s = a.s[i:]
}

// Word returns the next argument as a positional word: the text up to the
// next space, or the value of a QuotedString. It returns false at the end of
// the text or on a malformed QuotedString.
func (a *Args) Word() (string, bool) {
	a.skipSpace()
	if a.err != nil || a.s == "" {
		return "", false
	}
	s := a.s
	if s[0] == '"' {
		return a.quoted()
	}
	i := strings.IndexByte(s, ' ')
	if i < 0 {
		a.s = ""
		return s, true
	}
	a.s = s[i+1:]
	return s[:i], true
}

// Next returns the next argument as a KeyValue: KEYWORD=value or
// KEYWORD="quoted value", or a positional word with no value. It returns
// false at the end of the text or on a malformed QuotedString.
func (a *Args) Next() (KeyValue, bool) {
	var kv KeyValue
	ok := a.next(&kv)
	return kv, ok
}

// next is Next storing into *kv, which compiles to faster code in loops.
func (a *Args) next(kv *KeyValue) bool {
	a.skipSpace()
	if a.err != nil || a.s == "" {
		return false
	}
	s := a.s
	if s[0] == '"' {
		w, ok := a.quoted()
		*kv = KeyValue{Key: w}
		return ok
	}
	// Keywords are short and values can be long (a circuit's path): the
	// key is scanned byte by byte for "=" or a space, the value by
	// IndexByte.
	eq := 0
	for eq < len(s) && s[eq] != '=' && s[eq] != ' ' {
		eq++
	}
	if eq == len(s) || s[eq] == ' ' {
		*kv = KeyValue{Key: s[:eq]}
		a.s = ""
		if eq < len(s) {
			a.s = s[eq+1:]
		}
		return true
	}
	kv.Key, kv.HasValue = s[:eq], true
	v := s[eq+1:]
	if v != "" && v[0] == '"' {
		a.s = v
		v, ok := a.quoted()
		kv.Value = v
		return ok
	}
	if i := strings.IndexByte(v, ' '); i >= 0 {
		kv.Value, a.s = v[:i], v[i+1:]
		return true
	}
	kv.Value, a.s = v, ""
	return true
}

var errAfterQuote = errors.New("quoted string: followed by text without a space")

func (a *Args) quoted() (string, bool) {
	v, rest, err := Unquote(a.s)
	if err == nil && rest != "" && rest[0] != ' ' {
		err = errAfterQuote
	}
	if err != nil {
		a.err = err
		a.s = ""
		return "", false
	}
	if rest != "" {
		rest = rest[1:]
	}
	a.s = rest
	return v, true
}

// ParseKeyValues reads every argument of s.
func ParseKeyValues(s string) ([]KeyValue, error) {
	a := NewArgs(s)
	var out []KeyValue
	for {
		kv, ok := a.Next()
		if !ok {
			return out, a.Err()
		}
		out = append(out, kv)
	}
}

// lineKeyValue reads an additional line of an event (control-spec 4.1:
// KEYWORD ["=" ARGUMENTS]): everything after the first "=" is the value,
// unquoted if it is one QuotedString; a data line's value is its data.
func lineKeyValue(l *Line) KeyValue {
	k, v, ok := strings.Cut(l.Text, "=")
	kv := KeyValue{Key: k, Value: v, HasValue: ok}
	if l.Sep == '+' {
		kv.Value, kv.HasValue = l.Data, true
		return kv
	}
	if len(v) > 1 && v[0] == '"' {
		if u, rest, err := Unquote(v); err == nil && rest == "" {
			kv.Value = u
		}
	}
	return kv
}

// extraLines returns the lines of an event after its first, without the
// "OK" that ends a multi-line event.
func extraLines(r *Reply) []Line {
	ls := r.Lines[1:]
	if n := len(ls); n > 0 && ls[n-1].Sep == ' ' && ls[n-1].Text == "OK" {
		ls = ls[:n-1]
	}
	return ls
}

// splitList splits a comma-separated list; an empty s gives nil. It
// allocates once.
func splitList(s string) []string { return splitListInto(s, nil) }

// splitListInto is splitList using buf if it has room.
func splitListInto(s string, buf []string) []string {
	if s == "" {
		return nil
	}
	n := strings.Count(s, ",") + 1
	out := buf[:0]
	if n > cap(buf) {
		out = make([]string, 0, n)
	}
	for {
		i := strings.IndexByte(s, ',')
		if i < 0 {
			break
		}
		out = append(out, s[:i])
		s = s[i+1:]
	}
	out = append(out, s)
	return out[:n:n]
}

// Count is one item of a list of named numbers, such as "us=16" in
// CountrySummary or "relay:3" in CELL_STATS.
type Count struct {
	Name string
	N    int64
}

// parseCounts reads "name<sep>number" items separated by commas. An empty s
// gives nil.
func parseCounts(s string, sep byte) ([]Count, bool) {
	if s == "" {
		return nil, true
	}
	out := make([]Count, 0, strings.Count(s, ",")+1)
	for more := true; more; {
		item := s
		if i := strings.IndexByte(s, ','); i >= 0 {
			item, s = s[:i], s[i+1:]
		} else {
			more = false
		}
		j := strings.LastIndexByte(item, sep)
		if j < 0 {
			return nil, false
		}
		n, ok := parseUint(item[j+1:])
		if !ok {
			return nil, false
		}
		out = append(out, Count{Name: item[:j], N: n})
	}
	return out, true
}

// parseUint reads a non-negative decimal integer that fits in an int64.
func parseUint(s string) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i] - '0'
		if c > 9 {
			return 0, false
		}
		n = n*10 + uint64(c)
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
}

// parseInt reads a decimal integer with an optional sign.
func parseInt(s string) (int64, bool) {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		n, ok := parseUint(s[1:])
		if s[0] == '-' {
			n = -n
		}
		return n, ok
	}
	return parseUint(s)
}

// parsePort reads a TCP port, 0 to 65535.
func parsePort(s string) (int, bool) {
	if len(s) > 5 {
		return 0, false
	}
	n, ok := parseUint(s)
	if !ok || n > 65535 {
		return 0, false
	}
	return int(n), true
}

// isID reports whether s is a StreamID, CircuitID or ConnID: 1 to 16
// letters or digits.
func isID(s string) bool { return isAlnumWord(s, 16) }

// parseTime reads an ISOTime ("2012-01-11 12:15:33", sep ' '), an ISOTime2
// or an ISOTime2Frac ("2012-01-11T12:15:33.51", sep 'T') in loc. A fraction
// longer than nanoseconds is truncated.
func parseTime(s string, sep byte, loc *time.Location) (time.Time, bool) {
	if len(s) < 19 || s[10] != sep {
		return time.Time{}, false
	}
	return parseDateTime(s[:10], s[11:], loc)
}

// parseDateTime reads an IsoDatePart and an IsoTimePart with an optional
// fraction.
func parseDateTime(date, clock string, loc *time.Location) (time.Time, bool) {
	if len(date) != 10 || date[4] != '-' || date[7] != '-' || len(clock) < 8 || clock[2] != ':' || clock[5] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(date[0:4])
	month, ok2 := digits(date[5:7])
	day, ok3 := digits(date[8:10])
	hour, ok4 := digits(clock[0:2])
	minute, ok5 := digits(clock[3:5])
	sec, ok6 := digits(clock[6:8])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, false
	}
	nsec := 0
	if frac := clock[8:]; frac != "" {
		if frac[0] != '.' || len(frac) == 1 {
			return time.Time{}, false
		}
		scale := 100000000
		for i := 1; i < len(frac); i++ {
			c := frac[i] - '0'
			if c > 9 {
				return time.Time{}, false
			}
			nsec += int(c) * scale
			scale /= 10
		}
	}
	if loc == time.UTC {
		days := daysFromCivil(year, month, day)
		return time.Unix(days*86400+int64(hour*3600+minute*60+sec), int64(nsec)).UTC(), true
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc), true
}

// daysFromCivil returns the number of days from 1970-01-01 to a date of the
// proleptic Gregorian calendar (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era*146097 + doe - 719468)
}

func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i] - '0'
		if c > 9 {
			return 0, false
		}
		n = n*10 + int(c)
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// parseISOTime2Frac reads a UTC time as tor writes TIME_CREATED and TIME.
func parseISOTime2Frac(s string) (time.Time, bool) { return parseTime(s, 'T', time.UTC) }
