package sim

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime/simtor"
	"go.starlark.net/starlark"
)

// The sim.expect_* builtins: each finds the first command of its keyword
// the script sent that no expectation has matched yet, and marks it
// matched.

// expect finds the first command of keyword not matched yet for which ok
// is true, marks it matched and returns it; what describes it for the
// error when there is none.
func (sm *simModule) expect(b *starlark.Builtin, keyword, what string, ok func(args []string) bool) (simtor.Command, error) {
	sm.settle()
	c, seen, found := sm.tor.Expect(keyword, ok)
	if found {
		return c, nil
	}
	if len(seen) == 0 {
		hint := ""
		if !sm.ran && !sm.startedAnything() {
			hint = " (sim.run was not called, and nothing subscribed to events or decided a stream: is the script under test running?)"
		}
		return c, fmt.Errorf("%s: want %s; %s commands not expected yet: none%s", b.Name(), what, keyword, hint)
	}
	if keyword == "EXTENDCIRCUIT" {
		// Name the relays as a test names them: by nickname.
		for i, l := range seen {
			if f := strings.Fields(l); len(f) >= 3 && !strings.Contains(f[2], "=") {
				hops := strings.Split(f[2], ",")
				for j, h := range hops {
					hops[j] = sm.tor.Nickname(h)
				}
				f[2] = "through " + strings.Join(hops, ",")
				seen[i] = strings.Join(f, " ")
			}
		}
	}
	if keyword == "CLOSESTREAM" {
		// Name the reasons it got, as it names the one wanted.
		for i, l := range seen {
			if f := strings.Fields(l); len(f) >= 3 {
				if n, err := strconv.Atoi(f[2]); err == nil {
					seen[i] = l + " (" + ctl.RelayEndReason(n).String() + ")"
				}
			}
		}
	}
	return c, fmt.Errorf("%s: want %s; %s commands not expected yet: %s", b.Name(), what, keyword, strings.Join(seen, ", "))
}

// expectAttach is sim.expect_attach(stream, circuit, hop=).
func (sm *simModule) expectAttach(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var stream, circ starlark.Value
	hop := 0
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "stream", &stream, "circuit", &circ, "hop?", &hop); err != nil {
		return nil, err
	}
	want := "ATTACHSTREAM " + idString(stream) + " " + idString(circ)
	if hop > 0 {
		want += " HOP=" + strconv.Itoa(hop)
	}
	_, err := sm.expect(b, "ATTACHSTREAM", want, func(a []string) bool { return strings.Join(a, " ") == strings.TrimPrefix(want, "ATTACHSTREAM ") })
	return starlark.None, err
}

// expectClose is sim.expect_close(stream, reason).
func (sm *simModule) expectClose(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var stream starlark.Value
	var reason builtins.RelayEndReason
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "stream", &stream, "reason", &reason); err != nil {
		return nil, err
	}
	id := idString(stream)
	want := fmt.Sprintf("CLOSESTREAM %s %d (%s)", id, int(reason), ctl.RelayEndReason(reason))
	_, err := sm.expect(b, "CLOSESTREAM", want, func(a []string) bool {
		return len(a) >= 2 && a[0] == id && a[1] == strconv.Itoa(int(reason))
	})
	return starlark.None, err
}

// expectRedirect is sim.expect_redirect(stream, host, port=).
func (sm *simModule) expectRedirect(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var stream starlark.Value
	var host string
	port := 0
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "stream", &stream, "host", &host, "port?", &port); err != nil {
		return nil, err
	}
	want := []string{idString(stream), host}
	if port > 0 {
		want = append(want, strconv.Itoa(port))
	}
	_, err := sm.expect(b, "REDIRECTSTREAM", "REDIRECTSTREAM "+strings.Join(want, " "), func(a []string) bool { return slices.Equal(a, want) })
	return starlark.None, err
}

// expectExtend is sim.expect_extend(path=): the script asked for a new
// circuit (through path). It returns the new circuit's id.
func (sm *simModule) expectExtend(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var path *starlark.List
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "path?", &path); err != nil {
		return nil, err
	}
	var want []string
	if path != nil {
		for i := 0; i < path.Len(); i++ {
			h, _ := starlark.AsString(path.Index(i))
			want = append(want, h)
		}
	}
	what := "EXTENDCIRCUIT 0"
	if want != nil {
		what += " through " + strings.Join(want, ",")
	}
	c, err := sm.expect(b, "EXTENDCIRCUIT", what, func(a []string) bool {
		if len(a) == 0 || a[0] != "0" {
			return false
		}
		if want == nil {
			return true
		}
		if len(a) < 2 {
			return false
		}
		hops := strings.Split(a[1], ",")
		if len(hops) != len(want) {
			return false
		}
		for i, h := range hops {
			if !sm.tor.SameRelay(h, want[i]) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return starlark.String(c.Result), nil
}

// expectCommand is sim.expect_command(prefix): any command starting with
// prefix. It returns the command line.
func (sm *simModule) expectCommand(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var prefix string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "prefix", &prefix); err != nil {
		return nil, err
	}
	kw, _, _ := strings.Cut(prefix, " ")
	got, err := sm.expect(b, kw, prefix+"…", func(a []string) bool {
		return strings.HasPrefix(strings.Join(append([]string{kw}, a...), " "), prefix)
	})
	if err != nil {
		return nil, err
	}
	return starlark.String(got.Line), nil
}

// expectNoDecision is sim.expect_no_decision(stream=): the script has
// sent no decision (about stream) that no expectation matched.
func (sm *simModule) expectNoDecision(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var stream starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "stream?", &stream); err != nil {
		return nil, err
	}
	sm.settle()
	id := ""
	if stream != starlark.None {
		id = idString(stream)
	}
	if line, ok := sm.tor.Decided(id); ok {
		return nil, fmt.Errorf("%s: the script sent %s", b.Name(), line)
	}
	return starlark.None, nil
}

// startedAnything says whether the test has made the runtime do anything
// a script under test would: subscribe to events, build a circuit or
// decide a stream.
func (sm *simModule) startedAnything() bool {
	for _, c := range sm.tor.Commands() {
		kw, _, _ := strings.Cut(c.Line, " ")
		switch strings.ToUpper(kw) {
		case "SETEVENTS", "EXTENDCIRCUIT", "ATTACHSTREAM", "CLOSESTREAM", "REDIRECTSTREAM", "MAPADDRESS", "SETCONF":
			return true
		}
	}
	return false
}
