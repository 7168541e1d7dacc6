package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
	"github.com/torscript/torscript/ctl"
)

// firstBuiltPolicy is the README's first_built, the most ordinary policy
// there is as users write it: the first BUILT GENERAL circuit that
// tor.circuits() lists (in the order the circuits were created) that
// leaves through an exit (neither ONEHOP_TUNNEL nor IS_INTERNAL) and has
// not failed the stream, else tor's choice.
const firstBuiltPolicy = `
def first_built(stream):
    for c in tor.circuits(status = "BUILT", purpose = "GENERAL"):
        if c.id in stream.failed_circuits or "ONEHOP_TUNNEL" in c.build_flags or "IS_INTERNAL" in c.build_flags:
            continue
        print("stream %s to %s -> circuit %s" % (stream.id, stream.target, c.id))
        return c
    print("stream %s to %s -> circuit none" % (stream.id, stream.target))
    return None    # tor chooses
tor.policy(first_built)
`

// exitCircuits are the IDs of tor's BUILT GENERAL circuits that are
// neither IS_INTERNAL nor ONEHOP_TUNNEL, as GETINFO circuit-status lists
// them now.
func exitCircuits(t *testing.T, c *ctl.Conn) map[string]bool {
	t.Helper()
	circs, err := c.Circuits(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, ci := range circs {
		if ci.Status == ctl.CircBuilt && ci.Purpose == "GENERAL" && !slices.Contains(ci.BuildFlags, "IS_INTERNAL") && !slices.Contains(ci.BuildFlags, "ONEHOP_TUNNEL") {
			ids[ci.ID] = true
		}
	}
	return ids
}

// TestPolicyFirstBuiltCircuit: a policy that iterates tor.circuits() routes
// curl through the first BUILT GENERAL exit circuit in creation order, and
// through the next one once the test closes that one: each stream
// SUCCEEDED on the circuit the policy chose, that circuit leaves through an
// exit, and no such circuit built before the curl and alive after it was
// created before it (tor numbers circuits in creation order).
func TestPolicyFirstBuiltCircuit(t *testing.T) {
	n := testnet.Shared(t)
	ctx, c, ev := exBegin(t, 3*time.Minute)
	port := exServer(t, "0.0.0.0:0", "first_built")
	// Exit circuits of the test's own besides tor's, so that there is a
	// first and a next; closed when the test ends.
	for range 2 {
		id, _ := buildCircuit(t, c)
		t.Cleanup(func() { c.CloseCircuit(testCtx(t, 10*time.Second), id, false) })
	}
	p := runPath(ctx, t, c, nil, writeScript(t, t.TempDir(), "first_built.star", firstBuiltPolicy))
	p.waitStarted(t)

	seen := map[string]bool{}
	var prev string
	for i, h := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1"} {
		if i == 2 {
			// The circuit the first two streams rode closes: the
			// policy's next streams ride the next one.
			if err := c.CloseCircuit(testCtx(t, 10*time.Second), prev, false); err != nil {
				t.Fatalf("CLOSECIRCUIT %s: %v", prev, err)
			}
		}
		before := exitCircuits(t, c)
		if len(before) == 0 {
			t.Fatalf("stream %d: no BUILT GENERAL exit circuit before the curl", i)
		}
		exCurlOK(ctx, t, fmt.Sprintf("http://%s:%d/", h, port), "first_built "+h)
		id := ev.newStream(t, h, port, seen)
		circ := ev.succeeded(t, id)
		chose := p.decision(t, id)
		if chose != circ {
			t.Fatalf("stream %d (%s) to %s: the policy chose circuit %s, tor says it SUCCEEDED on %s", i, id, h, chose, circ)
		}
		switch {
		case i == 1 && circ != prev:
			t.Errorf("stream %s rode circuit %s, the stream before it %s; want the same first circuit", id, circ, prev)
		case i == 2 && circ == prev:
			t.Errorf("stream %s rode circuit %s, which the test closed before the curl", id, circ)
		}
		path := ev.path(t, c, circ)
		if len(path) < 3 || !exIsExit(n, path[len(path)-1]) {
			t.Errorf("circuit %s has path %v, want 3 hops or more ending at an exit", circ, exPathString(path))
		}
		after := exitCircuits(t, c)
		num, _ := strconv.Atoi(circ)
		for other := range before {
			o, _ := strconv.Atoi(other)
			if after[other] && o < num {
				t.Errorf("stream %s rode circuit %s, but circuit %s, created before it, was BUILT GENERAL before the curl and after it", id, circ, other)
			}
		}
		t.Logf("stream %s to %s:%d SUCCEEDED on circuit %s (%s); exit circuits before the curl %v", id, h, port, circ, exPathString(path), slices.Sorted(maps.Keys(before)))
		prev = circ
	}
	p.finish(t)
}
