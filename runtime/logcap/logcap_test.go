package logcap

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func newTest() (*Handler, *bytes.Buffer, *time.Time) {
	var buf bytes.Buffer
	h := New(slog.NewTextHandler(&buf, nil))
	now := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	h.st.now = func() time.Time { return now }
	return h, &buf, &now
}

// TestRepeatsCoalesced: a timer failing every millisecond for 12 s writes
// a few lines a window and the count of what it left out, not 12,000
// lines.
func TestRepeatsCoalesced(t *testing.T) {
	h, buf, now := newTest()
	log := slog.New(h)
	for i := 0; i < 12000; i++ {
		log.Error("timer failed", "fn", "tick", "err", errors.New("boom"))
		*now = now.Add(time.Millisecond)
	}
	log.Info("something else")
	h.Flush()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	// 12 s: three windows, each PerWindow records and one count.
	if len(lines) > 3*(PerWindow+1)+1 {
		t.Fatalf("%d lines, want a few:\n%s", len(lines), buf.String())
	}
	var repeated int
	for _, l := range lines {
		if strings.Contains(l, "repeated") {
			var n int
			i := strings.Index(l, "(repeated ")
			if _, err := fmtSscan(l[i+len("(repeated "):], &n); err == nil {
				repeated += n
			}
		}
	}
	// Every record is printed or counted.
	printed := strings.Count(buf.String(), `msg="timer failed" `) + strings.Count(buf.String(), `msg="timer failed (repeated`)
	if repeated+strings.Count(buf.String(), `msg="timer failed" `) != 12000 {
		t.Errorf("printed %d, counted %d repeats; want 12000 in all:\n%s", printed, repeated, buf.String())
	}
}

// TestValuesCut: a long value is cut to MaxValue or so.
func TestValuesCut(t *testing.T) {
	h, buf, _ := newTest()
	slog.New(h).Error("policy failed", "err", strings.Repeat("x", 1<<20))
	if n := buf.Len(); n > MaxValue+200 {
		t.Errorf("%d bytes logged for a 1 MiB value", n)
	}
	if !strings.Contains(buf.String(), "bytes left out") {
		t.Errorf("no mark of the cut: %.200s", buf.String())
	}
}

// TestBudget: distinct records past the minute's budget are dropped and
// counted, and the next minute says how many.
func TestBudget(t *testing.T) {
	h, buf, now := newTest()
	log := slog.New(h)
	for i := 0; i < 20000; i++ {
		log.Error("failed", "err", errors.New(strings.Repeat("y", 100)+string(rune('a'+i%26))+strings.Repeat("z", i%1000)))
		*now = now.Add(time.Millisecond) // 20 s
	}
	if n := buf.Len(); n > Budget+Budget/4 {
		t.Errorf("%d bytes in a minute, budget %d", n, Budget)
	}
	*now = now.Add(time.Minute)
	log.Info("later")
	if !strings.Contains(buf.String(), "records left out in the last minute") {
		t.Errorf("no count of the records left out")
	}
}

func fmtSscan(s string, n *int) (int, error) { return fmt.Sscan(s, n) }
