package builtins

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// Probes: streams the script itself sends through tor's SocksPort over a
// circuit it chose (tor.fetch, tor.connect), the way exitmap, sbws and
// onionperf measure the network. They reach the network, so they need the
// grant "net".

// Probe is a stream the script sends through tor. The host checks the
// grant, opens it through tor's SocksPort with credentials of its own,
// attaches the stream tor announces to Circuit itself (whether or not the
// script has a policy), and calls OnDone with the result on the loop.
type Probe struct {
	Kind    string   // "fetch" or "connect"
	URL     *url.URL // fetch: an http or https URL
	Header  [][2]string
	Host    string // where the stream goes: the URL's host for fetch
	Port    int
	Send    []byte // connect: written once the stream is open
	Circuit string // "0": tor chooses
	Timeout time.Duration
	MaxBody int // fetch: body bytes kept; connect: bytes read at most
	OnDone  starlark.Callable
}

// ProbeResult is what a probe came to; Value is what OnDone receives.
type ProbeResult struct {
	Err    string // "" when it succeeded
	Reason string // tor's end reason for the stream, when it ended badly
	// Stream and Circuit are tor's stream id and the circuit it rode
	// ("" when tor announced no stream); Exit is that circuit's last hop.
	Stream, Circuit  string
	ExitFP, ExitNick string
	Status           int // fetch: the HTTP status
	Header           [][2]string
	Body             []byte // fetch: at most MaxBody; connect: what was read
	Size             int64  // fetch: the body's whole size; connect: len(Body)
	Sent             int
	Connect, TTFB    time.Duration // -1 when it did not get there
	Elapsed          time.Duration
}

const docFetch = `fetch(url, circuit=None, on_done=fn, timeout="30s", max_body=1048576, headers={})
Needs the grant net (torscript run --allow net). An HTTP or HTTPS GET of url
through tor's SocksPort, on circuit (a circuit or its id; None: tor
chooses). The runtime opens the stream with SOCKS credentials of its own,
attaches it to circuit itself (a policy, if the script has one, is not
asked), and calls on_done(result) on the loop when it ends; fetch returns
at once. result: ok, error (None or why), reason (tor's end reason, e.g.
"EXITPOLICY"), status, headers (dict, lower-case names), body (bytes, at
most max_body), body_size, connect_time and ttfb (seconds, None when not
reached), elapsed, stream, circuit, exit (fingerprint) and exit_nickname.
timeout bounds the whole fetch. Without the grant it fails before
anything is sent.`

const docConnect = `connect(host, port, circuit=None, on_done=fn, send=b"", timeout="30s", max_read=65536)
Needs the grant net (torscript run --allow net). A raw stream to host:port
through tor's SocksPort, on circuit, attached by the runtime itself as
fetch's. It writes send once the stream is open, then reads until the far
end closes, max_read bytes came, or timeout passes (a timeout after the
stream opened is not a failure: data holds what came), and calls
on_done(result): ok, error, reason, data (bytes), received, sent,
connect_time, elapsed, stream, circuit, exit and exit_nickname.`

// maxProbeRead bounds max_body and max_read.
const maxProbeRead = 64 << 20

func (t *torMod) fetch(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var raw string
	var circuit starlark.Value = starlark.None
	var onDone callback
	timeout := Duration(30 * time.Second)
	maxBody := 1 << 20
	var headers *starlark.Dict
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "url", &raw, "circuit?", &circuit, "on_done?", &onDone,
		"timeout?", &timeout, "max_body?", &maxBody, "headers?", &headers); err != nil {
		return nil, err
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", b.Name(), err)
	}
	port := 80
	switch u.Scheme {
	case "http":
	case "https":
		port = 443
	default:
		return nil, fmt.Errorf("%s: url %q: want an http:// or https:// URL", b.Name(), raw)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%s: url %q has no host", b.Name(), raw)
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("%s: url %q: bad port", b.Name(), raw)
		}
	}
	p := &Probe{Kind: "fetch", URL: u, Host: u.Hostname(), Port: port, MaxBody: maxBody}
	if headers != nil {
		for _, kv := range headers.Items() {
			k, ok1 := starlark.AsString(kv[0])
			v, ok2 := starlark.AsString(kv[1])
			if !ok1 || !ok2 || strings.ContainsAny(k+v, "\r\n") {
				return nil, fmt.Errorf("%s: headers: want str names and values without line breaks", b.Name())
			}
			p.Header = append(p.Header, [2]string{k, v})
		}
	}
	return t.probe(b, p, circuit, onDone, timeout)
}

func (t *torMod) connect(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var host string
	var port int
	var circuit starlark.Value = starlark.None
	var onDone callback
	var send starlark.Value = starlark.Bytes("")
	timeout := Duration(30 * time.Second)
	maxRead := 64 << 10
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "host", &host, "port", &port, "circuit?", &circuit, "on_done?", &onDone,
		"send?", &send, "timeout?", &timeout, "max_read?", &maxRead); err != nil {
		return nil, err
	}
	if host == "" || port < 1 || port > 65535 {
		return nil, fmt.Errorf("%s: want a host and a port from 1 to 65535", b.Name())
	}
	p := &Probe{Kind: "connect", Host: host, Port: port, MaxBody: maxRead}
	switch s := send.(type) {
	case starlark.Bytes:
		p.Send = []byte(s)
	case starlark.String:
		p.Send = []byte(s)
	default:
		return nil, fmt.Errorf("%s: send: got %s, want bytes or str", b.Name(), send.Type())
	}
	return t.probe(b, p, circuit, onDone, timeout)
}

func (t *torMod) probe(b *starlark.Builtin, p *Probe, circuit starlark.Value, onDone callback, timeout Duration) (starlark.Value, error) {
	if onDone.fn == nil {
		return nil, fmt.Errorf("%s: on_done is required: the result comes later, on the loop, which must keep running to attach the probe's stream", b.Name())
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("%s: timeout must be positive", b.Name())
	}
	if p.MaxBody < 0 || p.MaxBody > maxProbeRead {
		return nil, fmt.Errorf("%s: at most %d bytes can be kept", b.Name(), maxProbeRead)
	}
	p.Circuit = "0"
	if circuit != starlark.None {
		var id CircuitID
		if err := id.Unpack(circuit); err != nil {
			return nil, fmt.Errorf("%s: circuit: %v", b.Name(), err)
		}
		p.Circuit = string(id)
	}
	p.Timeout, p.OnDone = time.Duration(timeout), onDone.fn
	if err := t.h.Probe(p); err != nil {
		return nil, failed(b, err)
	}
	return starlark.None, nil
}

// Value is the result as on_done receives it.
func (r *ProbeResult) Value(p *Probe) starlark.Value {
	opt := func(s string) starlark.Value {
		if s == "" {
			return starlark.None
		}
		return starlark.String(s)
	}
	secs := func(d time.Duration) starlark.Value {
		if d < 0 {
			return starlark.None
		}
		return starlark.Float(d.Seconds())
	}
	d := starlark.StringDict{
		"ok":            starlark.Bool(r.Err == ""),
		"error":         opt(r.Err),
		"reason":        opt(r.Reason),
		"stream":        opt(r.Stream),
		"circuit":       opt(r.Circuit),
		"exit":          opt(r.ExitFP),
		"exit_nickname": opt(r.ExitNick),
		"connect_time":  secs(r.Connect),
		"elapsed":       secs(r.Elapsed),
	}
	if p.Kind == "fetch" {
		d["url"] = starlark.String(p.URL.String())
		status := starlark.Value(starlark.None)
		if r.Status != 0 {
			status = starlark.MakeInt(r.Status)
		}
		d["status"] = status
		h := starlark.NewDict(len(r.Header))
		for _, kv := range r.Header {
			k := starlark.String(strings.ToLower(kv[0]))
			if _, found, _ := h.Get(k); !found {
				h.SetKey(k, starlark.String(kv[1]))
			}
		}
		h.Freeze()
		d["headers"] = h
		d["body"] = starlark.Bytes(r.Body)
		d["body_size"] = starlark.MakeInt64(r.Size)
		d["ttfb"] = secs(r.TTFB)
		return starlarkstruct.FromStringDict(starlark.String("fetch_result"), d)
	}
	d["host"], d["port"] = starlark.String(p.Host), starlark.MakeInt(p.Port)
	d["data"] = starlark.Bytes(r.Body)
	d["received"] = starlark.MakeInt(len(r.Body))
	d["sent"] = starlark.MakeInt(r.Sent)
	return starlarkstruct.FromStringDict(starlark.String("connect_result"), d)
}
