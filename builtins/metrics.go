package builtins

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// Script metrics: tor.metrics.counter, .gauge and .histogram make metrics
// the host exports (with --metrics, under the torscript_script_ prefix).
// The host keeps them (Host.Metric); the values here check the label
// names a call gives against those the metric was made with.

// MetricKind is the kind of a script metric.
type MetricKind string

const (
	MetricCounter   MetricKind = "counter"
	MetricGauge     MetricKind = "gauge"
	MetricHistogram MetricKind = "histogram"
)

// MetricSink is a metric the host made for a script. The label values are
// in the order of the metric's label names.
type MetricSink interface {
	Add(v float64, labels []string) // counters and gauges
	Set(v float64, labels []string) // gauges
	Observe(v float64, labels []string)
}

const docInstance = `instance
The tor this copy of the script serves: its control address as given
(--control, TORSCRIPT_CONTROL), "default" when torscript found it itself.
With several --control, each tor runs a copy of the script of its own, and
tor.instance tells them apart:
  print("serving", tor.instance)`

// instanceValue is tor.instance ("" when the module was made without a
// host: for its docs and names).
func instanceValue(t *torMod) starlark.Value {
	if t.h == nil {
		return starlark.String("")
	}
	return starlark.String(t.h.Instance())
}

const docMetrics = `metrics
Metrics the script exports with torscript run --metrics HOST:PORT (as
torscript_script_NAME, with the tor_instance label):
  hits = tor.metrics.counter("exit_hits", "streams pinned to an exit", labels = ["exit"])
  hits.inc(exit = "exit1")        # .inc(2, exit = ...) adds 2
  q = tor.metrics.gauge("held", "streams held")        # .set(v), .inc(), .dec()
  h = tor.metrics.histogram("pick_seconds", "time to pick", buckets = [0.001, 0.01, 0.1])
  h.observe(0.004)
A name is [a-z_][a-z0-9_]*; making a metric again with the same kind and
labels returns it (a reloaded script keeps counting); a call must give
exactly the metric's labels, as strings. Without --metrics the metrics
work and are not served.`

var metricName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func metricsModule(t *torMod) starlark.Value {
	mk := func(kind MetricKind) *starlark.Builtin {
		return starlark.NewBuiltin("tor.metrics."+string(kind), func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var name, help string
			var labels, buckets *starlark.List
			params := []any{"name", &name, "help", &help, "labels?", &labels}
			if kind == MetricHistogram {
				params = append(params, "buckets?", &buckets)
			}
			if err := starlark.UnpackArgs(b.Name(), args, kwargs, params...); err != nil {
				return nil, err
			}
			if !metricName.MatchString(name) {
				return nil, fmt.Errorf("%s: name %q: want letters, digits and _, not starting with a digit", b.Name(), name)
			}
			if help == "" {
				return nil, fmt.Errorf("%s: help: say what %s counts", b.Name(), name)
			}
			var ls []string
			if labels != nil {
				for i := 0; i < labels.Len(); i++ {
					l, ok := starlark.AsString(labels.Index(i))
					if !ok || !metricName.MatchString(l) || strings.HasPrefix(l, "__") || l == "tor_instance" || l == "le" {
						return nil, fmt.Errorf("%s: label %s: want a name of letters, digits and _ (not le, tor_instance or __...)", b.Name(), labels.Index(i))
					}
					if slices.Contains(ls, l) {
						return nil, fmt.Errorf("%s: label %q given twice", b.Name(), l)
					}
					ls = append(ls, l)
				}
			}
			var bs []float64
			if buckets != nil {
				for i := 0; i < buckets.Len(); i++ {
					f, ok := starlark.AsFloat(buckets.Index(i))
					if !ok || (len(bs) > 0 && f <= bs[len(bs)-1]) {
						return nil, fmt.Errorf("%s: buckets: want increasing numbers", b.Name())
					}
					bs = append(bs, f)
				}
			}
			sink, err := t.h.Metric(kind, name, help, ls, bs)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", b.Name(), err)
			}
			return &Metric{kind: kind, name: name, labels: ls, sink: sink}, nil
		})
	}
	return &starlarkstruct.Module{Name: "tor.metrics", Members: starlark.StringDict{
		"counter":   mk(MetricCounter),
		"gauge":     mk(MetricGauge),
		"histogram": mk(MetricHistogram),
	}}
}

// Metric is a script metric: tor.metric.
type Metric struct {
	kind   MetricKind
	name   string
	labels []string
	sink   MetricSink
}

var _ starlark.HasAttrs = (*Metric)(nil)

func (m *Metric) String() string {
	return fmt.Sprintf("<%s %s%s>", m.kind, m.name, labelList(m.labels))
}
func (m *Metric) Type() string          { return "tor.metric" }
func (m *Metric) Freeze()               {}
func (m *Metric) Truth() starlark.Bool  { return true }
func (m *Metric) Hash() (uint32, error) { return starlark.String(m.name).Hash() }

func labelList(ls []string) string {
	if len(ls) == 0 {
		return ""
	}
	return "{" + strings.Join(ls, ",") + "}"
}

func (m *Metric) AttrNames() []string {
	switch m.kind {
	case MetricCounter:
		return []string{"inc", "name"}
	case MetricGauge:
		return []string{"dec", "inc", "name", "set"}
	}
	return []string{"name", "observe"}
}

func (m *Metric) Attr(name string) (starlark.Value, error) {
	if name == "name" {
		return starlark.String(m.name), nil
	}
	if !slices.Contains(m.AttrNames(), name) {
		return nil, nil
	}
	return starlark.NewBuiltin(m.name+"."+name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		v := 1.0
		if name == "set" || name == "observe" {
			if len(args) != 1 {
				return nil, fmt.Errorf("%s: want the value, then the labels by name", b.Name())
			}
		} else if len(args) > 1 {
			return nil, fmt.Errorf("%s: want at most one value, then the labels by name", b.Name())
		}
		if len(args) == 1 {
			f, ok := starlark.AsFloat(args[0])
			if !ok {
				return nil, fmt.Errorf("%s: value: got %s, want a number", b.Name(), args[0].Type())
			}
			v = f
		}
		values, err := m.labelValues(b.Name(), kwargs)
		if err != nil {
			return nil, err
		}
		switch name {
		case "inc":
			if m.kind == MetricCounter && v < 0 {
				return nil, fmt.Errorf("%s: a counter only goes up (got %v)", b.Name(), v)
			}
			m.sink.Add(v, values)
		case "dec":
			m.sink.Add(-v, values)
		case "set":
			m.sink.Set(v, values)
		case "observe":
			m.sink.Observe(v, values)
		}
		return starlark.None, nil
	}), nil
}

// labelValues orders the label values a call gives by name, and checks
// that it gives exactly the metric's labels.
func (m *Metric) labelValues(fn string, kwargs []starlark.Tuple) ([]string, error) {
	values := make([]string, len(m.labels))
	set := make([]bool, len(m.labels))
	for _, kv := range kwargs {
		k := string(kv[0].(starlark.String))
		i := slices.Index(m.labels, k)
		if i < 0 {
			return nil, fmt.Errorf("%s: %s has no label %q (its labels: %s)", fn, m.name, k, strings.Join(m.labels, ", "))
		}
		s, ok := starlark.AsString(kv[1])
		if !ok {
			s = kv[1].String()
		}
		values[i], set[i] = s, true
	}
	var missing []string
	for i, ok := range set {
		if !ok {
			missing = append(missing, m.labels[i])
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("%s: give the label(s) %s", fn, strings.Join(missing, ", "))
	}
	return values, nil
}
