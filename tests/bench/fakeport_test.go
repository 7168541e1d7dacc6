package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/ctl/ctltest"
)

func newFake(t *testing.T) *ctltest.FakeControlPort {
	t.Helper()
	f, err := ctltest.NewFakeControlPort()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestFakeControlPortCtl drives the fake with ctl's client: authentication,
// parsed answers, and events interleaved with replies.
func TestFakeControlPortCtl(t *testing.T) {
	f := newFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ctl.Dial(ctx, f.Addr(), ctl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pi, err := c.Authenticate(ctx, ctl.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	if pi.TorVersion != ctltest.FakeTorVersion {
		t.Errorf("PROTOCOLINFO version %q", pi.TorVersion)
	}
	circs, err := c.Circuits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(circs) != 1 || circs[0].ID != "1" || len(circs[0].Path) != 3 {
		t.Errorf("circuits: %+v", circs)
	}
	streams, err := c.Streams(ctx)
	if err != nil || len(streams) != 0 {
		t.Errorf("streams: %v, %v", streams, err)
	}
	conf, err := c.GetConf(ctx, "__LeaveStreamsUnattached", "SocksPort")
	if err != nil || len(conf) != 2 {
		t.Errorf("GETCONF: %v, %v", conf, err)
	}
	if err := c.SetEvents(ctx, "STREAM"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.WaitCommand(0, 5*time.Second, nil, func(c ctltest.Command) bool { return c.Keyword() == "SETEVENTS" }); err != nil {
		t.Fatal(err)
	}

	// Events while commands are in flight: each arrives whole and in order.
	const n = 500
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var buf []byte
		for i := range n {
			buf = appendStreamNew(buf[:0], i)
			if err := f.Send(buf); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 50 {
		if v, err := c.GetInfoOne(ctx, "version"); err != nil || v != ctltest.FakeTorVersion {
			t.Fatalf("GETINFO version: %q, %v", v, err)
		}
	}
	wg.Wait()
	for i := range n {
		select {
		case ev := <-c.Events():
			se, ok := ev.(*ctl.StreamEvent)
			if !ok || se.ID != strconv.Itoa(i) || se.Status != ctl.StreamNew || se.TargetPort != 80 {
				t.Fatalf("event %d: %#v", i, ev)
			}
		case <-ctx.Done():
			t.Fatalf("event %d did not arrive", i)
		}
	}
}

// startBaseline runs baselineController against a fresh fake and waits
// until it has subscribed.
func startBaseline(t *testing.T) (*ctltest.FakeControlPort, <-chan struct{}) {
	t.Helper()
	f := newFake(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := baselineController(ctx, f.Addr()); err != nil {
			t.Errorf("baseline controller: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	if _, _, err := f.WaitCommand(0, 5*time.Second, done, func(c ctltest.Command) bool {
		return c.Keyword() == "SETEVENTS" && c.HasArg("STREAM")
	}); err != nil {
		t.Fatal(err)
	}
	return f, done
}

func TestClosedLoop(t *testing.T) {
	for _, split := range []bool{false, true} {
		t.Run(map[bool]string{false: "one-write", true: "split"}[split], func(t *testing.T) { testClosedLoop(t, split) })
	}
}

func testClosedLoop(t *testing.T, split bool) {
	f, done := startBaseline(t)
	from := f.Len()
	lat, wall, err := closedLoop(f, done, 1, 300, split)
	if err != nil {
		t.Fatal(err)
	}
	if len(lat) != 300 || wall <= 0 {
		t.Fatalf("%d latencies in %v", len(lat), wall)
	}
	for i, l := range lat {
		if l <= 0 {
			t.Errorf("latency %d is %v", i, l)
		}
	}
	cmds := f.Commands()[from:]
	if len(cmds) != 300 || cmds[0].Line != "ATTACHSTREAM 1 1" || cmds[299].Line != "ATTACHSTREAM 300 1" {
		t.Errorf("commands: %d, first %v", len(cmds), cmds[:min(3, len(cmds))])
	}
	figs := closedLoopFigures(lat, wall)
	if len(figs) != 6 || figs[5].Name != "rate" || figs[5].Value <= 0 {
		t.Errorf("figures: %+v", figs)
	}
}

// rawClient is the least client: it writes bytes and reads lines.
type rawClient struct {
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, f *ctltest.FakeControlPort) *rawClient {
	t.Helper()
	c, err := f.Dial()
	if err == nil {
		t.Cleanup(func() { c.Close() })
		err = c.SetDeadline(time.Now().Add(10 * time.Second))
	}
	if err != nil {
		t.Fatal(err)
	}
	return &rawClient{c: c, br: bufio.NewReader(c)}
}

// TestClosedLoopWrites checks what the controller reads after its
// ATTACHSTREAM: the reply, the stream's SUCCEEDED and CLOSED, then the next
// NEW; without split all in one write, so one read returns it whole (with
// split the kernel may join the two writes, so only the order is checked).
func TestClosedLoopWrites(t *testing.T) {
	for _, split := range []bool{false, true} {
		f := newFake(t)
		rc := dialRaw(t, f)
		<-f.Connected()
		got := make(chan string, 1)
		go func() {
			var b strings.Builder
			defer func() { got <- b.String() }()
			line, err := rc.br.ReadString('\n')
			if err != nil || !strings.Contains(line, "STREAM 1 NEW") {
				return
			}
			io.WriteString(rc.c, "ATTACHSTREAM 1 1\r\n")
			if split {
				for !strings.Contains(line, "STREAM 2 NEW") {
					if line, err = rc.br.ReadString('\n'); err != nil {
						return
					}
					b.WriteString(line)
				}
			} else {
				chunk := make([]byte, 4096)
				n, _ := rc.br.Read(chunk)
				b.Write(chunk[:n])
			}
			io.WriteString(rc.c, "ATTACHSTREAM 2 1\r\n")
		}()
		if _, _, err := closedLoop(f, nil, 1, 2, split); err != nil {
			t.Fatalf("split %v: %v; controller read %q", split, err, <-got)
		}
		want := "250 OK\r\n650 STREAM 1 SUCCEEDED 1 example.com:80\r\n650 STREAM 1 CLOSED 1 example.com:80 REASON=DONE\r\n" +
			"650 STREAM 2 NEW 0 example.com:80 SOURCE_ADDR=127.0.0.1:10002 PURPOSE=USER\r\n"
		if g := <-got; g != want {
			t.Errorf("split %v: read\n%q\nwant\n%q", split, g, want)
		}
	}
}

// TestClosedLoopWrongAttach checks that a controller attaching the wrong
// stream fails the loop.
func TestClosedLoopWrongAttach(t *testing.T) {
	f := newFake(t)
	rc := dialRaw(t, f)
	<-f.Connected()
	go func() {
		line, err := rc.br.ReadString('\n')
		if err != nil || !strings.Contains(line, "STREAM 1 NEW") {
			return
		}
		io.WriteString(rc.c, "ATTACHSTREAM 2 1\r\n")
	}()
	if _, _, err := closedLoop(f, nil, 1, 1, false); err == nil || !strings.Contains(err.Error(), "want ATTACHSTREAM 1 1") {
		t.Errorf("closedLoop: %v", err)
	}
}

func TestOpenLoop(t *testing.T) {
	f, done := startBaseline(t)
	res, err := openLoop(f, done, 1, 2000, 250*time.Millisecond, 50*time.Microsecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.sent != 500 || res.attached != 500 || res.dup != 0 || res.wrong != 0 || len(res.lat) != 500 {
		t.Errorf("sent %d attached %d dup %d wrong %d lat %d", res.sent, res.attached, res.dup, res.wrong, len(res.lat))
	}
	if res.writes < 2 {
		t.Errorf("%d writes: not paced", res.writes)
	}
}

// TestWriteEvents checks the events measurement's stream: whole events, in
// the round-robin order.
func TestWriteEvents(t *testing.T) {
	f := newFake(t)
	c, err := ctl.Dial(context.Background(), f.Addr(), ctl.Options{EventBacklog: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-f.Connected()
	const m = 10001
	go func() {
		if err := writeEvents(f, m, 4096); err != nil {
			t.Error(err)
		}
	}()
	want := []string{"CIRC", "STREAM", "BW", "ORCONN"}
	timeout := time.After(10 * time.Second)
	for i := range m {
		select {
		case ev := <-c.Events():
			if _, unknown := ev.(*ctl.UnknownEvent); unknown || ev.EventType() != want[i%4] {
				t.Fatalf("event %d: %#v, want %s", i, ev, want[i%4])
			}
		case <-timeout:
			t.Fatalf("only %d of %d events arrived", i, m)
		}
	}
}

func TestPercentile(t *testing.T) {
	var l latencies
	for i := 1; i <= 1000; i++ {
		l = append(l, time.Duration(i)*time.Microsecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 500 * time.Microsecond}, {99, 990 * time.Microsecond}, {99.9, 999 * time.Microsecond}, {100, 1000 * time.Microsecond}, {0.01, time.Microsecond}} {
		if got := l.percentile(c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := (latencies{}).percentile(50); got != 0 {
		t.Errorf("empty p50 = %v", got)
	}
	if got := thousands(1234567); got != "1,234,567" {
		t.Errorf("thousands: %s", got)
	}
	f := fig("p50", 61.25, "µs").atMost(60)
	if f.verdict() != "MISS" || f.value() != "61.2 µs" || f.target() != "≤ 60.0 µs" {
		t.Errorf("figure: %q %q %q", f.value(), f.target(), f.verdict())
	}
	g := fig("rate", 1_234_567.8, "events/s").atLeast(1_000_000)
	if g.verdict() != "PASS" || g.value() != "1,234,568 events/s" || g.target() != "≥ 1,000,000 events/s" {
		t.Errorf("figure: %q %q %q", g.value(), g.target(), g.verdict())
	}
}

// TestMain lets the test binary be baseline-go-proc's Go controller and
// the stall watch's sleepers, as the bench binary is.
func TestMain(m *testing.M) {
	if addr := os.Getenv(goControllerEnv); addr != "" {
		os.Exit(goControllerMain(addr))
	}
	if spec := os.Getenv(goEventsEnv); spec != "" {
		os.Exit(goEventsMain(spec))
	}
	if cpu := os.Getenv(stallWatchEnv); cpu != "" {
		os.Exit(stallSleeperMain(cpu))
	}
	os.Exit(m.Run())
}

// TestMainRun runs the command with the measurements that need no
// torscript.
func TestMainRun(t *testing.T) {
	var out, errOut bytes.Buffer
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	code := mainRun([]string{"-only", "loopback,baseline-go,baseline-go-proc", "-n", "300", "-warmup", "10", "-json", jsonPath}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"FAKE control port", "loopback p50", "baseline-go rate", "baseline-go-proc rate", "0 FAILED"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil || !bytes.Contains(b, []byte(`"name": "baseline-go"`)) {
		t.Errorf("JSON: %v\n%s", err, b)
	}
	if code := mainRun([]string{"-only", "nonesuch"}, &out, &errOut); code != 2 {
		t.Errorf("-only nonesuch: exit %d", code)
	}
}

// TestScripts checks that the scripts are the ones the measurements
// expect.
func TestScripts(t *testing.T) {
	dir := t.TempDir()
	if err := writeScripts(dir); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"policy.star":  `return "1"`,
		"events.star":  `tor.get_info("bench/done")`,
		"startup.star": `tor.get_info("version")`,
	} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s: %v\n%s", name, err, b)
		}
	}
}

func TestDroppedLogged(t *testing.T) {
	log := `time=x level=WARN msg="event consumer is behind; dropping high-volume events" dropped=1 type=BW
time=x level=WARN msg="event consumer is behind; dropping high-volume events" dropped=512 type=BW
time=x level=WARN msg="something else" dropped=9999`
	if n := droppedLogged(log); n != 512 {
		t.Errorf("droppedLogged = %d, want 512", n)
	}
	if n := droppedLogged(""); n != 0 {
		t.Errorf("droppedLogged of nothing = %d", n)
	}
}

// TestRatios checks that binary-over-go-inproc, the binary over the
// in-process baseline, is printed without a target, and that vs-go and
// vs-go-inproc, from their two controllers' latencies, set the exit
// status.
func TestRatios(t *testing.T) {
	res := func(name string, p50, p99 float64) *Result {
		return &Result{Name: name, Figures: []Figure{fig("p50", p50, "µs"), fig("p99", p99, "µs")}}
	}
	rs := ratios([]*Result{res("attach-closed", 60, 150), res("baseline-go-proc", 50, 100), res("baseline-go", 30, 100)})
	if len(rs) != 1 || rs[0].Name != "binary-over-go-inproc" {
		t.Fatalf("ratios: %+v", rs)
	}
	if v := rs[0].Figures[0]; v.Value != 2 || v.Pass != nil {
		t.Errorf("binary-over-go-inproc p50-ratio %v %s, want 2 without a verdict", v.Value, v.verdict())
	}
	if missed(rs, "binary-over-go-inproc") {
		t.Error("binary-over-go-inproc counted as missed")
	}
	if rs := ratios([]*Result{res("baseline-go", 50, 100)}); rs != nil {
		t.Errorf("ratios without attach-closed: %+v", rs)
	}
	failed := res("baseline-go", 50, 100)
	failed.Error = "did not run"
	if rs := ratios([]*Result{res("attach-closed", 60, 150), failed}); len(rs) != 0 {
		t.Errorf("ratios over a failed baseline: %+v", rs)
	}

	lat := func(p50, p99 time.Duration) latencies {
		// 100 latencies: 50 at p50, 49 between, one at p99 and above
		var l latencies
		for i := range 100 {
			switch {
			case i <= 50:
				l = append(l, p50)
			case i < 99:
				l = append(l, (p50+p99)/2)
			default:
				l = append(l, p99)
			}
		}
		return l
	}
	pass := &Result{Name: "vs-go", Figures: vsGoFigures(lat(60*time.Microsecond, 150*time.Microsecond), lat(50*time.Microsecond, 100*time.Microsecond))}
	if v := pass.Figures[0]; math.Abs(v.Value-1.2) > 1e-9 || v.verdict() != "PASS" || missed([]*Result{pass}, "vs-go") {
		t.Errorf("vs-go p50-ratio %v %s, want 1.2 PASS", v.Value, v.verdict())
	}
	miss := &Result{Name: "vs-go", Figures: vsGoFigures(lat(70*time.Microsecond, 150*time.Microsecond), lat(50*time.Microsecond, 100*time.Microsecond))}
	if !missed([]*Result{miss}, "vs-go") {
		t.Errorf("p50 1.4 ×: vs-go not missed: %+v", miss.Figures)
	}
	// The exit status follows either ratio, and not the binary's over
	// the in-process baseline.
	inproc := func(r *Result) *Result { return &Result{Name: "vs-go-inproc", Figures: r.Figures} }
	for _, c := range []struct {
		results []*Result
		want    bool
	}{
		{[]*Result{pass, inproc(pass)}, false},
		{[]*Result{miss, inproc(pass)}, true},
		{[]*Result{pass, inproc(miss)}, true},
		{append([]*Result{pass, inproc(pass)}, rs...), false},
	} {
		if got := ratioTargetMissed(c.results); got != c.want {
			t.Errorf("ratioTargetMissed(%s) = %v, want %v", resultNames(c.results), got, c.want)
		}
	}
}

func resultNames(rs []*Result) string {
	var n []string
	for _, r := range rs {
		v := "PASS"
		if missed([]*Result{r}, r.Name) {
			v = "MISS"
		}
		n = append(n, r.Name+" "+v)
	}
	return strings.Join(n, ", ")
}

// TestVsGoInproc runs vs-go-inproc small: both controllers attach every
// stream in the bench's process, and the Go runtime's settings are back
// as they were afterwards.
func TestVsGoInproc(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	b := &bench{cfg: config{closedN: 200, warmup: 10}, dir: t.TempDir()}
	r := &Result{Name: "vs-go-inproc"}
	if err := b.vsGoInproc(r); err != nil {
		t.Fatal(err)
	}
	if got := runtime.GOMAXPROCS(0); got != procs {
		t.Errorf("GOMAXPROCS %d after vs-go-inproc, was %d", got, procs)
	}
	got := map[string]float64{}
	for _, f := range r.Figures {
		got[f.Name] = f.Value
	}
	for _, name := range []string{"p50-ratio", "p99-ratio", "torscript-p50", "go-p50"} {
		if got[name] <= 0 {
			t.Errorf("%s = %v; figures %+v", name, got[name], r.Figures)
		}
	}
	if math.Abs(got["p50-ratio"]-got["torscript-p50"]/got["go-p50"]) > 0.01*got["p50-ratio"] {
		t.Errorf("p50-ratio %v, torscript-p50 %v over go-p50 %v", got["p50-ratio"], got["torscript-p50"], got["go-p50"])
	}
}
