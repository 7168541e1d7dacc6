package owner

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseJournal(t *testing.T) {
	j := `{"op":"holder","holder":{"pid":10,"host":"h","script":"a.star"}}
{"op":"holder","holder":{"pid":10,"guardian":11,"host":"h","script":"a.star"}}
{"op":"on_error","close":4}
{"op":"leave","orig":["0"]}
{"op":"map","addrs":["a.virtual","b.virtual"]}
{"op":"conf","key":"MaxCircuitDirtiness","orig":["600"]}
{"op":"conf","key":"maxcircuitdirtiness","orig":["604"]}
{"op":"conf","key":"ExitNodes","no_value":true}
{"op":"unmap","addrs":["a.virtual"]}
{"op":"leave","orig":["1"]}
{"op":"map","addrs":["c.vir`
	s := parse([]byte(j))
	if s.Holder == nil || s.Holder.Guardian != 11 {
		t.Errorf("holder %+v, want the last one", s.Holder)
	}
	if !s.Leave || s.OrigLeave != "0" {
		t.Errorf("leave %v %q, want the first value recorded, 0", s.Leave, s.OrigLeave)
	}
	if s.Close != 4 {
		t.Errorf("close %d, want 4", s.Close)
	}
	if !slices.Equal(s.Maps, []string{"b.virtual"}) {
		t.Errorf("maps %q, want b.virtual (a.virtual unmapped; the torn line ignored)", s.Maps)
	}
	if len(s.Confs) != 2 || s.Confs[0].Key != "MaxCircuitDirtiness" || !slices.Equal(s.Confs[0].Orig, []string{"600"}) || !s.Confs[1].NoValue {
		t.Errorf("confs %+v, want the first value of each key", s.Confs)
	}
	if s.Empty() {
		t.Error("Empty, want changes to undo")
	}
	want := "__LeaveStreamsUnattached back to 0; 1 address mappings removed; config restored: MaxCircuitDirtiness, ExitNodes"
	if got := s.Summary(); got != want {
		t.Errorf("Summary %q, want %q", got, want)
	}

	s = parse([]byte(j + "\n" + `{"op":"leave_restored"}` + "\n" + `{"op":"unmap","addrs":["b.virtual"]}` + "\n"))
	if s.Leave || len(s.Maps) != 0 || s.Empty() {
		t.Errorf("after restores: %+v; want only the confs left", s)
	}
	if s = parse([]byte(j + "\n" + `{"op":"undone"}` + "\n")); !s.Empty() {
		t.Errorf("undone: %+v, want Empty", s)
	}
}

// TestRunsLiveAndDead: a journal whose lock is held is a live run's; one
// whose lock can be taken is a dead run's, and Runs hands it over locked.
func TestRunsLiveAndDead(t *testing.T) {
	tor, err := OpenTor(t.TempDir(), "k")
	if err != nil {
		t.Fatal(err)
	}
	live, err := tor.NewRun(Holder{PID: 1, Script: "live.star"})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Remove()
	if err := live.Record(Entry{Op: "leave", Orig: []string{"0"}}); err != nil {
		t.Fatal(err)
	}
	// A dead run: its journal is there, nobody holds its lock.
	dead := filepath.Join(tor.Dir(), "run-2-0.jsonl")
	os.WriteFile(dead, []byte(`{"op":"holder","holder":{"pid":2,"script":"dead.star"}}`+"\n"+`{"op":"map","addrs":["x.virtual"]}`+"\n"), 0o600)

	lives, deads, err := tor.Runs()
	if err != nil {
		t.Fatal(err)
	}
	if len(lives) != 1 || lives[0].Script != "live.star" {
		t.Errorf("live runs %+v, want live.star", lives)
	}
	if len(deads) != 1 || deads[0].State.Holder == nil || deads[0].State.Holder.Script != "dead.star" || !slices.Equal(deads[0].State.Maps, []string{"x.virtual"}) {
		t.Fatalf("dead runs %+v, want dead.star with x.virtual", deads)
	}
	// While we hold the dead one, nobody else takes it.
	if _, again, _ := tor.Runs(); len(again) != 0 {
		t.Errorf("a dead run taken twice")
	}
	deads[0].Remove()
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead journal still there: %v", err)
	}
	st, err := live.State()
	if err != nil || !st.Leave || st.Holder == nil || st.Holder.PID != 1 {
		t.Errorf("live State %+v, %v", st, err)
	}
}

// TestPolicyLock: one holder at a time; the second learns who holds it;
// the lock goes with the holder's descriptor.
func TestPolicyLock(t *testing.T) {
	tor, err := OpenTor(t.TempDir(), "k")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := tor.OpenPolicy()
	b, _ := tor.OpenPolicy()
	defer b.Close()
	if err := a.Acquire(Holder{PID: 7, Script: "a.star"}); err != nil {
		t.Fatal(err)
	}
	err = b.Acquire(Holder{PID: 8, Script: "b.star"})
	var held *ErrHeld
	if !errors.As(err, &held) || held.Holder.PID != 7 || held.Holder.Script != "a.star" {
		t.Fatalf("second Acquire: %v, want held by pid 7", err)
	}
	if h, ok := b.Holder(); !ok || h.PID != 7 {
		t.Errorf("Holder = %+v, %v", h, ok)
	}
	a.Release()
	if h, ok := b.Holder(); ok {
		t.Errorf("after Release, Holder = %+v, want none", h)
	}
	if err := b.Acquire(Holder{PID: 8}); err != nil {
		t.Errorf("Acquire after Release: %v", err)
	}
}
