package builtins

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/ctl/ctltest"
	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/starlarktest"
	"go.starlark.net/syntax"
)

// realTor is where ctl keeps what a real tor 0.4.9 sent.
const realTor = "../ctl/testdata/tor-0.4.9/"

// fileOptions are the dialect of the test scripts.
var fileOptions = &syntax.FileOptions{Set: true, While: true, TopLevelControl: true, GlobalReassign: true}

// FakeHost is a Host for tests: it records what the tor module asks of
// it, and answers Circuits and Streams with canned values.
type FakeHost struct {
	conn    *ctl.Conn
	connErr error // returned by Conn when set
	err     error // returned by On, Schedule, SetPolicy, Circuits and Streams when set

	mu       sync.Mutex
	calls    []string
	policy   *Policy
	circuits []*ctl.Circuit
	streams  []*ctl.Stream
	liveC    *Live[ctl.Circuit]
	liveS    *Live[ctl.Stream]
}

var _ Host = (*FakeHost)(nil)

func newFakeHost(t testing.TB, c *ctl.Conn) *FakeHost {
	h := &FakeHost{conn: c}
	circs, err := ctl.ParseCircuitStatus(readFile(t, realTor+"getinfo-circuit-status.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range circs {
		h.circuits = append(h.circuits, &circs[i])
	}
	streams, err := ctl.ParseStreamStatus("42 SENTCONNECT 85 www.example.com:443\n43 NEW 0 10.0.0.1:80 SOURCE_ADDR=127.0.0.1:51234 PURPOSE=USER\n")
	if err != nil {
		t.Fatal(err)
	}
	for i := range streams {
		h.streams = append(h.streams, &streams[i])
	}
	h.liveC = NewLive(func(c *ctl.Circuit) starlark.Value { return &Circuit{C: c} })
	for _, c := range h.circuits {
		h.liveC.Set(c.ID, c)
	}
	h.liveS = NewLive(func(s *ctl.Stream) starlark.Value { return &Stream{S: s, Host: h} })
	for _, s := range h.streams {
		h.liveS.Set(s.ID, s)
	}
	return h
}

func (h *FakeHost) record(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, fmt.Sprintf(format, args...))
}

// takeCalls returns the calls recorded since the last takeCalls.
func (h *FakeHost) takeCalls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.calls
	h.calls = nil
	return c
}

func (h *FakeHost) Conn() (*ctl.Conn, error) {
	if h.connErr != nil {
		return nil, h.connErr
	}
	return h.conn, nil
}

// Relays reads the relays from the connection at each call.
func (h *FakeHost) Relays(ctx context.Context) ([]ctl.Relay, bool, error) {
	c, err := h.Conn()
	if err != nil {
		return nil, false, err
	}
	rs, err := c.Relays(ctx)
	if rs == nil && err != nil {
		return nil, false, err
	}
	return rs, true, nil
}

func (h *FakeHost) On(typ string, fn starlark.Callable) (func() bool, error) {
	if h.err != nil {
		return nil, h.err
	}
	h.record("On %s %s", typ, fn.Name())
	done := false
	return func() bool {
		h.record("Cancel %s %s", typ, fn.Name())
		was := !done
		done = true
		return was
	}, nil
}

func (h *FakeHost) Off(typ string, fn starlark.Callable) int {
	h.record("Off %s %s", typ, fn.Name())
	return 1
}

func (h *FakeHost) Schedule(d time.Duration, repeat bool, fn starlark.Callable) (func(), error) {
	if h.err != nil {
		return nil, h.err
	}
	how := "once"
	if repeat {
		how = "repeat"
	}
	h.record("Schedule %s %s %s", d, how, fn.Name())
	return func() { h.record("Cancel %s %s", d, how) }, nil
}

func (h *FakeHost) SetPolicy(p *Policy) error {
	if h.err != nil {
		return h.err
	}
	h.policy = p
	var m []string
	for _, a := range p.Map {
		m = append(m, a.From+"="+a.To)
	}
	h.record("SetPolicy %s on_error=%s timeout=%s map=[%s] all_streams=%t", p.Fn.Name(), p.OnError, p.Timeout, strings.Join(m, ","), p.AllStreams)
	return nil
}

func (h *FakeHost) Circuits(ctx context.Context) (*Live[ctl.Circuit], error) {
	if h.err != nil {
		return nil, h.err
	}
	return h.liveC, nil
}

func (h *FakeHost) Streams(ctx context.Context) (*Live[ctl.Stream], error) {
	if h.err != nil {
		return nil, h.err
	}
	return h.liveS, nil
}

func (h *FakeHost) Circuit(id string) *ctl.Circuit { return h.liveC.Get(id) }

func (h *FakeHost) StreamHandled(id string) { h.record("StreamHandled %s", id) }
func (h *FakeHost) Launched(id string)      { h.record("Launched %s", id) }
func (h *FakeHost) Probe(p *Probe) error {
	h.record("Probe %s %s:%d circuit %s timeout %v", p.Kind, p.Host, p.Port, p.Circuit, p.Timeout)
	return nil
}
func (h *FakeHost) Await(w *Waiter) error {
	h.record("Await %s %v %v", w.What, w.Events, w.Timeout)
	return nil
}
func (h *FakeHost) Instance() string { return "fake:9051" }

func (h *FakeHost) Metric(kind MetricKind, name, help string, labels []string, buckets []float64) (MetricSink, error) {
	h.record("Metric %s %s %v", kind, name, labels)
	return fakeSink{h, name}, nil
}

type fakeSink struct {
	h    *FakeHost
	name string
}

func (s fakeSink) Add(v float64, l []string)     { s.h.record("Add %s %v %v", s.name, v, l) }
func (s fakeSink) Set(v float64, l []string)     { s.h.record("Set %s %v %v", s.name, v, l) }
func (s fakeSink) Observe(v float64, l []string) { s.h.record("Observe %s %v %v", s.name, v, l) }

func (h *FakeHost) AtExit(fn starlark.Callable) {
	h.record("AtExit %s", fn.Name())
}
func (h *FakeHost) Require(commands, config []string, keep bool) error {
	h.record("Require %v %v keep=%t", commands, config, keep)
	if slices.Contains(commands, "SAVECONF") {
		return errors.New("this script needs grants it was not given: run it with --allow SAVECONF")
	}
	return nil
}

func (h *FakeHost) Mapped(pairs []ctl.AddrMap, keep bool) {
	var m []string
	for _, a := range pairs {
		m = append(m, a.From+"="+a.To)
	}
	h.record("Mapped %s keep=%t", strings.Join(m, ","), keep)
}

// fakeControlPort answers a real *ctl.Conn, through ctl's scripted fake
// control port (ctltest), from a script: each command the client writes
// must be the next one expected, and is answered with the reply given for
// it. Anything else fails the test.
type fakeControlPort struct {
	port *ctltest.FakeControlPort

	mu         sync.Mutex
	queue      []exchange
	unexpected []string
}

type exchange struct{ command, reply string }

func newFakeControlPort(t testing.TB) (*fakeControlPort, *ctl.Conn) {
	p, nc := ctltest.DialScripted(t)
	f := &fakeControlPort{port: p}
	c := ctl.NewConn(nc, ctl.Options{Timeout: 5 * time.Second})
	done := make(chan struct{})
	go f.serve(done)
	t.Cleanup(func() {
		close(done)
		c.Close()
	})
	return f, c
}

// expect queues a command (the line as the client writes it, without
// CRLF; a multi-line command's lines joined by "\n", data as on the wire)
// and the reply to send for it ("\n" between lines; CRLF is added).
func (f *fakeControlPort) expect(command, reply string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queue = append(f.queue, exchange{command, reply})
}

// readLine is the next line the client writes, without its line end;
// false once done is closed.
func (f *fakeControlPort) readLine(done <-chan struct{}) (string, bool) {
	for {
		line, ok := f.port.NextCommand(100 * time.Millisecond)
		if ok {
			return strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"), true
		}
		select {
		case <-done:
			return "", false
		default:
		}
	}
}

func (f *fakeControlPort) serve(done <-chan struct{}) {
	for {
		cmd, ok := f.readLine(done)
		if !ok {
			return
		}
		if strings.HasPrefix(cmd, "+") {
			for {
				l, ok := f.readLine(done)
				if !ok {
					return
				}
				cmd += "\n" + l
				if l == "." {
					break
				}
			}
		}
		if err := f.port.Send([]byte(f.answer(cmd))); err != nil {
			return
		}
	}
}

// answer is the reply to cmd, CRLF at each line's end: the one expected
// next, or a 510 noted for check.
func (f *fakeControlPort) answer(cmd string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var reply string
	switch {
	case len(f.queue) == 0:
		f.unexpected = append(f.unexpected, fmt.Sprintf("unexpected command %q (none expected)", cmd))
		reply = "510 fake control port: unexpected command"
	case f.queue[0].command != cmd:
		f.unexpected = append(f.unexpected, fmt.Sprintf("got command %q, want %q", cmd, f.queue[0].command))
		reply = "510 fake control port: unexpected command"
		f.queue = f.queue[1:]
	default:
		reply = f.queue[0].reply
		f.queue = f.queue[1:]
	}
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(reply, "\r\n"), "\n") {
		b.WriteString(strings.TrimSuffix(l, "\r") + "\r\n")
	}
	return b.String()
}

// check reports unexpected commands and expected ones never sent.
func (f *fakeControlPort) check(t testing.TB, where string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.unexpected {
		t.Errorf("%s: fake control port: %s", where, u)
	}
	for _, e := range f.queue {
		t.Errorf("%s: fake control port: expected command %q was not sent", where, e.command)
	}
}

func readFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// realEvents parses the events a real tor sent.
func realEvents(t testing.TB) []ctl.Event {
	t.Helper()
	rs, err := ctl.ParseReplies([]byte(readFile(t, realTor+"events.txt")), ctl.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var evs []ctl.Event
	for _, r := range rs {
		if r.IsAsync() {
			evs = append(evs, ctl.ParseEvent(r))
		}
	}
	if len(evs) < 50 {
		t.Fatalf("only %d events in events.txt", len(evs))
	}
	return evs
}

// parseEvent reads an event written as tor sends it, "\n" or CRLF between
// lines; "650 " may be left out of a one-line event.
func parseEvent(text string) (ctl.Event, error) {
	if len(text) < 4 || text[0] < '0' || text[0] > '9' {
		text = "650 " + text
	}
	text = strings.ReplaceAll(strings.TrimRight(text, "\r\n"), "\r\n", "\n")
	text = strings.ReplaceAll(text, "\n", "\r\n") + "\r\n"
	rs, err := ctl.ParseReplies([]byte(text), ctl.Limits{})
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 || !rs[0].IsAsync() {
		return nil, fmt.Errorf("want one event, got %d replies", len(rs))
	}
	return ctl.ParseEvent(rs[0]), nil
}

// fakeModule is the "fake" module a test script uses to program the fake
// control port and inspect the fake host.
func fakeModule(t testing.TB, h *FakeHost, port *fakeControlPort, out *strings.Builder) *starlarkstruct.Module {
	fn := func(name string, f func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error)) starlark.Value {
		return starlark.NewBuiltin("fake."+name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return f(args, kwargs)
		})
	}
	var events []ctl.Event // loaded on first use
	return &starlarkstruct.Module{Name: "fake", Members: starlark.StringDict{
		"expect": fn("expect", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var cmd, reply string
			if err := starlark.UnpackArgs("fake.expect", args, kwargs, "command", &cmd, "reply", &reply); err != nil {
				return nil, err
			}
			port.expect(cmd, reply)
			return starlark.None, nil
		}),
		"calls": fn("calls", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var l []starlark.Value
			for _, c := range h.takeCalls() {
				l = append(l, starlark.String(c))
			}
			return starlark.NewList(l), nil
		}),
		"disconnect": fn("disconnect", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			h.connErr = ErrNotConnected
			return starlark.None, nil
		}),
		"host_error": fn("host_error", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var msg string
			if err := starlark.UnpackArgs("fake.host_error", args, kwargs, "msg", &msg); err != nil {
				return nil, err
			}
			h.err = errors.New(msg)
			return starlark.None, nil
		}),
		"event": fn("event", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var text string
			if err := starlark.UnpackArgs("fake.event", args, kwargs, "text", &text); err != nil {
				return nil, err
			}
			ev, err := parseEvent(text)
			if err != nil {
				return nil, err
			}
			return EventValue(ev, h), nil
		}),
		"real_events": fn("real_events", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var typ string
			if err := starlark.UnpackArgs("fake.real_events", args, kwargs, "type", &typ); err != nil {
				return nil, err
			}
			if events == nil {
				events = realEvents(t)
			}
			var l []starlark.Value
			for _, ev := range events {
				if ev.EventType() == strings.ToUpper(typ) {
					l = append(l, EventValue(ev, h))
				}
			}
			return starlark.NewList(l), nil
		}),
		"testdata": fn("testdata", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var name string
			if err := starlark.UnpackArgs("fake.testdata", args, kwargs, "name", &name); err != nil {
				return nil, err
			}
			b, err := os.ReadFile(realTor + name)
			if err != nil {
				return nil, err
			}
			return starlark.String(strings.TrimRight(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")), nil
		}),
		"decide": fn("decide", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var v starlark.Value
			if err := starlark.UnpackArgs("fake.decide", args, kwargs, "v", &v); err != nil {
				return nil, err
			}
			d, err := ToDecision(v)
			if err != nil {
				return nil, err
			}
			return d, nil
		}),
		"policy_fn": fn("policy_fn", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if h.policy == nil {
				return starlark.None, nil
			}
			return h.policy.Fn, nil
		}),
		"output": fn("output", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			s := out.String()
			out.Reset()
			return starlark.String(s), nil
		}),
	}}
}

// chunk is a part of a test file, run on its own. wantErrs maps a line to
// the error expected there.
type chunk struct {
	source   string
	wantErrs map[int]*regexp.Regexp
}

// readChunks splits a test file at "---" lines, as starlark-go's
// internal/chunkedfile does: a line with `### "regexp"` expects the chunk
// to fail there with a matching error. Chunks are padded with newlines so
// that line numbers are those of the file.
func readChunks(t *testing.T, filename string) []chunk {
	t.Helper()
	var chunks []chunk
	line := 1
	for _, text := range strings.Split(readFile(t, filename), "\n---\n") {
		c := chunk{source: strings.Repeat("\n", line-1) + text, wantErrs: map[int]*regexp.Regexp{}}
		for _, l := range strings.Split(text, "\n") {
			if _, after, ok := strings.Cut(l, "###"); ok {
				pattern, err := strconv.Unquote(strings.TrimSpace(after))
				if err != nil {
					t.Fatalf("%s:%d: not a quoted regexp: %s", filename, line, after)
				}
				c.wantErrs[line] = regexp.MustCompile(pattern)
			}
			line++
		}
		// An expected error ends the chunk: code after it would never
		// run, and its asserts could never fail.
		if len(c.wantErrs) > 0 {
			last := 0
			for l := range c.wantErrs {
				last = max(last, l)
			}
			lines := strings.Split(c.source, "\n")
			for i := last; i < len(lines); i++ {
				if l := strings.TrimSpace(lines[i]); l != "" && !strings.HasPrefix(l, "#") {
					t.Fatalf("%s:%d: code after the expected error at line %d never runs; start a new chunk (---) before it", filename, i+1, last)
				}
			}
		}
		line++ // the "---" line
		chunks = append(chunks, c)
	}
	return chunks
}

// TestScripts runs testdata/*.star, each chunk with a new fake host, fake
// control port and tor module.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.star")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test scripts: %v", err)
	}
	assert, err := starlarktest.LoadAssertModule()
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			for _, c := range readChunks(t, file) {
				runChunk(t, file, c, assert)
			}
		})
	}
}

func runChunk(t *testing.T, file string, c chunk, assert starlark.StringDict) {
	port, conn := newFakeControlPort(t)
	h := newFakeHost(t, conn)
	tor := NewTor(h)
	var out strings.Builder
	thread := &starlark.Thread{Name: file, Print: func(_ *starlark.Thread, msg string) { out.WriteString(msg + "\n") }}
	starlarktest.SetReporter(thread, t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	SetContext(thread, ctx)
	predeclared := starlark.StringDict{
		"assert": assert["assert"],
		"tor":    tor.Module,
		"help":   NewHelp(tor.Docs),
		"time":   startime.Module,
		"fake":   fakeModule(t, h, port, &out),
	}
	_, err := starlark.ExecFileOptions(fileOptions, thread, file, c.source, predeclared)
	gotError := func(line int, msg string) {
		rx, ok := c.wantErrs[line]
		if !ok {
			t.Errorf("\n%s:%d: unexpected error: %s", file, line, msg)
			return
		}
		delete(c.wantErrs, line)
		if !rx.MatchString(msg) {
			t.Errorf("\n%s:%d: error %q does not match pattern %q", file, line, msg, rx)
		}
	}
	var evalErr *starlark.EvalError
	switch {
	case err == nil:
	case errors.As(err, &evalErr):
		found := false
		for i := range evalErr.CallStack {
			if pos := evalErr.CallStack.At(i).Pos; pos.Filename() == file {
				gotError(int(pos.Line), evalErr.Msg)
				found = true
				break
			}
		}
		if !found {
			t.Error(evalErr.Backtrace())
		}
	default:
		var se syntax.Error
		if errors.As(err, &se) {
			gotError(int(se.Pos.Line), se.Msg)
		} else {
			t.Errorf("%s: %v", file, err)
		}
	}
	for line, rx := range c.wantErrs {
		t.Errorf("\n%s:%d: expected error matching %q", file, line, rx)
	}
	first := strings.Count(c.source, "\n") - strings.Count(strings.TrimLeft(c.source, "\n"), "\n") + 1
	port.check(t, fmt.Sprintf("%s:%d", file, first))
}

// attrValues returns a value of every type the tor module shows scripts,
// named for error messages.
func attrValues(t *testing.T) map[string]starlark.Value {
	_, conn := newFakeControlPort(t)
	h := newFakeHost(t, conn)
	vals := map[string]starlark.Value{
		"hop":                     Hop{ctl.PathHop{Fingerprint: "7A961A422C65D7BE0C59B6368CEFEF8677B3AFA4", Nickname: "auth3"}},
		"circuit from status":     &Circuit{C: h.circuits[0]},
		"stream from status":      &Stream{S: h.streams[0], Host: h},
		"stream without host":     &Stream{S: h.streams[1]},
		"timer":                   &Timer{cancel: func() {}, d: time.Second},
		"onion service":           NewStruct("tor.onion_service", &ctl.OnionService{ServiceID: "x", ClientAuth: []ctl.OnionClientAuth{{Name: "a", Blob: "b"}}}),
		"onion client credential": NewStruct("tor.onion_client_cred", &ctl.OnionClientCred{HSAddress: "x", Flags: []string{"Permanent"}}),
		"protocol info":           NewStruct("tor.protocol_info", &ctl.ProtocolInfo{ProtocolVersion: "1", AuthMethods: []string{"COOKIE"}}),
	}
	for i, ev := range realEvents(t) {
		vals[fmt.Sprintf("event %d %s", i, ev.EventType())] = EventValue(ev, h)
	}
	unknown, _ := parseEvent("650 FUTURE_EVENT a b=c")
	vals["unknown event"] = EventValue(unknown, h)
	malformed, _ := parseEvent("650 CIRC")
	vals["malformed event"] = EventValue(malformed, h)
	routers, err := ctl.ParseRouterStatuses(readFile(t, realTor+"getinfo-ns-all.txt"))
	if err != nil {
		t.Fatal(err)
	}
	vals["router"] = NewStruct("tor.router", &routers[0])
	orconns, err := ctl.ParseORConnStatus(readFile(t, realTor+"getinfo-orconn-status.txt"))
	if err != nil {
		t.Fatal(err)
	}
	vals["orconn"] = NewStruct("tor.orconn", &orconns[0])
	guards, err := ctl.ParseEntryGuards(readFile(t, realTor+"getinfo-entry-guards.txt"))
	if err != nil {
		t.Fatal(err)
	}
	vals["entry guard"] = NewStruct("tor.entry_guard", &guards[0])
	maps, err := ctl.ParseAddressMappings(readFile(t, realTor+"getinfo-address-mappings-all.txt"))
	if err != nil {
		t.Fatal(err)
	}
	vals["address mapping"] = NewStruct("tor.address_mapping", &maps[0])
	return vals
}

// TestAttrNames checks, for a value of every type, that AttrNames lists
// exactly the attributes Attr has: sorted, without duplicates, each one an
// identifier a script can write after a dot, each one found by getattr in
// Starlark, and that an unknown name gives the "did you mean" error.
func TestAttrNames(t *testing.T) {
	const prog = `
def check():
    for n in dir(v):
        getattr(v, n)
        if not hasattr(v, n):
            fail("hasattr(%s) is False" % n)
    str(v)
check()
`
	for name, v := range attrValues(t) {
		ha, ok := v.(starlark.HasAttrs)
		if !ok {
			t.Errorf("%s: %s has no attributes", name, v.Type())
			continue
		}
		names := ha.AttrNames()
		if !sort.StringsAreSorted(names) {
			t.Errorf("%s: AttrNames not sorted: %v", name, names)
		}
		for i, n := range names {
			if i > 0 && names[i-1] == n {
				t.Errorf("%s: %s listed twice", name, n)
			}
			if _, err := fileOptions.ParseExpr("attr", "v."+n, 0); err != nil {
				t.Errorf("%s: attribute %q cannot follow a dot: %v", name, n, err)
			}
			x, err := ha.Attr(n)
			if x == nil || err != nil {
				t.Errorf("%s: Attr(%q) = %v, %v; AttrNames lists it", name, n, x, err)
			}
		}
		if x, err := ha.Attr("no_such_attribute"); x != nil || err != nil {
			t.Errorf("%s: Attr(no_such_attribute) = %v, %v; want nil, nil", name, x, err)
		}
		thread := &starlark.Thread{Name: name}
		if _, err := starlark.ExecFileOptions(fileOptions, thread, "attrs.star", prog, starlark.StringDict{"v": v}); err != nil {
			t.Errorf("%s (%s): %v", name, v.Type(), err)
		}
		if len(names) > 0 {
			typo := names[0] + "x"
			_, err := starlark.EvalOptions(fileOptions, thread, "typo.star", "v."+typo, starlark.StringDict{"v": v})
			want := fmt.Sprintf("%s has no .%s field or method (did you mean .%s?)", v.Type(), typo, names[0])
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: v.%s: got error %v, want %q", name, typo, err, want)
			}
		}
	}
}

// TestTorError checks that a refusal by tor reaches the caller of
// starlark.ExecFile as a *ctl.Error with its code.
func TestTorError(t *testing.T) {
	port, conn := newFakeControlPort(t)
	tor := NewTor(newFakeHost(t, conn))
	port.expect("GETINFO bogus", `552 Unrecognized key "bogus"`)
	_, err := starlark.ExecFileOptions(fileOptions, &starlark.Thread{}, "err.star", `tor.get_info("bogus")`, starlark.StringDict{"tor": tor.Module})
	var te *ctl.Error
	if !errors.As(err, &te) || te.Code != 552 {
		t.Fatalf("got %v, want a *ctl.Error 552", err)
	}
	var ee *starlark.EvalError
	if !errors.As(err, &ee) || ee.Msg != `tor.get_info: 552 Unrecognized key "bogus"` {
		t.Errorf("got message %q", ee.Msg)
	}
	port.check(t, "TestTorError")
}

// TestDocs checks that every member of the tor module has a docstring
// whose first line names it, and that the module has its overview.
func TestDocs(t *testing.T) {
	tor := NewTor(nil)
	for name, v := range tor.Module.Members {
		doc := tor.Docs["tor."+name]
		if doc == "" {
			t.Errorf("tor.%s has no docstring", name)
			continue
		}
		first, rest, _ := strings.Cut(doc, "\n")
		if _, ok := v.(*starlark.Builtin); ok && !strings.HasPrefix(first, name+"(") {
			t.Errorf("tor.%s: docstring starts %q, want its signature", name, first)
		}
		if strings.TrimSpace(rest) == "" {
			t.Errorf("tor.%s: docstring has only its first line", name)
		}
	}
	for _, cmd := range []string{"SETEVENTS", "AUTHENTICATE", "AUTHCHALLENGE", "QUIT"} {
		if !strings.Contains(tor.Docs["tor"], cmd) {
			t.Errorf("the tor overview does not say why %s is not there", cmd)
		}
	}
}

// TestEveryMemberTested checks that the test scripts use every member of
// the tor module (by name, or as a ("name", "COMMAND") pair of a loop).
func TestEveryMemberTested(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.star")
	var all strings.Builder
	for _, f := range files {
		all.WriteString(readFile(t, f))
	}
	for name := range NewTor(nil).Module.Members {
		if !regexp.MustCompile(`tor\.` + name + `\b|\("` + name + `", "[A-Z]+"\)`).MatchString(all.String()) {
			t.Errorf("no test script uses tor.%s", name)
		}
	}
}

// TestRouterValues: the tor.router values of a table read their relay's
// fields, their own attributes and their descriptor's, and are made once
// for a table.
func TestRouterValues(t *testing.T) {
	st, err := ctl.ParseRouterStatuses(ctltest.NsAll(300))
	if err != nil || len(st) != 300 {
		t.Fatalf("%d entries, %v", len(st), err)
	}
	rs := make([]ctl.Relay, len(st))
	for i := range st {
		rs[i].RouterStatus = st[i]
	}
	rs[7].Descriptor = &ctl.ServerDescriptor{Platform: "Tor 0.4.9.3 on Linux", Family: []string{"$" + rs[8].Fingerprint}}
	tm := &torMod{}
	vals := tm.routerValues(rs, true)
	if again := tm.routerValues(rs, true); &again[0] != &vals[0] {
		t.Error("a second read of the same table made its values again")
	}
	for i, v := range vals {
		r := v.(*Router)
		if r.R != &rs[i] {
			t.Fatalf("value %d is of relay %s, want %s", i, r.R.Nickname, rs[i].Nickname)
		}
		for name, want := range map[string]string{
			"nickname":            strconv.Quote(rs[i].Nickname),
			"fingerprint":         strconv.Quote(rs[i].Fingerprint),
			"or_port":             strconv.Itoa(rs[i].ORPort),
			"exit_policy_summary": strconv.Quote(rs[i].ExitPolicy.String()),
		} {
			got, err := r.Attr(name)
			if err != nil || got == nil || got.String() != want {
				t.Fatalf("router %d .%s = %v, %v; want %s", i, name, got, err, want)
			}
		}
	}
	r := vals[7].(*Router)
	if p, _ := r.Attr("platform"); p.(starlark.String) != "Tor 0.4.9.3 on Linux" {
		t.Errorf(".platform = %v", p)
	}
	if f, _ := r.Attr("family"); starlark.Len(f) != 1 {
		t.Errorf(".family = %v", f)
	}
	if f, _ := r.Attr("flags"); f == nil || !strings.Contains(f.String(), "Running") {
		t.Errorf(".flags = %v", f)
	}
	if c, _ := r.Attr("can_exit_to"); c == nil || c.Type() != "builtin_function_or_method" {
		t.Errorf(".can_exit_to = %v", c)
	}
	names := r.AttrNames()
	for _, want := range []string{"nickname", "flags", "can_exit_to", "platform", "effective_family"} {
		if !slices.Contains(names, want) {
			t.Errorf("dir() lacks %q: %v", want, names)
		}
	}
	if s := r.String(); !strings.HasPrefix(s, "tor.router(") || !strings.Contains(s, rs[7].Nickname) {
		t.Errorf("str() = %s", s)
	}
	if _, err := r.Hash(); err == nil {
		t.Error("a tor.router hashes")
	}
}
