package sim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl/ctltest"
	"github.com/torscript/torscript/runtime"
)

// runTestFile writes src to a test file (and the other files given) and
// runs it.
func runTestFile(t *testing.T, src string, files map[string]string) (string, []*TestResult) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "x_test.star")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := RunTests(context.Background(), path, []byte(src), runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return path, res
}

const perHost = `circuits = {}

def route(stream):
    c = circuits.get(stream.target_host)
    if c == None or c in stream.failed_circuits:
        c = tor.extend_circuit()
        circuits[stream.target_host] = c
    return c

tor.policy(route)
`

// TestRunTestsPass: a policy test that holds passes, each test with a
// fresh simulated tor (ids start again at 1).
func TestRunTestsPass(t *testing.T) {
	_, res := runTestFile(t, `
def test_one_circuit_per_host():
    p = sim.run("policy.star")
    assert.eq(sim.conf("__LeaveStreamsUnattached"), "1")
    a = sim.stream_new(target="a.example:443", source="127.0.0.1:5000")
    assert.eq(a, "1")
    c = sim.expect_extend()
    sim.expect_no_decision(a)
    sim.circ_built(c, path=["guard2", "middle2", "exit3"])
    sim.expect_attach(a, c)
    b = sim.stream_new(target="a.example:80")
    sim.expect_attach(b, c)
    other = sim.stream_new(target="b.example:80")
    d = sim.expect_extend()
    assert.ne(c, d)
    assert.eq(len(p.circuits), 2)

def test_failed_circuit_replaced():
    sim.run("policy.star")
    a = sim.stream_new(target="a.example:443")
    assert.eq(a, "1")
    c = sim.expect_extend()
    sim.circ_failed(c, reason="TIMEOUT")
    d = sim.expect_extend()
    assert.ne(c, d)
    sim.circ_built(d)
    sim.expect_attach(a, d)

def test_refusal_reply():
    tor.policy(lambda s: tor.close("EXITPOLICY") if s.target_port == 25 else None)
    sim.reply("ATTACHSTREAM", 555, "Connection is not managed by controller.")
    s = sim.stream_new(target="mail.example:25")
    sim.expect_close(s, "EXITPOLICY")
    s2 = sim.stream_new(target="web.example:80")
    sim.expect_attach(s2, None)

def test_stream_before_policy():
    # A controller died with __LeaveStreamsUnattached=1, leaving a stream
    # waiting (stream-status says circuit 0): the policy takes it over.
    tor.set_conf(__LeaveStreamsUnattached = "1")
    s = sim.stream_new(target = "early.example:80")
    tor.policy(lambda st: None)
    sim.expect_attach(s, None)

def test_socks_credentials():
    seen = []
    tor.policy(lambda s: seen.append((s.socks_username, s.socks_password)))
    sim.stream_new(target="a.example:80", socks_username="alice", socks_password="pw 1")
    sim.stream_new(target="a.example:80")
    assert.eq(seen, [("alice", "pw 1"), ("", "")])

def test_expected_failure_taken():
    tor.policy(lambda s: fail("policy boom"))
    s = sim.stream_new(target = "a.example:80")
    sim.expect_attach(s, None)  # on_error: tor chooses
    f = sim.failures()
    assert.eq(len(f), 1)
    assert.true(f[0].startswith("policy failed; on_error applies: "), f[0])
    assert.contains(f[0], "policy boom")
    assert.eq(sim.failures(), [])

def test_timers():
    ticks = []
    tor.every("10s", lambda: ticks.append(1))
    sim.advance("35s")
    assert.eq(len(ticks), 3)
    tor.after("1m", lambda: tor.signal("NEWNYM"))
    signals = []
    tor.on("signal", lambda e: signals.append(e.signal))
    sim.advance("59s")
    assert.eq([c for c in sim.commands() if c.startswith("SIGNAL")], [])
    sim.advance("1s")
    sim.expect_command("SIGNAL NEWNYM")
    assert.eq(signals, ["NEWNYM"])
`, map[string]string{"policy.star": perHost})
	for _, r := range res {
		if !r.Passed() {
			t.Errorf("%s failed:\n%s\noutput:\n%s", r.Name, strings.Join(r.Failures, "\n"), r.Output)
		}
	}
	if len(res) != 7 {
		t.Errorf("%d results", len(res))
	}
}

// TestRunTestsFail: a wrong expectation, a failed assert and an error each
// fail their test, led by the place in the test file.
func TestRunTestsFail(t *testing.T) {
	path, res := runTestFile(t, `
def test_wrong_expectation():
    sim.run("policy.star")
    s = sim.stream_new(target="a.example:443")
    c = sim.expect_extend()
    sim.circ_built(c)
    sim.expect_close(s, "EXITPOLICY")

def test_assert():
    assert.eq(1 + 1, 3)
    assert.true(False, "second")

def test_error():
    x = {}
    x["missing"]

def test_handler_fails():
    tor.on("circ", lambda c: fail("boom in a handler"))
    sim.circ_built()

def test_wrong_path():
    sim.run("pinned.star")
    sim.stream_new(target="a.example:443")
    sim.expect_extend(path = ["guard1", "middle1", "exit1"])
`, map[string]string{"policy.star": perHost, "pinned.star": "tor.policy(lambda s: tor.extend_circuit([\"guard2\", \"middle1\", \"exit3\"]))\n"})
	want := map[string][]string{
		"test_wrong_expectation": {path + ":7:21: sim.expect_close: want CLOSESTREAM 1 4 (EXITPOLICY); CLOSESTREAM commands not expected yet: none"},
		"test_assert":            {path + ":10:14: 2 != 3", path + ":11:16: second"},
		"test_error":             {path + ":15:6: key \"missing\" not in dict"},
		"test_handler_fails":     {"the script under test failed (sim.failures() takes a failure the test expects): handler failed: Traceback (most recent call last):"},
		// Relays named as the test names them, not by fingerprint.
		"test_wrong_path": {path + ":24:22: sim.expect_extend: want EXTENDCIRCUIT 0 through guard1,middle1,exit1; EXTENDCIRCUIT commands not expected yet: EXTENDCIRCUIT 0 through guard2,middle1,exit3"},
	}
	for _, r := range res {
		if r.Passed() {
			t.Errorf("%s passed", r.Name)
			continue
		}
		w := want[r.Name]
		if len(r.Failures) != len(w) {
			t.Errorf("%s: %d failures, want %d:\n%s", r.Name, len(r.Failures), len(w), strings.Join(r.Failures, "\n"))
			continue
		}
		for i, f := range r.Failures {
			if first, _, _ := strings.Cut(f, "\n"); first != w[i] {
				t.Errorf("%s: failure %d starts %q, want %q", r.Name, i, first, w[i])
			}
		}
	}
	var b strings.Builder
	if n := WriteTestReport(&b, path, res, false); n != 5 || !strings.Contains(b.String(), "FAIL test_assert ("+path+")") {
		t.Errorf("report (%d failed):\n%s", n, b.String())
	}
}

// TestReplay: a transcript's events replayed to the script that made it
// give the same decisions; a script that decides otherwise fails with the
// transcript line.
func TestReplay(t *testing.T) {
	const trace = `C: SETEVENTS CIRC STREAM
S: 250 OK
S: 650 STREAM 20 NEW 0 a.example:443 SOURCE_ADDR=127.0.0.1:5000 PURPOSE=USER
C: EXTENDCIRCUIT 0
S: 250 EXTENDED 31
S: 650 CIRC 31 LAUNCHED BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL
S: 650 CIRC 31 BUILT $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~a,$BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB~b,$CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC~c BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL
C: ATTACHSTREAM 20 31
S: 250 OK
S: 650 STREAM 20 SENTCONNECT 31 a.example:443
S: 650 STREAM 21 NEW 0 a.example:80 SOURCE_ADDR=127.0.0.1:5001 PURPOSE=USER
C: ATTACHSTREAM 21 31
S: 250 OK
S: 650 STREAM 22 NEW 0 b.example:80 SOURCE_ADDR=127.0.0.1:5002 PURPOSE=USER
C: EXTENDCIRCUIT 0
S: 250 EXTENDED 32
S: 650 CIRC 32 BUILT $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~a,$BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB~b,$CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC~c BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL
C: ATTACHSTREAM 22 32
S: 250 OK
`
	files := map[string]string{"policy.star": perHost, "run.trace": trace,
		"other.star": "tor.policy(lambda s: None)\n"}
	path, res := runTestFile(t, `
def test_same():
    sim.run("policy.star")
    assert.eq(sim.replay("run.trace"), 5)

def test_other():
    sim.run("other.star")
    sim.replay("run.trace")
`, files)
	if !res[0].Passed() {
		t.Errorf("test_same failed:\n%s\n%s", strings.Join(res[0].Failures, "\n"), res[0].Output)
	}
	if res[1].Passed() {
		t.Fatalf("test_other passed")
	}
	want := path + `:8:15: sim.replay: decision 1: the script sent "ATTACHSTREAM 20 0", the transcript has "EXTENDCIRCUIT 0" (line 4)`
	if first, _, _ := strings.Cut(res[1].Failures[0], "\n"); first != want {
		t.Errorf("test_other: %q\nwant %q", first, want)
	}
}

// TestReplayWithTrace: sim.run(..., trace=) answers the script's GETINFO
// and GETCONF from the transcript (the traced tor's relays and settings)
// and its decision commands with the recorded replies from the start, a
// circuit the top level asks for included; sim.replay() then uses that
// transcript. An EXTENDCIRCUIT is compared by circuit id and purpose, not
// by the relays drawn.
func TestReplayWithTrace(t *testing.T) {
	const trace = `C: GETINFO entry-guards
S: 250-entry-guards=$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~traced up
S: 250 OK
C: GETCONF EnforceDistinctSubnets
S: 250 EnforceDistinctSubnets=0
C: EXTENDCIRCUIT 0 $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,$BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB,$CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC
S: 250 EXTENDED 41
S: 650 CIRC 41 BUILT $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~a,$BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB~b,$CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC~c BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL
S: 650 STREAM 20 NEW 0 a.example:443 SOURCE_ADDR=127.0.0.1:5000 PURPOSE=USER
C: ATTACHSTREAM 20 41
S: 250 OK
`
	script := `
print("guards", tor.get_info("entry-guards"))
print("distinct", tor.get_conf("EnforceDistinctSubnets"))
ready = tor.extend_circuit(["guard1", "middle1", "exit1"])
tor.policy(lambda s: ready)
`
	files := map[string]string{"policy.star": script, "run.trace": trace}
	_, res := runTestFile(t, `
def test_trace():
    sim.run("policy.star", trace = "run.trace")
    assert.eq(sim.replay(), 2)

def test_no_trace():
    sim.run("policy.star")
    sim.replay()
`, files)
	if !res[0].Passed() {
		t.Errorf("test_trace failed:\n%s\n%s", strings.Join(res[0].Failures, "\n"), res[0].Output)
	}
	for _, want := range []string{"guards $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~traced up", "distinct 0"} {
		if !strings.Contains(res[0].Output, want) {
			t.Errorf("test_trace's output lacks %q:\n%s", want, res[0].Output)
		}
	}
	if res[1].Passed() || !strings.Contains(strings.Join(res[1].Failures, "\n"), "name a transcript, or give it to sim.run(..., trace=PATH)") {
		t.Errorf("test_no_trace: %v %q", res[1].Passed(), res[1].Failures)
	}
}

func TestRunTestsNoTests(t *testing.T) {
	_, err := RunTests(context.Background(), "x_test.star", []byte("x = 1\n"), runtime.Options{})
	if err == nil || !strings.Contains(err.Error(), "no test_ functions") {
		t.Errorf("got %v", err)
	}
	_, err = RunTests(context.Background(), "x_test.star", []byte("def test_x(:\n"), runtime.Options{})
	if err == nil || !strings.Contains(err.Error(), "x_test.star:1:") {
		t.Errorf("got %v", err)
	}
}

// TestRunTestsOverrun: a test that loops forever fails at its deadline,
// naming the line where it was; so does one whose script under test loops
// at its top level; the next test runs and passes.
func TestRunTestsOverrun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctltest.WriteFiles(t, dir, map[string]string{"spin.star": "x = 1\nwhile True:\n    pass\n"})
	path := filepath.Join(dir, "x_test.star")
	src := `def test_loops():
    while True:
        pass

def test_script_loops():
    sim.run("spin.star")

def test_passes():
    assert.eq(1, 1)
`
	start := time.Now()
	res, err := RunTests(context.Background(), path, []byte(src), runtime.Options{MaxSteps: 1e15, TopLevelTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("took %v", took)
	}
	if len(res) != 3 || res[0].Passed() || res[1].Passed() || !res[2].Passed() {
		for _, r := range res {
			t.Errorf("%s: %q", r.Name, r.Failures)
		}
		t.FailNow()
	}
	for i, want := range []string{
		path + ":3:9: Starlark computation cancelled: test test_loops ran longer than the test timeout (1s)",
		filepath.Join(dir, "spin.star") + ":3:5: in <toplevel>",
	} {
		if f := strings.Join(res[i].Failures, "\n"); !strings.Contains(f, want) {
			t.Errorf("%s: failure lacks %q:\n%s", res[i].Name, want, f)
		}
	}
}

// TestRunTestsWedged: a test blocked where cancellation cannot reach (one
// long comparison) is abandoned WedgeGrace after its deadline and fails;
// the next test runs.
func TestRunTestsWedged(t *testing.T) {
	t.Parallel()
	src := `def test_blocked():
    a, b = [], []
    for i in range(6):
        a, b = [a] * 20, [b] * 20
    while True:
        a == b

def test_passes():
    assert.eq(1, 1)
`
	start := time.Now()
	res, err := RunTests(context.Background(), "x_test.star", []byte(src), runtime.Options{MaxSteps: 1e15, TopLevelTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v", took)
	}
	if len(res) != 2 || res[0].Passed() || !res[1].Passed() {
		for _, r := range res {
			t.Errorf("%s: %q", r.Name, r.Failures)
		}
		t.FailNow()
	}
	if f := res[0].Failures[0]; !strings.Contains(f, "test test_blocked was stopped by its deadline but has not returned") {
		t.Errorf("failure: %s", f)
	}
}

// TestRunTestsInterrupted: RunTests returns soon after ctx ends, even in a
// test that loops.
func TestRunTestsInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := RunTests(ctx, "x_test.star", []byte("def test_loops():\n    while True:\n        pass\n"), runtime.Options{MaxSteps: 1e15, TopLevelTimeout: time.Hour})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("returned %v after an interrupt at 100ms", took)
	}
}

// TestLiveCircuitsInSimulation: tor.circuits() and its filters read the
// live state the runtime keeps from CIRC events, in creation order, and a
// circuit closed while the script iterates (the simulated tor's events are
// handled inside sim.circ_closed) is skipped when the loop reaches it.
func TestLiveCircuitsInSimulation(t *testing.T) {
	_, res := runTestFile(t, `
def test_circuits():
    ids = [sim.circ_built(path=["guard1", "middle1", "exit%d" % (1 + i % 3)]) for i in range(3000)]
    sim.circ_launched()
    assert.eq(len(tor.circuits()), 3001)
    assert.eq([c.id for c in tor.circuits()][:3000], ids)
    assert.eq(len(tor.circuits(status="launched")), 1)
    assert.eq([c.id for c in tor.circuits(exit="exit2")], ids[1::3])
    seen = []
    for c in tor.circuits(status="BUILT"):
        seen.append(c.id)
        if c.id == ids[0]:
            sim.circ_closed(ids[1])
            for i in range(3, 2500):
                sim.circ_closed(ids[i])
    assert.eq(seen, [ids[0], ids[2]] + ids[2500:])
    assert.eq(len(tor.circuits()), 503)
`, nil)
	if len(res) != 1 || !res[0].Passed() {
		t.Fatalf("results %+v", res[0])
	}
}
