package ctl

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TorStatus is what a controller asks tor about itself most often, typed:
// stem's get_pid, get_uptime, get_listeners, traffic, accounting and
// bootstrap getters in one place.
type TorStatus struct {
	Version      string        // "0.4.9.11"
	PID          int           // process/pid
	Uptime       time.Duration // uptime
	ConfigFile   string        // config-file
	TrafficRead  int64         // traffic/read: bytes
	TrafficWrite int64         // traffic/written: bytes
	Bootstrap    Bootstrap     // status/bootstrap-phase
	// Listeners are tor's listening addresses by kind (net/listeners/KIND:
	// "socks", "control", "or", "dir", "dns", "trans", "natd",
	// "httptunnel", "extor"), as tor writes them ("127.0.0.1:9050",
	// "unix:/run/tor/socks").
	Listeners map[string][]string
	// Fingerprint is the relay's fingerprint when tor is a relay, else "".
	Fingerprint string
	// Accounting is nil unless AccountingMax is set.
	Accounting *Accounting
}

// Bootstrap is tor's bootstrap phase (control-spec 5.5).
type Bootstrap struct {
	Severity string // NOTICE, WARN, ERR
	Progress int    // 0 to 100
	Tag      string // "done", "conn_pt", ...
	Summary  string
	Warning  string // for a WARN: why
}

// Accounting is tor's bandwidth accounting (accounting/*).
type Accounting struct {
	Hibernating                string // "awake", "soft", "hard"
	BytesRead, BytesWritten    int64  // this interval
	BytesLeftRead, BytesLeftWr int64  // before hibernating
	IntervalEnd                time.Time
}

// listenerKinds are the kinds of net/listeners/KIND tor answers.
var listenerKinds = []string{"socks", "control", "or", "dir", "dns", "trans", "natd", "httptunnel", "extor"}

// Status asks tor for its TorStatus: one GETINFO for what every tor
// answers, one for the fingerprint (a client answers it with an error),
// and one for accounting when it is enabled.
func (c *Conn) Status(ctx context.Context) (*TorStatus, error) {
	keys := []string{"version", "process/pid", "uptime", "config-file", "traffic/read", "traffic/written", "status/bootstrap-phase", "accounting/enabled"}
	for _, k := range listenerKinds {
		keys = append(keys, "net/listeners/"+k)
	}
	v, err := c.GetInfo(ctx, keys...)
	if err != nil {
		return nil, err
	}
	st := &TorStatus{Version: v["version"], ConfigFile: v["config-file"], Listeners: map[string][]string{}}
	var errs []string
	num := func(key string, out *int64) {
		n, err := strconv.ParseInt(strings.TrimSpace(v[key]), 10, 64)
		if err != nil {
			errs = append(errs, key)
		}
		*out = n
	}
	var pid, up int64
	num("process/pid", &pid)
	num("uptime", &up)
	num("traffic/read", &st.TrafficRead)
	num("traffic/written", &st.TrafficWrite)
	st.PID, st.Uptime = int(pid), time.Duration(up)*time.Second
	if st.Bootstrap, err = ParseBootstrapPhase(v["status/bootstrap-phase"]); err != nil {
		errs = append(errs, "status/bootstrap-phase")
	}
	for _, k := range listenerKinds {
		addrs, err := unquoteList(v["net/listeners/"+k])
		if err != nil {
			errs = append(errs, "net/listeners/"+k)
		}
		if len(addrs) > 0 {
			st.Listeners[k] = addrs
		}
	}
	if fp, err := c.GetInfoOne(ctx, "fingerprint"); err == nil {
		st.Fingerprint = fp
	} else if ErrorCode(err) == 0 {
		return nil, err
	}
	if v["accounting/enabled"] == "1" {
		if st.Accounting, err = c.accounting(ctx); err != nil {
			return nil, err
		}
	}
	if len(errs) > 0 {
		return st, &ProtocolError{Msg: "status: could not read " + strings.Join(errs, ", ")}
	}
	return st, nil
}

func (c *Conn) accounting(ctx context.Context) (*Accounting, error) {
	v, err := c.GetInfo(ctx, "accounting/hibernating", "accounting/bytes", "accounting/bytes-left", "accounting/interval-end")
	if err != nil {
		return nil, err
	}
	a := &Accounting{Hibernating: v["accounting/hibernating"]}
	pair := func(key string, x, y *int64) error {
		f := strings.Fields(v[key])
		if len(f) != 2 {
			return &ProtocolError{Msg: key + ": want two numbers", Line: v[key]}
		}
		var err1, err2 error
		*x, err1 = strconv.ParseInt(f[0], 10, 64)
		*y, err2 = strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return &ProtocolError{Msg: key + ": want two numbers", Line: v[key]}
		}
		return nil
	}
	if err := pair("accounting/bytes", &a.BytesRead, &a.BytesWritten); err != nil {
		return nil, err
	}
	if err := pair("accounting/bytes-left", &a.BytesLeftRead, &a.BytesLeftWr); err != nil {
		return nil, err
	}
	if t, err := time.Parse("2006-01-02 15:04:05", v["accounting/interval-end"]); err == nil {
		a.IntervalEnd = t.UTC()
	}
	return a, nil
}

// ParseBootstrapPhase reads status/bootstrap-phase:
// `NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`.
func ParseBootstrapPhase(s string) (Bootstrap, error) {
	sev, rest, _ := strings.Cut(s, " ")
	word, rest, _ := strings.Cut(rest, " ")
	if word != "BOOTSTRAP" {
		return Bootstrap{}, fmt.Errorf("bootstrap phase %q: no BOOTSTRAP", s)
	}
	kvs, err := ParseKeyValues(rest)
	if err != nil {
		return Bootstrap{}, fmt.Errorf("bootstrap phase %q: %w", s, err)
	}
	b := Bootstrap{Severity: sev}
	for _, kv := range kvs {
		switch kv.Key {
		case "PROGRESS":
			b.Progress, err = strconv.Atoi(kv.Value)
			if err != nil {
				return Bootstrap{}, fmt.Errorf("bootstrap phase %q: PROGRESS: %w", s, err)
			}
		case "TAG":
			b.Tag = kv.Value
		case "SUMMARY":
			b.Summary = kv.Value
		case "WARNING":
			b.Warning = kv.Value
		}
	}
	return b, nil
}

// unquoteList reads tor's list of quoted strings: `"a" "b"`.
func unquoteList(s string) ([]string, error) {
	var out []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		if s[0] != '"' {
			w, rest, _ := strings.Cut(s, " ")
			out, s = append(out, w), rest
			continue
		}
		v, rest, err := Unquote(s)
		if err != nil {
			return out, err
		}
		out, s = append(out, v), rest
	}
	return out, nil
}
