package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Figure is one number a measurement reports, with its target if it has one.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
	// Target, if set, is what the figure must reach: Value <= Max or
	// Value >= Min.
	Max  *float64 `json:"max,omitempty"`
	Min  *float64 `json:"min,omitempty"`
	Pass *bool    `json:"pass,omitempty"`
}

func fig(name string, v float64, unit string) Figure {
	return Figure{Name: name, Value: v, Unit: unit}
}

// atMost gives f the target Value <= m.
func (f Figure) atMost(m float64) Figure {
	f.Max = &m
	ok := f.Value <= m
	f.Pass = &ok
	return f
}

// atLeast gives f the target Value >= m.
func (f Figure) atLeast(m float64) Figure {
	f.Min = &m
	ok := f.Value >= m
	f.Pass = &ok
	return f
}

func (f Figure) value() string { return formatValue(f.Value, f.Unit) }

func (f Figure) target() string {
	switch {
	case f.Max != nil:
		return "≤ " + formatValue(*f.Max, f.Unit)
	case f.Min != nil:
		return "≥ " + formatValue(*f.Min, f.Unit)
	}
	return ""
}

func (f Figure) verdict() string {
	switch {
	case f.Pass == nil:
		return ""
	case *f.Pass:
		return "PASS"
	}
	return "MISS"
}

func formatValue(v float64, unit string) string {
	var s string
	switch {
	case unit == "" || unit == "/s" || unit == "events/s" || unit == "attaches/s":
		if v == math.Trunc(v) || v >= 1000 {
			s = thousands(int64(math.Round(v)))
		} else {
			s = strconv.FormatFloat(v, 'f', 1, 64)
		}
	case unit == "×":
		s = strconv.FormatFloat(v, 'f', 2, 64)
	case v >= 100:
		s = strconv.FormatFloat(v, 'f', 0, 64)
	default:
		s = strconv.FormatFloat(v, 'f', 1, 64)
	}
	if unit == "" {
		return s
	}
	return s + " " + unit
}

// thousands writes n with commas between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// latencies holds durations and answers percentiles.
type latencies []time.Duration

// percentile returns the p-th percentile (0 < p <= 100) by nearest rank:
// the smallest value with at least p% of the values at or below it. l must
// be sorted.
func (l latencies) percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(l))-1e-9)) - 1 // 1e-9: 99.9/100*1000 is 999.0000000000001
	return l[min(max(i, 0), len(l)-1)]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// latencyFigures sorts l and returns its p50, p90, p99, p99.9 and max in
// µs, prefixed with prefix.
func latencyFigures(prefix string, l latencies, pcts ...float64) []Figure {
	slices.Sort(l)
	var out []Figure
	for _, p := range pcts {
		name := "p" + strconv.FormatFloat(p, 'f', -1, 64)
		if p == 100 {
			name = "max"
		}
		out = append(out, fig(prefix+name, us(l.percentile(p)), "µs"))
	}
	return out
}

// withTarget applies target to the figure called name in figs.
func withTarget(figs []Figure, name string, target func(Figure) Figure) []Figure {
	for i := range figs {
		if figs[i].Name == name {
			figs[i] = target(figs[i])
		}
	}
	return figs
}

// Result is what one measurement produced.
type Result struct {
	Name    string   `json:"name"`
	Figures []Figure `json:"figures"`
	Notes   []string `json:"notes,omitempty"`
	Error   string   `json:"error,omitempty"`
	// Log is torscript's output, kept when the measurement failed.
	Log     string  `json:"torscript_output,omitempty"`
	Seconds float64 `json:"seconds"`
}

// note adds a note, once however often it is made.
func (r *Result) note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	if !slices.Contains(r.Notes, n) {
		r.Notes = append(r.Notes, n)
	}
}

// line is the one-line summary printed when the measurement ends.
func (r *Result) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-16s", r.Name)
	if r.Error != "" {
		b.WriteString(" FAILED: " + r.Error)
		return b.String()
	}
	for i, f := range r.Figures {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %s %s", f.Name, f.value())
		if v := f.verdict(); v != "" {
			fmt.Fprintf(&b, " (%s %s)", f.target(), v)
		}
	}
	return b.String()
}
