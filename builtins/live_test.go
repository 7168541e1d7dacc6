package builtins

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

func newLiveCircuits() *Live[ctl.Circuit] {
	return NewLive(func(c *ctl.Circuit) starlark.Value { return &Circuit{C: c} })
}

// ids reads a view as a script does, with a for loop.
func ids(t *testing.T, v starlark.Value) []string {
	t.Helper()
	var out []string
	it := v.(starlark.Iterable).Iterate()
	defer it.Done()
	var x starlark.Value
	for it.Next(&x) {
		out = append(out, x.(*Circuit).C.ID)
	}
	return out
}

// TestLiveOrderUnderChurn: thousands of circuits launched, built and
// closed in random order; after each step a view lists the live ones in
// creation order, filters agree with a filter written by hand, and len()
// agrees with iteration.
func TestLiveOrderUnderChurn(t *testing.T) {
	l := newLiveCircuits()
	rng := rand.New(rand.NewPCG(1, 2))
	var order []string // creation order of the live ones
	status := map[string]ctl.CircStatus{}
	next := 1
	for step := range 20000 {
		switch r := rng.IntN(10); {
		case r < 4 || len(order) == 0: // launch
			id := strconv.Itoa(next)
			next++
			l.Set(id, &ctl.Circuit{ID: id, Status: ctl.CircLaunched, Purpose: "GENERAL"})
			order = append(order, id)
			status[id] = ctl.CircLaunched
		case r < 7: // build one
			id := order[rng.IntN(len(order))]
			l.Set(id, &ctl.Circuit{ID: id, Status: ctl.CircBuilt, Purpose: "GENERAL"})
			status[id] = ctl.CircBuilt
		default: // close one
			i := rng.IntN(len(order))
			l.Delete(order[i])
			delete(status, order[i])
			order = slices.Delete(order, i, i+1)
		}
		if step%997 != 0 {
			continue
		}
		if got := ids(t, l.View("tor.circuits", nil)); !slices.Equal(got, order) {
			t.Fatalf("step %d: order %v, want %v", step, got, order)
		}
		var built []string
		for _, id := range order {
			if status[id] == ctl.CircBuilt {
				built = append(built, id)
			}
		}
		v := l.View("tor.circuits", func(c *ctl.Circuit) bool { return c.Status == ctl.CircBuilt })
		if got := ids(t, v); !slices.Equal(got, built) {
			t.Fatalf("step %d: built %v, want %v", step, got, built)
		}
		if n := v.(starlark.Sequence).Len(); n != len(built) {
			t.Fatalf("step %d: len %d, want %d", step, n, len(built))
		}
	}
	if l.Len() != len(order) || len(order) < 1000 {
		t.Fatalf("Len %d, %d live; want the same, and over 1000", l.Len(), len(order))
	}
}

// TestLiveChangeWhileIterating: a circuit closed while a script iterates
// is skipped when the loop reaches it, one changed is read in its new
// state, one opened since is not in the view, and compaction in the
// middle of the loop does not disturb it.
func TestLiveChangeWhileIterating(t *testing.T) {
	l := newLiveCircuits()
	for i := range 3000 {
		id := strconv.Itoa(i)
		l.Set(id, &ctl.Circuit{ID: id, Status: ctl.CircBuilt})
	}
	it := l.View("tor.circuits", nil).(starlark.Iterable).Iterate()
	defer it.Done()
	var x starlark.Value
	var got []string
	for it.Next(&x) {
		c := x.(*Circuit).C
		got = append(got, c.ID)
		switch c.ID {
		case "0":
			l.Delete("1")                                               // closed before the loop reaches it
			l.Set("2", &ctl.Circuit{ID: "2", Status: ctl.CircExtended}) // changed
			l.Set("new", &ctl.Circuit{ID: "new", Status: ctl.CircLaunched})
		case "2":
			if c.Status != ctl.CircExtended {
				t.Errorf("circuit 2 read as %s, want its latest status EXTENDED", c.Status)
			}
			for i := 3; i < 2500; i += 2 { // enough holes to compact
				l.Delete(strconv.Itoa(i))
			}
		}
	}
	want := []string{"0", "2"}
	for i := 4; i < 2500; i += 2 {
		want = append(want, strconv.Itoa(i))
	}
	for i := 2500; i < 3000; i++ {
		want = append(want, strconv.Itoa(i))
	}
	if !slices.Equal(got, want) {
		t.Errorf("read %d circuits, want %d; first %v", len(got), len(want), got[:min(5, len(got))])
	}
	if after := ids(t, l.View("tor.circuits", nil)); after[len(after)-1] != "new" || len(after) != len(want)+1 {
		t.Errorf("a new view: %d circuits ending in %s, want %d ending in new", len(after), after[len(after)-1], len(want)+1)
	}
}

// TestLiveValueOncePerChange: the Starlark value of a circuit is built on
// its first read and reused until the circuit changes.
func TestLiveValueOncePerChange(t *testing.T) {
	built := 0
	l := NewLive(func(c *ctl.Circuit) starlark.Value { built++; return &Circuit{C: c} })
	l.Set("7", &ctl.Circuit{ID: "7", Status: ctl.CircLaunched})
	a, b := l.Value("7"), l.View("tor.circuits", nil).(starlark.Indexable).Index(0)
	if a != b || built != 1 {
		t.Errorf("two reads: same value %t, built %d times; want true, 1", a == b, built)
	}
	l.Set("7", &ctl.Circuit{ID: "7", Status: ctl.CircBuilt})
	if c := l.Value("7").(*Circuit); c == a || c.C.Status != ctl.CircBuilt || built != 2 {
		t.Errorf("after a change: new value %t, status %s, built %d; want true, BUILT, 2", c != a, c.C.Status, built)
	}
	if l.Value("8") != nil || l.Get("8") != nil {
		t.Error("a circuit never seen has a value")
	}
}

// BenchmarkLiveFirstBuilt is the ordinary policy: the first BUILT circuit
// among thousands, read through a view.
func BenchmarkLiveFirstBuilt(b *testing.B) {
	l := newLiveCircuits()
	for i := range 3000 {
		id := strconv.Itoa(i)
		st := ctl.CircLaunched
		if i >= 100 {
			st = ctl.CircBuilt
		}
		l.Set(id, &ctl.Circuit{ID: id, Status: st, Purpose: "GENERAL"})
	}
	b.ReportAllocs()
	for b.Loop() {
		it := l.View("tor.circuits", nil).(starlark.Iterable).Iterate()
		var x starlark.Value
		for it.Next(&x) {
			if x.(*Circuit).C.Status == ctl.CircBuilt {
				break
			}
		}
		it.Done()
	}
}
