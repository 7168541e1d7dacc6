package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
)

// TestWaitersOnRealTor: extend_circuit's on_built and add_onion's
// on_published are called from the private network's client's events, on
// the loop, without a handler of the script's own, and on_failed of a
// circuit the script closes before it is built says tor's reason
// (REQUESTED).
func TestWaitersOnRealTor(t *testing.T) {
	ctx := testCtx(t, 120*time.Second)
	n := testnet.Shared(t)
	rel, ex := n.Relays(), n.Exits()
	// An explicit path: without one tor may refuse (551 Couldn't start
	// circuit) while it has no exit it thinks usable for a general circuit.
	path := fmt.Sprintf("[%q, %q, %q]", "$"+rel[0].Fingerprint, "$"+rel[1].Fingerprint, "$"+ex[0].Fingerprint)
	src := `
PATH = ` + path + `
done = []
def end(what):
    print(what)
    done.append(what)
    if len(done) == 3:
        exit(0)
def built(c):
    end("built %s %s" % (c.status, len(c.path)))
    tor.close_circuit(c)
tries = [0]
def retry(id, reason):
    # Tor's circuit build timeout can fail a circuit of the busy private
    # network (CI saw it once): on_failed says so, and another try is made.
    tries[0] += 1
    if reason.startswith("TIMEOUT") and tries[0] < 3:
        print("retrying after", reason)
        build()
    else:
        end("unexpected failure " + reason)
def build():
    tor.extend_circuit(PATH, on_built = built, on_failed = retry)
build()
svc = tor.add_onion({80: 8080}, on_published = lambda s: end("published " + str(s.service_id == svc.service_id)), timeout = "100s")
def failed(id, reason):
    end("failed " + reason)
tor.extend_circuit(PATH, on_built = lambda c: tor.close_circuit(c), on_failed = None)
closes = [0]
def close_early():
    c = tor.extend_circuit(PATH, on_built = built_first, on_failed = failed)
    tor.close_circuit(c)
def built_first(c):
    # Built before the close reached tor (a busy machine: CI saw it once,
    # and with no on_built the wait ended there, silently): again.
    closes[0] += 1
    if closes[0] < 3:
        print("built before it was closed; again")
        close_early()
    else:
        end("unexpected: built before it was closed, three times")
close_early()
`
	out, err := cli(ctx, t, "eval", src).CombinedOutput()
	if err != nil {
		t.Fatalf("torscript eval: %v\n%s", err, out)
	}
	got := string(out)
	for _, line := range []string{"built BUILT 3", "published True", "failed REQUESTED"} {
		if !strings.Contains(got, line) {
			t.Errorf("output lacks %q:\n%s", line, got)
		}
	}
	if strings.Contains(got, "unexpected") {
		t.Errorf("a callback was called that should not be:\n%s", got)
	}
}

// TestStatusOnRealTor: tor.status() on the private network's client says
// what the network knows of it: its pid, its SocksPort and ControlPort,
// bootstrap done, no fingerprint (a client), no accounting; tor.version
// reads tor 0.4.9 by tor's rules.
func TestStatusOnRealTor(t *testing.T) {
	n := testnet.Shared(t)
	ctx := testCtx(t, 60*time.Second)
	src := `
st = tor.status()
print("version", st.version.startswith("0.4."), "pid", st.pid, "up", st.uptime.seconds > 0)
print("boot", st.bootstrap.progress, st.bootstrap.tag)
print("socks", st.listeners["socks"], "control", len(st.listeners["control"]))
print("relay", repr(st.fingerprint), "accounting", st.accounting, "torrc", st.config_file != "")
print("traffic", st.traffic_read > 0, st.traffic_write > 0)
print("tor.version", tor.version.at_least("0.4.8"), tor.version >= tor.parse_version(st.version), tor.version.major)
`
	out, err := cli(ctx, t, "eval", src).CombinedOutput()
	if err != nil {
		t.Fatalf("torscript eval: %v\n%s", err, out)
	}
	got := string(out)
	for _, line := range []string{
		fmt.Sprintf("version True pid %d up True", n.Client.PID),
		"boot 100 done",
		fmt.Sprintf(`socks ("%s",) control 1`, n.SocksAddr()),
		`relay "" accounting None torrc True`,
		"traffic True True",
		"tor.version True True 0",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("output lacks %q:\n%s", line, got)
		}
	}
}
