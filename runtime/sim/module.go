package sim

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime"
	"github.com/torscript/torscript/runtime/simtor"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// builtinFunc is the signature of a Starlark builtin.
type builtinFunc = func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error)

// simModule is the sim module of a test: it makes things happen in the
// simulated tor and checks the commands the script sent. Each member is a
// method, registered by module from one list.
type simModule struct {
	r        *runtime.Runtime
	tor      *simtor.Tor
	testFile string
	ran      bool // sim.run was called
	// trace is the transcript sim.run(..., trace=) answers from (its
	// path), and traceFrom the first command the replay compares.
	trace     string
	traceFrom int
	traceCmds []*traceCmd // the transcript, read once by useTrace
	traceEvs  []string
}

// module builds the sim module of a test.
func (sm *simModule) module() *starlarkstruct.Module {
	table := []struct {
		name string
		fn   builtinFunc
	}{
		{"run", sm.run},
		{"stream_new", sm.streamNew},
		{"stream_event", sm.streamEvent},
		{"circ_launched", sm.circEvent("LAUNCHED")},
		{"circ_built", sm.circEvent("BUILT")},
		{"circ_failed", sm.circEvent("FAILED")},
		{"circ_closed", sm.circEvent("CLOSED")},
		{"reply", sm.reply},
		{"commands", sm.commands},
		{"conf", sm.conf},
		{"mappings", sm.mappings},
		{"advance", sm.advance},
		{"expect_attach", sm.expectAttach},
		{"expect_close", sm.expectClose},
		{"expect_redirect", sm.expectRedirect},
		{"expect_extend", sm.expectExtend},
		{"expect_command", sm.expectCommand},
		{"expect_no_decision", sm.expectNoDecision},
		{"replay", sm.replay},
		{"exit", sm.exit},
		{"wait_probes", sm.waitProbes},
	}
	m := make(starlark.StringDict, len(table))
	for _, e := range table {
		m[e.name] = starlark.NewBuiltin("sim."+e.name, e.fn)
	}
	return &starlarkstruct.Module{Name: "sim", Members: m}
}

// path is a path given in the test file, relative to its directory.
func (sm *simModule) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(sm.testFile), p)
}

// run is sim.run(path, args=[]): it runs a script's top level, as
// torscript run would (with argv), on the test's thread, and returns its
// globals as a module.
func (sm *simModule) run(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var path, trace string
	var argv *starlark.List
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "path", &path, "args?", &argv, "trace?", &trace); err != nil {
		return nil, err
	}
	path = sm.path(path)
	if trace != "" {
		// The script sees the traced tor: its consensus, descriptors and
		// guards, and the circuit ids of the traced replies.
		if err := sm.useTrace(sm.path(trace)); err != nil {
			return nil, fmt.Errorf("%s: trace: %v", b.Name(), err)
		}
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", b.Name(), err)
	}
	list := []starlark.Value{starlark.String(path)}
	if argv != nil {
		for i := 0; i < argv.Len(); i++ {
			list = append(list, argv.Index(i))
		}
	}
	sm.ran = true
	g, err := sm.r.ExecFile(t, path, src, list)
	if err != nil {
		return nil, err
	}
	sm.settle()
	return &starlarkstruct.Module{Name: filepath.Base(path), Members: g}, nil
}

// streamNew is sim.stream_new(target, source=, purpose=, resolve=,
// socks_username=, socks_password=): a client opens a stream. It returns
// the stream's id.
func (sm *simModule) streamNew(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	target, source, purpose, resolve := "", "127.0.0.1:50000", "USER", false
	var user, pass string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "target", &target, "source?", &source, "purpose?", &purpose, "resolve?", &resolve,
		"socks_username?", &user, "socks_password?", &pass); err != nil {
		return nil, err
	}
	if !strings.Contains(target, ":") {
		return nil, fmt.Errorf("%s: target %q: want HOST:PORT", b.Name(), target)
	}
	id := sm.tor.NewStream(target, source, purpose, resolve, user, pass)
	sm.settle()
	return starlark.String(id), nil
}

// streamEvent is sim.stream_event(stream, status, circuit=, reason=,
// remote_reason=).
func (sm *simModule) streamEvent(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var id, status, reason, remote string
	var circ starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "stream", &id, "status", &status, "circuit?", &circ, "reason?", &reason, "remote_reason?", &remote); err != nil {
		return nil, err
	}
	c := ""
	if circ != starlark.None {
		c = idString(circ)
	}
	err := sm.tor.StreamEvent(id, status, c, reason, remote)
	sm.settle()
	if err != nil {
		return nil, fmt.Errorf("%s: %v", b.Name(), err)
	}
	return starlark.None, nil
}

// circEvent is sim.circ_launched, circ_built, circ_failed and circ_closed
// (id=, path=, purpose=, reason=): a circuit's status changes (with no id,
// a new circuit). It returns the circuit's id.
func (sm *simModule) circEvent(status string) builtinFunc {
	return func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var id starlark.Value = starlark.None
		var path *starlark.List
		purpose, reason := "GENERAL", ""
		if status == "FAILED" {
			reason = "TIMEOUT"
		} else if status == "CLOSED" {
			reason = "FINISHED"
		}
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "id?", &id, "path?", &path, "purpose?", &purpose, "reason?", &reason); err != nil {
			return nil, err
		}
		cid := ""
		if id != starlark.None {
			cid = idString(id)
		}
		var hops []string
		if path != nil {
			hops = make([]string, 0, path.Len())
			for i := 0; i < path.Len(); i++ {
				h, _ := starlark.AsString(path.Index(i))
				hops = append(hops, h)
			}
		}
		got, err := sm.tor.CircEvent(status, cid, hops, purpose, reason)
		sm.settle()
		if err != nil {
			return nil, fmt.Errorf("%s: %v", b.Name(), err)
		}
		return starlark.String(got), nil
	}
}

// reply is sim.reply(command, code, text="OK"): the next command of that
// keyword gets this reply.
func (sm *simModule) reply(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var command, text string
	var code int
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "command", &command, "code", &code, "text?", &text); err != nil {
		return nil, err
	}
	if code < 200 || code > 599 {
		return nil, fmt.Errorf("%s: code %d: want 2xx-5xx", b.Name(), code)
	}
	if text == "" {
		text = "OK"
	}
	sm.tor.Reply(command, code, text)
	return starlark.None, nil
}

// commands is sim.commands(): every command line the script sent.
func (sm *simModule) commands(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	var l []starlark.Value
	for _, c := range sm.tor.Commands() {
		l = append(l, starlark.String(c.Line))
	}
	return starlark.NewList(l), nil
}

// conf is sim.conf(key): a setting's value, or None.
func (sm *simModule) conf(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var key string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "key", &key); err != nil {
		return nil, err
	}
	if v, ok := sm.tor.Conf(key); ok {
		return starlark.String(v), nil
	}
	return starlark.None, nil
}

// mappings is sim.mappings(): the address mappings in effect.
func (sm *simModule) mappings(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	m := sm.tor.Mappings()
	d := starlark.NewDict(len(m))
	for k, v := range m {
		d.SetKey(starlark.String(k), starlark.String(v))
	}
	return d, nil
}

// advance is sim.advance(duration): virtual time moves on, and the
// timers due on the way fire.
func (sm *simModule) advance(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var d builtins.Duration
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "duration", &d); err != nil {
		return nil, err
	}
	sm.r.Advance(time.Duration(d), simtor.SyncCommand)
	return starlark.None, nil
}

// replay is sim.replay(path): it replays a --trace transcript and
// returns how many decisions it compared.
func (sm *simModule) replay(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var path string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "path?", &path); err != nil {
		return nil, err
	}
	if path == "" {
		if sm.trace == "" {
			return nil, fmt.Errorf("%s: name a transcript, or give it to sim.run(..., trace=PATH)", b.Name())
		}
		path = sm.trace
	} else {
		path = sm.path(path)
	}
	n, err := replay(sm, path)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", b.Name(), err)
	}
	return starlark.MakeInt(n), nil
}

// exit is sim.exit(nickname, refuse=None, hang=False, response=None):
// what the exit does with the probes' streams (tor.fetch, tor.connect)
// attached to its circuits: refuse them with an END reason
// ("EXITPOLICY"), never answer, or answer with response (bytes or str);
// by default the destination answers "HTTP/1.0 200 OK" with the body
// "hello from the simulated destination\n".
func (sm *simModule) exit(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var nick, refuse string
	var hang bool
	var response starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "nickname", &nick, "refuse?", &refuse, "hang?", &hang, "response?", &response); err != nil {
		return nil, err
	}
	var resp []byte
	switch v := response.(type) {
	case starlark.NoneType:
	case starlark.Bytes:
		resp = []byte(v)
	case starlark.String:
		resp = []byte(v)
	default:
		return nil, fmt.Errorf("%s: response: got %s, want bytes or str", b.Name(), response.Type())
	}
	if refuse != "" {
		if _, err := ctl.ParseRelayEndReason(refuse); err != nil {
			return nil, fmt.Errorf("%s: refuse: %v", b.Name(), err)
		}
	}
	sm.tor.SetExit(nick, refuse, hang, resp)
	return starlark.None, nil
}

// waitProbes is sim.wait_probes(timeout=10): it runs the script until
// every probe it started (tor.fetch, tor.connect) has called its on_done.
// Probes go through a real socket to the simulated SocksPort, so this
// waits in real time, at most timeout seconds, and fails after.
func (sm *simModule) waitProbes(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	timeout := builtins.Duration(10 * time.Second)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "timeout?", &timeout); err != nil {
		return nil, err
	}
	end := time.Now().Add(time.Duration(timeout))
	for {
		sm.settle()
		if !sm.r.ProbesPending() {
			return starlark.None, nil
		}
		if time.Now().After(end) {
			return nil, fmt.Errorf("%s: probes still running after %s", b.Name(), time.Duration(timeout))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
