package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/ctl/ctltest"
)

// TestGoEventsController: on tor's event mix, the Go controller of go-rate
// counts every CIRC, STREAM, BW and ORCONN event (its GETINFO bench/done
// comes once, after the last), and attaches each client stream where
// events_tor_policy.star would: to the oldest BUILT GENERAL circuit then
// live, or to tor.
func TestGoEventsController(t *testing.T) {
	const events = 30_000
	mix := newTorMix(1, 300)
	var data []byte
	for range events {
		data = mix.next(data)
	}
	// What the policy decides, read off the events by a plain scan.
	replies, err := ctl.ParseReplies(data, ctl.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var live []*ctl.Circuit // oldest first
	var want []string
	for _, r := range replies {
		switch e := ctl.ParseEvent(r).(type) {
		case *ctl.CircEvent:
			i := slices.IndexFunc(live, func(c *ctl.Circuit) bool { return c.ID == e.ID })
			switch {
			case e.Status == ctl.CircClosed || e.Status == ctl.CircFailed:
				if i >= 0 {
					live = slices.Delete(live, i, i+1)
				}
			case i >= 0:
				live[i] = &e.Circuit
			default:
				live = append(live, &e.Circuit)
			}
		case *ctl.StreamEvent:
			if !asksPolicy(&e.Stream) {
				continue
			}
			circ := "0"
			for _, c := range live {
				if c.Status == ctl.CircBuilt && c.Purpose == "GENERAL" {
					circ = c.ID
					break
				}
			}
			want = append(want, fmt.Sprintf("ATTACHSTREAM %s %s", e.ID, circ))
		}
	}
	if len(want) < 100 || !slices.ContainsFunc(want, func(s string) bool { return s[len(s)-2:] != " 0" }) {
		t.Fatalf("the mix asks the policy too little to test it: %d streams", len(want))
	}

	for _, policy := range []bool{false, true} {
		t.Run(fmt.Sprint("policy=", policy), func(t *testing.T) {
			f, err := ctltest.NewFakeControlPort()
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			f.SetInfo("circuit-status", "") // no circuit but the mix's
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- goEventsController(ctx, f.Addr(), mix.Counted, policy) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("controller: %v", err)
				}
			}()
			if _, _, err := f.WaitCommand(0, 10*time.Second, nil, func(c ctltest.Command) bool {
				return c.Keyword() == "SETEVENTS" && c.HasArg("CIRC") && c.HasArg("STREAM") && c.HasArg("BW") && c.HasArg("ORCONN")
			}); err != nil {
				t.Fatal(err)
			}
			from := 0
			if policy {
				if from, err = waitPolicyReady(f, nil); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Send(data); err != nil {
				t.Fatal(err)
			}
			if _, _, err := f.WaitCommand(from, 10*time.Second, nil, func(c ctltest.Command) bool {
				return c.Keyword() == "GETINFO" && c.HasArg("bench/done")
			}); err != nil {
				t.Fatal(err)
			}
			var got []string
			dones := 0
			for _, c := range f.Commands()[from:] {
				switch c.Keyword() {
				case "ATTACHSTREAM":
					got = append(got, c.Line)
				case "GETINFO":
					dones++
				}
			}
			if dones != 1 {
				t.Errorf("%d GETINFO bench/done, want 1", dones)
			}
			if !policy {
				if len(got) > 0 {
					t.Errorf("%d ATTACHSTREAMs without the policy", len(got))
				}
				return
			}
			if !slices.Equal(got, want) {
				for i := range min(len(got), len(want)) {
					if got[i] != want[i] {
						t.Fatalf("decision %d: %q, want %q (%d and %d decisions)", i, got[i], want[i], len(got), len(want))
					}
				}
				t.Fatalf("%d decisions, want %d", len(got), len(want))
			}
		})
	}
}
