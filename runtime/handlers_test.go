package runtime

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/ctl/ctltest"
)

// TestHandlerSubscribes: tor.on subscribes to exactly the events handlers
// need, and a policy adds CIRC and STREAM.
func TestHandlerSubscribes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"circ", `tor.on("circ", print)`, []string{"SETEVENTS CIRC"}},
		{"two", `tor.on("bw", print); tor.on("STREAM", print)`, []string{"SETEVENTS BW", "SETEVENTS BW STREAM"}},
		{"same twice", `tor.on("bw", print); tor.on("bw", print)`, []string{"SETEVENTS BW"}},
		{"with policy", `tor.on("orconn", print)` + "\n" + policyScript("return None", ""), []string{"SETEVENTS ORCONN", "SETEVENTS CIRC ORCONN STREAM"}},
		{"policy first", policyScript("return None", "") + "\ntor.on(\"circ\", print)\ntor.on(\"bw\", print)", []string{"SETEVENTS CIRC", "SETEVENTS BW CIRC", "SETEVENTS BW CIRC STREAM"}},
		{"circuits()", `tor.circuits(); tor.on("bw", print)`, []string{"SETEVENTS CIRC STREAM", "SETEVENTS BW CIRC STREAM"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newTestTor(t)
			r := startScript(t, f, tc.src, Options{})
			f.WaitCommand(tc.want[len(tc.want)-1])
			if strings.Contains(tc.src, "tor.policy") {
				r.started()
			}
			code, err := r.stop()
			checkExit(t, r, code, err, 0)
			checkLines(t, "SETEVENTS", f.Lines("SETEVENTS"), tc.want)
		})
	}
}

// TestHandlerCircuitValues: a "circ" handler gets tor.circuit values.
func TestHandlerCircuitValues(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	r := startScript(t, f, `
def on_circ(c):
    print(type(c), c.id, c.status, c.built, c.purpose, [h.nickname for h in c.path], c.event)
tor.on("circ", on_circ)
`, Options{})
	f.WaitCommand("SETEVENTS CIRC")
	f.Event("CIRC 9 LAUNCHED BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL",
		"CIRC 9 BUILT "+fpA+","+fpB+","+fpC+" BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL")
	r.waitOut(`tor.circuit 9 BUILT True GENERAL ["guard", "middle", "exit"] CIRC`)
	r.stop()
	if want := "tor.circuit 9 LAUNCHED False GENERAL [] CIRC\n"; !strings.HasPrefix(r.out.String(), want) {
		t.Errorf("stdout %q, want it to start with %q", r.out.String(), want)
	}
}

// TestHandlerKeepsItsArguments: handler calls share one argument tuple,
// which a handler taking *args, or a builtin handler, must not see
// change under it.
func TestHandlerKeepsItsArguments(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	r := startScript(t, f, `
kept = []
def on_circ(*args):
    kept.append(args)
    if len(kept) == 3:
        print([a[0].id for a in kept])
tor.on("circ", on_circ)
`, Options{})
	f.WaitCommand("SETEVENTS CIRC")
	f.Event("CIRC 1 LAUNCHED", "CIRC 2 LAUNCHED", "CIRC 3 LAUNCHED")
	r.waitOut(`["1", "2", "3"]`)
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
}

// TestHandlerUnknownEvent: tor.on with a name tor does not have fails the
// script before anything is subscribed.
func TestHandlerUnknownEvent(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	r := startScript(t, f, `tor.on("nope", print)`, Options{})
	code, err := r.wait(5 * time.Second)
	if code != 1 || err == nil || !strings.Contains(err.Error(), `unknown event "nope"`) {
		t.Fatalf("Run = %d, %v; want 1 and an unknown event error", code, err)
	}
	if l := f.Lines("SETEVENTS"); len(l) > 0 {
		t.Errorf("subscribed: %q", l)
	}
}

// TestHandlerFailureIsolated: a handler that raises is logged with its
// backtrace; the other handlers, and later events, keep running.
func TestHandlerFailureIsolated(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	r := startScript(t, f, `
def bad(c):
    1 // 0
def good(c):
    print("good", c.id)
tor.on("circ", bad)
tor.on("circ", good)
`, Options{})
	f.WaitCommand("SETEVENTS CIRC")
	f.Event("CIRC 1 LAUNCHED", "CIRC 2 LAUNCHED")
	r.waitOut("good 2")
	r.stop()
	if got := r.out.String(); got != "good 1\ngood 2\n" {
		t.Errorf("stdout %q", got)
	}
	log := r.log.String()
	for _, s := range []string{"handler failed", "handler=bad", "x.star:3:", "division by zero"} {
		if !strings.Contains(log, s) {
			t.Errorf("log lacks %q:\n%s", s, log)
		}
	}
	if strings.Count(log, "handler failed") != 2 {
		t.Errorf("want 2 failures logged:\n%s", log)
	}
}

// TestHandlerGlobalsMutable: the main script's globals stay mutable: a
// handler updates a dict that a timer reads.
func TestHandlerGlobalsMutable(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	r := startScript(t, f, `
seen = {}
def on_circ(c):
    seen[c.id] = c.status
def report():
    if seen:
        print(sorted(seen.items()))
tor.on("circ", on_circ)
tor.every("20ms", report)
`, Options{})
	f.WaitCommand("SETEVENTS CIRC")
	f.Event("CIRC 1 LAUNCHED", "CIRC 2 BUILT "+fpA)
	r.waitOut(`[("1", "LAUNCHED"), ("2", "BUILT")]`)
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
	if strings.Contains(r.log.String(), "frozen") {
		t.Errorf("log:\n%s", r.log.String())
	}
}

// TestTimers: tor.every and tor.after fire; timer.cancel() stops them.
func TestTimers(t *testing.T) {
	t.Parallel()
	r := startScript(t, nil, `
n = [0]
def tick():
    n[0] += 1
    print("tick", n[0])
    if n[0] == 3:
        every.cancel()
every = tor.every("10ms", tick)
tor.after("20ms", lambda: print("after"))
never = tor.after("30ms", lambda: print("never"))
never.cancel()
print(every, never)
`, Options{})
	r.waitOut("tick 3")
	r.waitOut("after")
	time.Sleep(100 * time.Millisecond)
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
	out := r.out.String()
	if !strings.HasPrefix(out, "<timer every 10ms> <timer after 30ms>\n") {
		t.Errorf("stdout %q", out)
	}
	if strings.Contains(out, "tick 4") || strings.Contains(out, "never") || strings.Count(out, "\nafter\n") != 1 {
		t.Errorf("a cancelled or finished timer fired:\n%s", out)
	}
}

// TestTimerFailureLogged: a failing timer is logged and keeps its schedule.
func TestTimerFailureLogged(t *testing.T) {
	t.Parallel()
	r := startScript(t, nil, `
n = [0]
def tick():
    n[0] += 1
    if n[0] == 3:
        exit(0)
    fail("tick %d" % n[0])
tor.every("10ms", tick)
`, Options{})
	code, err := r.wait(5 * time.Second)
	checkExit(t, r, code, err, 0)
	log := r.log.String()
	for _, s := range []string{"timer failed", "tick 1", "tick 2", "x.star:7:"} {
		if !strings.Contains(log, s) {
			t.Errorf("log lacks %q:\n%s", s, log)
		}
	}
}

// TestRunEndsAfterTopLevel: a script with no handler, timer or policy
// ends right after its top level.
func TestRunEndsAfterTopLevel(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	start := time.Now()
	r := startScript(t, f, `print("hello", argv)`, Options{Args: []string{"a", "b"}})
	code, err := r.wait(2 * time.Second)
	checkExit(t, r, code, err, 0)
	if d := time.Since(start); d > time.Second {
		t.Errorf("Run took %v", d)
	}
	if got := r.out.String(); got != `hello ["x.star", "a", "b"]`+"\n" {
		t.Errorf("stdout %q", got)
	}
	if l := f.Lines(); len(l) > 0 {
		t.Errorf("commands sent: %q", l)
	}
}

// TestRunTopLevelError: an error in the top level ends Run with code 1
// (3 for a refusal from tor) and the error.
func TestRunTopLevelError(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	r := startScript(t, f, "x = 1\nfail(\"top\")\n", Options{})
	code, err := r.wait(2 * time.Second)
	if code != 1 || err == nil || !strings.Contains(FormatError(err), "x.star:2:5: in <toplevel>") {
		t.Errorf("Run = %d, %v", code, err)
	}
	r = startScript(t, f, "exit(7)", Options{})
	code, err = r.wait(2 * time.Second)
	checkExit(t, r, code, err, 7)
	r = startScript(t, f, "exit(300)", Options{})
	code, err = r.wait(2 * time.Second)
	if code != 1 || err == nil || !strings.Contains(err.Error(), "want 0-125") {
		t.Errorf("exit(300): Run = %d, %v", code, err)
	}
}

// TestHandlerCommandError: a builtin failing with tor's refusal in the top
// level gives exit code 3 and prints its name once.
func TestHandlerCommandError(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	r := startScript(t, f, "\ntor.get_info(\"nope\")\n", Options{})
	code, err := r.wait(2 * time.Second)
	if code != 3 || err == nil {
		t.Fatalf("Run = %d, %v; want 3", code, err)
	}
	msg := FormatError(err)
	if !strings.Contains(msg, "Error in tor.get_info: 552 Unrecognized key \"nope\"") || strings.Count(msg, "tor.get_info:") != 1 {
		t.Errorf("FormatError:\n%s", msg)
	}
	if !strings.Contains(msg, "x.star:2:13: in <toplevel>") {
		t.Errorf("FormatError has no position:\n%s", msg)
	}
}

// TestRunConnectFails: a script that cannot reach tor ends with code 4
// before it runs.
func TestRunConnectFails(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	f.FailDials(1)
	r := startScript(t, f, `print("ran")`, Options{})
	code, err := r.wait(2 * time.Second)
	if code != 4 || err == nil {
		t.Errorf("Run = %d, %v; want 4", code, err)
	}
	if r.out.String() != "" {
		t.Errorf("the script ran: %q", r.out.String())
	}
	// A script that does not compile does not even connect.
	r = startScript(t, f, `print(`, Options{})
	code, _ = r.wait(2 * time.Second)
	if code != 1 || f.ConnectCount() != 1 {
		t.Errorf("Run = %d after %d connects; want 1 after 1", code, f.ConnectCount())
	}
}

// TestRunBootstrap: with Options.Bootstrap, Run waits for tor to finish
// bootstrapping before it runs the script.
func TestRunBootstrap(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	f.ReplyLine("GETINFO status/bootstrap-phase", `250-status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=50 TAG=loading_descriptors SUMMARY="Loading relay descriptors"`+"\n250 OK")
	progress := &ctltest.SyncBuffer{}
	r := startScript(t, f, `print("ran")`, Options{Bootstrap: progress})
	f.WaitCommand("GETINFO status/bootstrap-phase")
	time.Sleep(50 * time.Millisecond)
	if r.out.String() != "" {
		t.Fatalf("the script ran before tor bootstrapped")
	}
	f.Event(`STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=75 TAG=enough_dirinfo SUMMARY="Loaded enough directory info to build circuits"`,
		`STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`)
	code, err := r.wait(5 * time.Second)
	checkExit(t, r, code, err, 0)
	if r.out.String() != "ran\n" {
		t.Errorf("stdout %q", r.out.String())
	}
	want := "waiting for tor to bootstrap: 50% loading_descriptors: Loading relay descriptors\n" +
		"waiting for tor to bootstrap: 75% enough_dirinfo: Loaded enough directory info to build circuits\n" +
		"waiting for tor to bootstrap: 100% done: Done\n"
	if progress.String() != want {
		t.Errorf("progress:\n%s\nwant:\n%s", progress.String(), want)
	}
	checkLines(t, "commands", f.Lines(), []string{"SETEVENTS STATUS_CLIENT", "GETINFO status/bootstrap-phase", "SETEVENTS"})
}

// TestSlowHandlerLosesNothing: a handler far slower than the events come
// sees every one of them, in order: the connection's reader stops and
// leaves the rest waiting (in the simulated tor) instead of queueing them
// without bound or dropping any, BW included.
func TestSlowHandlerLosesNothing(t *testing.T) {
	t.Parallel()
	const n = 30000
	f := newTestTor(t)
	f.SetConnOptions(ctl.Options{Logger: discardLogger(), EventBytes: 256 << 10}) // stop at 16 KiB queued
	r := startScript(t, f, `
seen = []
def slow(n):
    x = 0
    for i in range(100):
        x += i
    seen.append(n)
    if len(seen) == `+strconv.Itoa(n)+`:
        print("in order", seen == list(range(`+strconv.Itoa(n)+`)))
tor.on("bw", lambda e: slow(e.read))
tor.on("stream", lambda e: slow(int(e.id)))
print("ready")
`, Options{MaxSteps: 1e12})
	// Not before SETEVENTS has its answer: while a command waits for its
	// reply the reader reads past its bound and may drop BW events (by
	// design, so that the reply is not stuck behind them).
	r.waitOut("ready")
	lines := make([]string, n)
	for i := range lines {
		if i%2 == 0 {
			lines[i] = fmt.Sprintf("BW %d 0", i)
		} else {
			lines[i] = fmt.Sprintf("STREAM %d SUCCEEDED 5 example.com:443", i)
		}
	}
	go func() {
		// In writes of 1,000: each blocks while torscript's reader waits,
		// and the simulated tor gives a write 5 s (the race detector makes
		// the handler take longer than that for all 30,000).
		for i := 0; i < n; i += 1000 {
			f.Event(lines[i:min(i+1000, n)]...)
		}
	}()
	r.waitOutWithin("in order True", 60*time.Second)
	c := r.rt.conn
	if c.DroppedEvents() != 0 || c.Stalls() == 0 {
		t.Errorf("%d events dropped, reader stalled %d times; want none dropped and stalls", c.DroppedEvents(), c.Stalls())
	}
}

// TestHandlerCancel: tor.on's handler.cancel() and tor.off stop the calls
// and unsubscribe from an event no handler needs; the other handlers of
// the same event go on.
func TestHandlerCancel(t *testing.T) {
	t.Parallel()
	f := newTestTor(t)
	r := startScript(t, f, `
seen = []
def once(c):
    seen.append("once " + c.id)
    h.cancel()
def always(c):
    seen.append("always " + c.id)
    if c.id == "3":
        print(seen)
        print("off", tor.off("circ", always), tor.off("circ", always))
h = tor.on("circ", once)
tor.on("circ", always)
`, Options{})
	f.WaitCommand("SETEVENTS CIRC")
	f.Event("CIRC 1 LAUNCHED", "CIRC 2 LAUNCHED", "CIRC 3 LAUNCHED")
	r.waitOut(`["once 1", "always 1", "always 2", "always 3"]`)
	r.waitOut("off 1 0")
	f.WaitCommand("SETEVENTS") // no handler left: unsubscribed
	code, err := r.stop()
	checkExit(t, r, code, err, 0)
}
