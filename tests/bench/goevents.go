package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/torscript/torscript/ctl"
)

// goEventsEnv, set to "ADDR WANT POLICY", makes the bench binary run
// goEventsController against ADDR and nothing else: the Go controller of
// the events-tor measurements' go-rate.
const goEventsEnv = "TORSCRIPT_BENCH_GO_EVENTS"

// goEventsController is what a Go program written by hand on ctl does with
// the flood of events-tor and events-tor-policy: it subscribes to CIRC,
// STREAM, BW and ORCONN, takes every event parsed, and counts them; with
// policy it keeps tor's circuits (a map, and their order of creation) and
// attaches each client stream to the first BUILT GENERAL one, or gives it
// to tor, pipelining the ATTACHSTREAMs. Once it has counted want events it
// asks GETINFO bench/done, as the scripts do. It returns when ctx ends or
// the connection does.
func goEventsController(ctx context.Context, addr string, want int, policy bool) error {
	conn, _, err := ctl.Connect(ctx, addr, ctl.Credentials{}, ctl.Options{})
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetEvents(ctx, "CIRC", "STREAM", "BW", "ORCONN"); err != nil {
		return err
	}
	var circs goCircuits
	if policy {
		// What is already there, as torscript reads it at start.
		cs, err := conn.Circuits(ctx)
		if err != nil {
			return err
		}
		for i := range cs {
			circs.set(&cs[i])
		}
		if _, err := conn.Streams(ctx); err != nil {
			return err
		}
	}
	attach := func(stream, circ string) error {
		cmd, err := ctl.AttachStreamCommand(stream, circ, 0)
		if err != nil {
			return err
		}
		return conn.Start(ctx, cmd, func(*ctl.Reply, error) {})
	}
	n := 0
	return eachEvent(ctx, conn, func(ev ctl.Event) error {
		switch e := ev.(type) {
		case *ctl.CircEvent:
			n++
			if policy {
				circs.set(&e.Circuit)
			}
		case *ctl.StreamEvent:
			n++
			if policy && asksPolicy(&e.Stream) {
				if err := attach(e.ID, circs.firstBuiltGeneral()); err != nil {
					return err
				}
			}
		case *ctl.BWEvent, *ctl.ORConnEvent:
			n++
		}
		if n == want {
			want = -1
			go conn.GetInfo(ctx, "bench/done")
		}
		return nil
	})
}

// asksPolicy says whether a stream is one torscript's policy is asked
// about: new or detached, and not tor's own directory stream.
func asksPolicy(s *ctl.Stream) bool {
	switch s.Status {
	case ctl.StreamNew, ctl.StreamNewResolve, ctl.StreamDetached:
	default:
		return false
	}
	switch s.Purpose {
	case "DIR_FETCH", "DIR_UPLOAD", "DIRPORT_TEST":
		return false
	}
	return true
}

// goCircuits is tor's live circuits as a Go program keeps them: by ID,
// and in the order they were created.
type goCircuits struct {
	byID  map[string]*ctl.Circuit
	order []string
}

func (g *goCircuits) set(c *ctl.Circuit) {
	if g.byID == nil {
		g.byID = map[string]*ctl.Circuit{}
	}
	if c.Status == ctl.CircClosed || c.Status == ctl.CircFailed {
		delete(g.byID, c.ID)
		if len(g.order) >= 64 && len(g.order) >= 2*len(g.byID) {
			live := g.order[:0]
			for _, id := range g.order {
				if g.byID[id] != nil {
					live = append(live, id)
				}
			}
			g.order = live
		}
		return
	}
	if g.byID[c.ID] == nil {
		g.order = append(g.order, c.ID)
	}
	g.byID[c.ID] = c
}

// firstBuiltGeneral is the oldest BUILT GENERAL circuit's ID, or "0".
func (g *goCircuits) firstBuiltGeneral() string {
	for _, id := range g.order {
		if c := g.byID[id]; c != nil && c.Status == ctl.CircBuilt && c.Purpose == "GENERAL" {
			return id
		}
	}
	return "0"
}

// goEventsMain is the bench binary run as that Go controller, with the Go
// runtime set as torscript sets it (one processor, GOGC 400), stopped by
// SIGTERM.
func goEventsMain(spec string) int {
	f := strings.Fields(spec)
	if len(f) != 3 {
		fmt.Fprintf(os.Stderr, "%s: want \"ADDR WANT POLICY\", got %q\n", goEventsEnv, spec)
		return 2
	}
	want, err := strconv.Atoi(f[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, goEventsEnv+":", err)
		return 2
	}
	return runAsTorscript("go events controller", func(ctx context.Context) error {
		return goEventsController(ctx, f[0], want, f[2] == "policy")
	})
}

// launchGoEvents starts a fake control port and the bench binary as the
// Go events controller against it, on b.cpus.
func (b *bench) launchGoEvents(want int, policy bool) (*session, error) {
	mode := "counts"
	if policy {
		mode = "policy"
	}
	f, p, err := b.startSelf("go-events", func(addr string) string {
		return fmt.Sprintf("%s=%s %d %s", goEventsEnv, addr, want, mode)
	}, b.cpus)
	if err != nil {
		return nil, err
	}
	return &session{fake: f, proc: p}, nil
}
