package runtime

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
)

// Metrics are a runtime's Prometheus metrics, for one tor (the
// tor_instance label): what its policy decided and how fast, how streams
// and circuits ended, the events it read, reconnects and failures. The
// runtime updates them on its loop; a nil *Metrics counts nothing.
type Metrics struct {
	reg      prometheus.Registerer // with the tor_instance label
	instance string

	decisions    *prometheus.CounterVec
	onError      prometheus.Counter
	policyCall   prometheus.Histogram
	attachDelay  prometheus.Histogram
	successDelay prometheus.Histogram
	streamEnds   *prometheus.CounterVec
	circBuild    prometheus.Histogram
	circFailed   *prometheus.CounterVec
	events       *prometheus.CounterVec
	reconnects   prometheus.Counter
	failures     *prometheus.CounterVec
	skipped      prometheus.Counter

	// On the loop goroutine only.
	eventCount map[string]prometheus.Counter
	decided    map[string]prometheus.Counter
	newAt      map[string]time.Time // stream id -> its NEW event
	attached   map[string]bool      // streams whose first attach was timed
	launchedAt map[string]time.Time // circuit id -> its LAUNCHED event

	cur atomic.Pointer[ctl.Conn] // for the queue gauges, read when scraped

	script   sync.Mutex
	scriptMs map[string]*scriptMetric
}

// NewMetrics makes the metrics of the runtime that drives the tor named
// instance (its control address) and registers them with reg.
func NewMetrics(reg prometheus.Registerer, instance string) (*Metrics, error) {
	m := &Metrics{
		reg:        prometheus.WrapRegistererWith(prometheus.Labels{"tor_instance": instance}, reg),
		instance:   instance,
		eventCount: map[string]prometheus.Counter{},
		decided:    map[string]prometheus.Counter{},
		newAt:      map[string]time.Time{},
		attached:   map[string]bool{},
		launchedAt: map[string]time.Time{},
		scriptMs:   map[string]*scriptMetric{},
	}
	fast := prometheus.ExponentialBuckets(0.00001, 4, 10) // 10µs .. 2.6s
	slow := prometheus.ExponentialBuckets(0.01, 2, 12)    // 10ms .. 20s
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "torscript_policy_decisions_total",
		Help: "Stream policy decisions, by action: attach (a circuit of the policy's), tor (tor chooses), close, redirect, hold."}, []string{"action"})
	m.onError = prometheus.NewCounter(prometheus.CounterOpts{Name: "torscript_policy_on_error_total",
		Help: "Streams the policy's on_error decided: the policy failed, timed out or chose what could not be done."})
	m.policyCall = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "torscript_policy_call_duration_seconds",
		Help: "Wall time of one call of the stream policy.", Buckets: fast})
	m.attachDelay = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "torscript_stream_attach_delay_seconds",
		Help: "From a stream's NEW event to the ATTACHSTREAM (or CLOSESTREAM) that decides it.", Buckets: fast})
	m.successDelay = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "torscript_stream_success_delay_seconds",
		Help: "From a stream's NEW event to its SUCCEEDED event.", Buckets: slow})
	m.streamEnds = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "torscript_stream_endings_total",
		Help: "Streams that ended (CLOSED or FAILED), by status, tor's REASON and the exit's REMOTE_REASON (closing-streams.md)."}, []string{"status", "reason", "remote_reason"})
	m.circBuild = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "torscript_circuit_build_duration_seconds",
		Help: "Time to build a circuit seen LAUNCHED: from tor's TIME_CREATED (else the LAUNCHED event) to the BUILT event.", Buckets: slow})
	m.circFailed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "torscript_circuits_failed_total",
		Help: "Circuits that FAILED, by reason."}, []string{"reason"})
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "torscript_events_total",
		Help: "Events read from tor, by type."}, []string{"type"})
	m.reconnects = prometheus.NewCounter(prometheus.CounterOpts{Name: "torscript_reconnects_total",
		Help: "Times the control connection was lost and made again."})
	m.skipped = prometheus.NewCounter(prometheus.CounterOpts{Name: "torscript_handler_calls_skipped_total",
		Help: "Events of high-volume telemetry (BW, CIRC_BW, DEBUG, ...) whose handlers were not called because the loop was over a second behind tor while a policy waited for the streams behind them; never STREAM or CIRC."})
	m.failures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "torscript_handler_failures_total",
		Help: "Failed calls of the script's handlers, timers and policy, by kind: handler, timer, policy."}, []string{"kind"})
	queued := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "torscript_event_queue_depth",
		Help: "Events read from tor that wait for the script's loop."}, func() float64 {
		if c := m.connection(); c != nil {
			n, _ := c.QueuedEvents()
			return float64(n)
		}
		return 0
	})
	dropped := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "torscript_events_dropped_total",
		Help: "High-volume events (BW, CIRC_BW, ...) dropped because the loop fell behind, on the current connection; never STREAM or CIRC."}, func() float64 {
		if c := m.connection(); c != nil {
			return float64(c.DroppedEvents())
		}
		return 0
	})
	for _, c := range []prometheus.Collector{m.decisions, m.onError, m.policyCall, m.attachDelay, m.successDelay,
		m.streamEnds, m.circBuild, m.circFailed, m.events, m.reconnects, m.failures, m.skipped, queued, dropped} {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return m, nil
}

// useConn says which connection the queue gauges read.
func (m *Metrics) useConn(c *ctl.Conn) {
	if m != nil {
		m.cur.Store(c)
	}
}

func (m *Metrics) connection() *ctl.Conn { return m.cur.Load() }

// skip counts an event whose handlers the loop skipped (Runtime.skip).
func (m *Metrics) skip() {
	if m != nil {
		m.skipped.Inc()
	}
}

// event counts an event and times streams and circuits from it.
func (m *Metrics) event(ev ctl.Event) {
	if m == nil {
		return
	}
	typ := ev.EventType()
	c := m.eventCount[typ]
	if c == nil {
		c = m.events.WithLabelValues(typ)
		m.eventCount[typ] = c
	}
	c.Inc()
	switch e := ev.(type) {
	case *ctl.StreamEvent:
		m.stream(e.ID, e.Status, &e.Stream)
	case *ctl.CircEvent:
		m.circuit(e.ID, e.Status, &e.Circuit)
	case *ctl.Deferred:
		if id, status, ok := e.CircHead(); ok {
			var c *ctl.Circuit // parsed only where its fields count
			if status == ctl.CircBuilt || status == ctl.CircFailed {
				c = builtins.CircuitOf(e)
			}
			m.circuit(id, status, c)
		} else if id, status, ok := e.StreamHead(); ok {
			var s *ctl.Stream // parsed only where its fields count
			if status == ctl.StreamClosed || status == ctl.StreamFailed {
				s = builtins.StreamOf(e)
			}
			m.stream(id, status, s)
		}
	}
}

// stream times a stream from a STREAM event of id and status, and counts
// how streams end; s is the event's stream, needed for CLOSED and FAILED.
func (m *Metrics) stream(id string, status ctl.StreamStatus, s *ctl.Stream) {
	switch status {
	case ctl.StreamNew, ctl.StreamNewResolve:
		if len(m.newAt) < maxTimed {
			m.newAt[id] = time.Now()
		}
	case ctl.StreamSucceeded:
		if t, ok := m.newAt[id]; ok {
			m.successDelay.Observe(time.Since(t).Seconds())
			delete(m.newAt, id)
		}
	case ctl.StreamClosed, ctl.StreamFailed:
		m.streamEnds.WithLabelValues(string(status), s.Reason, s.RemoteReason).Inc()
		delete(m.newAt, id)
		delete(m.attached, id)
	}
}

// circuit times a circuit from a CIRC event of id and status; c is the
// event's circuit, needed for BUILT and FAILED.
func (m *Metrics) circuit(id string, status ctl.CircStatus, c *ctl.Circuit) {
	switch status {
	case ctl.CircLaunched:
		if len(m.launchedAt) < maxTimed {
			m.launchedAt[id] = time.Now()
		}
	case ctl.CircBuilt:
		// Tor's TIME_CREATED when it has one: the events of a
		// circuit may be read in one batch, long after LAUNCHED.
		t, ok := m.launchedAt[id]
		if !c.TimeCreated.IsZero() && ok {
			if d := time.Since(c.TimeCreated); d >= 0 && d < time.Hour {
				t = c.TimeCreated
			}
		}
		if ok {
			m.circBuild.Observe(time.Since(t).Seconds())
			delete(m.launchedAt, id)
		}
	case ctl.CircFailed:
		m.circFailed.WithLabelValues(c.Reason).Inc()
		delete(m.launchedAt, id)
	case ctl.CircClosed:
		delete(m.launchedAt, id)
	}
}

// maxTimed bounds the streams and circuits timed at once: ids of those
// whose end was never seen (a lost connection) do not pile up.
const maxTimed = 100_000

// decision counts a decision the policy (or its on_error) made.
func (m *Metrics) decision(d builtins.Decision, onError bool) {
	if m == nil {
		return
	}
	action := "hold"
	switch d := d.(type) {
	case builtins.Attach:
		action = "attach"
		if d.Circuit == "0" {
			action = "tor"
		}
	case builtins.Close:
		action = "close"
	case builtins.Redirect:
		action = "redirect"
	}
	c := m.decided[action]
	if c == nil {
		c = m.decisions.WithLabelValues(action)
		m.decided[action] = c
	}
	c.Inc()
	if onError {
		m.onError.Inc()
	}
}

// sent times a stream's first ATTACHSTREAM or CLOSESTREAM from its NEW.
func (m *Metrics) sent(stream string) {
	if m == nil || m.attached[stream] {
		return
	}
	if t, ok := m.newAt[stream]; ok {
		m.attachDelay.Observe(time.Since(t).Seconds())
		if len(m.attached) < maxTimed {
			m.attached[stream] = true
		}
	}
}

func (m *Metrics) policyCalled(d time.Duration) {
	if m != nil {
		m.policyCall.Observe(d.Seconds())
	}
}

func (m *Metrics) reconnected() {
	if m != nil {
		m.reconnects.Inc()
	}
}

// failed counts a failed call: "handler", "timer", "policy", ...
func (m *Metrics) failed(msg string) {
	if m == nil {
		return
	}
	kind, _, _ := strings.Cut(msg, " ")
	m.failures.WithLabelValues(kind).Inc()
}

// scriptMetric is a metric a script made (tor.metrics), kept by name so
// that a script loaded again gets the same one.
type scriptMetric struct {
	kind   builtins.MetricKind
	labels []string
	c      *prometheus.CounterVec
	g      *prometheus.GaugeVec
	h      *prometheus.HistogramVec
}

func (s *scriptMetric) Add(v float64, labels []string) {
	if s.c != nil {
		s.c.WithLabelValues(labels...).Add(v)
	} else if s.g != nil {
		s.g.WithLabelValues(labels...).Add(v)
	}
}

func (s *scriptMetric) Set(v float64, labels []string) {
	if s.g != nil {
		s.g.WithLabelValues(labels...).Set(v)
	}
}

func (s *scriptMetric) Observe(v float64, labels []string) {
	if s.h != nil {
		s.h.WithLabelValues(labels...).Observe(v)
	}
}

// scriptMetric makes a script's metric, torscript_script_NAME, or returns
// the one made before under that name if it is of the same kind and
// labels.
func (m *Metrics) scriptMetric(kind builtins.MetricKind, name, help string, labels []string, buckets []float64) (builtins.MetricSink, error) {
	m.script.Lock()
	defer m.script.Unlock()
	full := "torscript_script_" + name
	if s, ok := m.scriptMs[name]; ok {
		if s.kind != kind || strings.Join(s.labels, ",") != strings.Join(labels, ",") {
			return nil, fmt.Errorf("%s is a %s with labels [%s] already", full, s.kind, strings.Join(s.labels, ", "))
		}
		return s, nil
	}
	s := &scriptMetric{kind: kind, labels: labels}
	var c prometheus.Collector
	switch kind {
	case builtins.MetricCounter:
		s.c = prometheus.NewCounterVec(prometheus.CounterOpts{Name: full, Help: help}, labels)
		c = s.c
	case builtins.MetricGauge:
		s.g = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: full, Help: help}, labels)
		c = s.g
	default:
		if len(buckets) == 0 {
			buckets = prometheus.DefBuckets
		}
		s.h = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: full, Help: help, Buckets: buckets}, labels)
		c = s.h
	}
	if err := m.reg.Register(c); err != nil {
		return nil, fmt.Errorf("%s: %w", full, err)
	}
	m.scriptMs[name] = s
	return s, nil
}
