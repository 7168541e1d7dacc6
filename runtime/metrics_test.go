package runtime

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetrics: with Options.Metrics the runtime counts the policy's
// decisions (on_error's too), the events it read, the streams that ended
// by reason and the failed policy calls, and the script's own metrics
// (tor.metrics) are in the same registry under torscript_script_.
func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, "127.0.0.1:9051")
	if err != nil {
		t.Fatal(err)
	}
	src := `
seen = tor.metrics.counter("seen", "streams seen", labels = ["host"])
held = tor.metrics.gauge("held", "a gauge")
took = tor.metrics.histogram("took", "a histogram", buckets = [1, 2])
def policy(s):
    seen.inc(host = s.target_host)
    held.set(4)
    held.dec()
    took.observe(1.5)
    if s.target_host == "example.org":
        fail("boom")
    return "5"
tor.policy(policy)
`
	f, r := startWithCircuits(t, circ5Built, src, Options{Metrics: m})
	r.waitLog("policy started")
	f.Event(stream7New)
	f.Event(stream8New) // the policy fails: on_error
	f.Event("STREAM 7 SUCCEEDED 5 example.com:80")
	f.Event("STREAM 7 CLOSED 5 example.com:80 REASON=DONE")
	f.Event("STREAM 8 CLOSED 0 example.org:443 REASON=END REMOTE_REASON=EXITPOLICY")
	r.waitLog("policy failed")
	// Every event read before the run ends: stopping does not wait for
	// what is still in the socket.
	waitUntil(t, 5*time.Second, "the five STREAM events counted", func() bool {
		return metricValue(t, reg, "torscript_events_total", "type", "STREAM") == 5
	})
	code, err := r.stop()
	checkExit(t, r, code, err, 0)

	for _, c := range []struct {
		name   string
		labels []string // name, value, ...
		want   float64
	}{
		{"torscript_policy_decisions_total", []string{"action", "attach"}, 1},
		{"torscript_policy_decisions_total", []string{"action", "tor"}, 1},
		{"torscript_policy_on_error_total", nil, 1},
		{"torscript_handler_failures_total", []string{"kind", "policy"}, 1},
		{"torscript_stream_endings_total", []string{"status", "CLOSED", "reason", "DONE", "remote_reason", ""}, 1},
		{"torscript_stream_endings_total", []string{"reason", "END", "remote_reason", "EXITPOLICY"}, 1},
		{"torscript_events_total", []string{"type", "STREAM"}, 5},
		{"torscript_stream_success_delay_seconds", nil, 1}, // observations: stream 7
		{"torscript_script_seen", []string{"host", "example.com"}, 1},
		{"torscript_script_seen", []string{"host", "example.org"}, 1},
		{"torscript_script_held", nil, 3},
		{"torscript_script_took", nil, 2},                  // observations
		{"torscript_policy_call_duration_seconds", nil, 2}, // observations
		{"torscript_stream_attach_delay_seconds", nil, 2},  // the attach and on_error's
	} {
		if got := metricValue(t, reg, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Every series says which tor it is about.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			found := false
			for _, l := range metric.GetLabel() {
				found = found || l.GetName() == "tor_instance" && l.GetValue() == "127.0.0.1:9051"
			}
			if !found {
				t.Errorf("%s has no tor_instance label", mf.GetName())
			}
		}
		if strings.HasPrefix(mf.GetName(), "torscript_script_") && !strings.Contains("torscript_script_seen torscript_script_held torscript_script_took", mf.GetName()) {
			t.Errorf("unexpected script metric %s", mf.GetName())
		}
	}
}

// metricValue sums the series of the metric name in reg whose labels
// include the pairs given: counters and gauges by value, histograms by
// their count of observations.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}
				if !found && labels[i+1] != "" {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

// TestScriptMetricsAgain: a metric made again with the same kind and
// labels is the same one (a reloaded script goes on counting); another
// kind or other labels under its name, a bad name, help or label is an
// error that names the fault. Without Options.Metrics a script's metrics
// work all the same.
func TestScriptMetricsAgain(t *testing.T) {
	t.Parallel()
	const made = "a = tor.metrics.counter(\"n\", \"a counter\", labels = [\"k\"])\n"
	out, code, err := runFile(t, "x.star", made+`b = tor.metrics.counter("n", "a counter", labels = ["k"])
a.inc(k = "x")
b.inc(2, k = "x")
print(a, b.name)
`, Options{})
	if code != 0 || err != nil || out != "<counter n{k}> n\n" {
		t.Fatalf("Run = %d, %v, %q", code, err, out)
	}
	for src, want := range map[string]string{
		`tor.metrics.gauge("n", "a gauge", labels = ["k"])`:     "torscript_script_n is a counter with labels [k] already",
		`tor.metrics.counter("n", "a counter", labels = ["j"])`: "torscript_script_n is a counter with labels [k] already",
		`tor.metrics.counter("2x", "h")`:                        `name "2x": want letters`,
		`tor.metrics.counter("x", "")`:                          "help: say what x counts",
		`tor.metrics.counter("x", "h", labels = ["le"])`:        "label \"le\": want a name",
		`a.inc(j = "x")`:     `n has no label "j" (its labels: k)`,
		`a.inc()`:            "give the label(s) k",
		`a.inc(-1, k = "x")`: "a counter only goes up",
		`tor.metrics.histogram("h", "h", buckets = [2, 1])`: "buckets: want increasing numbers",
	} {
		_, code, err := runFile(t, "x.star", made+src+"\n", Options{})
		if code != 1 || err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: Run = %d, %v; want an error with %q", src, code, err, want)
		}
	}
}
