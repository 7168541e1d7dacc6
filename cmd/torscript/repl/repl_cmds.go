package repl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime"
	"github.com/torscript/torscript/runtime/sim"
)

// newLineScanner returns a function that reads one line at a time from in,
// without its "\n" or "\r\n"; io.EOF after the last.
func newLineScanner(in io.Reader) func() (string, error) {
	br := bufio.NewReader(in)
	return func() (string, error) {
		line, err := br.ReadString('\n')
		if err != nil && (err != io.EOF || line == "") {
			return "", err
		}
		line = strings.TrimSuffix(line, "\n")
		return strings.TrimSuffix(line, "\r"), nil
	}
}

// replCommands are the REPL's own commands, for :help and completion.
var replCommands = []struct{ name, args, help string }{
	{":help", "[TOPIC]", "this list; with a control command, config option, GETINFO key or Starlark name, its documentation"},
	{":events", "[TYPE...|clear]", "the last events received (of these types), oldest first; clear forgets them"},
	{":watch", "[TYPE [where EXPR]]", "print live events of TYPE for which EXPR (with the event as e and as the type's name, e.g. stream) is true; alone, list the watches"},
	{":unwatch", "[N|all]", "remove watch N (or all of them)"},
	{":load", "FILE [-- ARGS]", "run a script into the session (argv is FILE and ARGS): its handlers, timers and policy become active and its globals are bound"},
	{":reload", "[FILE]", "load FILE (the last :load by default) again: its tests (FILE_test.star) first; if they pass and it runs cleanly, its handlers, timers and policy replace those of its last :load"},
	{":policy", "[off]", "whether a stream policy is active; off removes it and hands the streams it holds back to tor"},
	{":info", "RELAY", "a relay by nickname, fingerprint or address: its flags, exit policy, platform, contact, uptime, family, country"},
	{":quit", "", "leave (as Ctrl-D), undoing what a policy changed"},
}

// reload is :reload [FILE]: the file's tests first, then Session.Reload.
func (rp *repl) reload(file string) error {
	if file == "" {
		file = rp.lastLoad
	}
	if file == "" {
		return errors.New(":reload FILE (nothing was :loaded yet)")
	}
	src, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := runtime.Check(file, src, runtime.Options{}); err != nil {
		return fmt.Errorf("%w\n(not reloaded: the running version goes on)", err)
	}
	testFile := strings.TrimSuffix(file, ".star") + "_test.star"
	if tsrc, err := os.ReadFile(testFile); err == nil {
		res, err := sim.RunTests(context.Background(), testFile, tsrc, runtime.Options{})
		if err != nil {
			return fmt.Errorf("%s: %w\n(not reloaded: the running version goes on)", testFile, err)
		}
		for _, t := range res {
			if !t.Passed() {
				first, _, _ := strings.Cut(strings.Join(t.Failures, "\n"), "\n")
				return fmt.Errorf("%s: %s fails: %s\n(not reloaded: the running version goes on)", testFile, t.Name, first)
			}
		}
		fmt.Fprintf(rp.out, "%s: %d tests pass\n", testFile, len(res))
	}
	rp.evaling.Store(true)
	defer rp.evaling.Store(false)
	var names []string
	err = rp.result(rp.s.Do(func(t *starlark.Thread, _ starlark.StringDict) error {
		var err error
		names, err = rp.s.Reload(t, file)
		return err
	}))
	if err != nil {
		return fmt.Errorf("%w\n(not reloaded: the running version goes on)", err)
	}
	fmt.Fprintf(rp.out, "reloaded %s%s\n", file, globalsNote(names))
	return nil
}

// globalsNote is what :load says of the globals a file bound.
func globalsNote(names []string) string {
	var pub []string
	for _, n := range names {
		if !strings.HasPrefix(n, "_") {
			pub = append(pub, n)
		}
	}
	switch {
	case len(pub) == 0:
		return ""
	case len(pub) > 12:
		return fmt.Sprintf(": %s and %d more", strings.Join(pub[:12], ", "), len(pub)-12)
	}
	return ": " + strings.Join(pub, ", ")
}

// command runs one of the REPL's own commands.
func (rp *repl) command(line string) error {
	name, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	switch name {
	case ":help", ":h", ":?":
		if arg != "" {
			return rp.helpTopic(arg)
		}
		for _, c := range replCommands {
			fmt.Fprintf(rp.out, "%-9s %-22s %s\n", c.name, c.args, c.help)
		}
		fmt.Fprintln(rp.out, "A line that starts with a control keyword (GETINFO version) is sent to tor as typed.")
		fmt.Fprintln(rp.out, "tor-prompt's /help, /events, /info and /quit work too.")
		return nil
	case ":python":
		fmt.Fprintln(rp.out, "this prompt is always Starlark (a dialect of Python); control commands are sent as typed")
		return nil
	case ":quit", ":q", ":exit":
		return io.EOF
	case ":events":
		return rp.showEvents(arg)
	case ":watch":
		if arg == "" {
			return rp.listWatches()
		}
		return rp.addWatch(arg)
	case ":unwatch":
		return rp.unwatch(arg)
	case ":load":
		file, rest, _ := strings.Cut(arg, " -- ")
		file = strings.TrimSpace(strings.TrimSuffix(file, " --"))
		if file == "" {
			return errors.New(":load FILE [-- ARGS]")
		}
		args := strings.Fields(rest)
		rp.evaling.Store(true)
		defer rp.evaling.Store(false)
		var names []string
		err := rp.result(rp.s.Do(func(t *starlark.Thread, _ starlark.StringDict) error {
			var err error
			names, err = rp.s.Load(t, file, args...)
			return err
		}))
		if err != nil && strings.Contains(err.Error(), "a policy is already set") {
			err = fmt.Errorf("%w\n(:policy off removes the policy running, then :load again)", err)
		}
		if err == nil {
			fmt.Fprintf(rp.out, "loaded %s%s\n", file, globalsNote(names))
			rp.lastLoad = file
		}
		return err
	case ":reload":
		return rp.reload(arg)
	case ":policy":
		return rp.policyCommand(arg)
	case ":info":
		if arg == "" {
			return errors.New(":info RELAY (a nickname, fingerprint or address)")
		}
		return rp.info(arg)
	}
	return fmt.Errorf("unknown command %s; :help lists the commands", name)
}

// helpTopic is :help TOPIC: a control command (the tor builtin that sends
// it), a config option (its type and value), a GETINFO key (tor's
// description) or a Starlark name (help(NAME)).
func (rp *repl) helpTopic(topic string) error {
	up := strings.ToUpper(topic)
	if slices.Contains(rawKeywords, up) {
		var names []string
		for name, doc := range rp.s.Docs() {
			_, rest, _ := strings.Cut(doc, "\n")
			if strings.HasPrefix(rest, up+":") || strings.HasPrefix(rest, up+" ") {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		if len(names) == 0 {
			fmt.Fprintf(rp.out, "%s has no builtin of its own: type it as a control command\n", up)
			return nil
		}
		for _, n := range names {
			fmt.Fprintln(rp.out, rp.s.Docs()[n])
		}
		return nil
	}
	tn := rp.comp.torNames()
	for _, name := range tn.config {
		if strings.EqualFold(name, topic) {
			if text := manualEntry(name); text != "" {
				fmt.Fprint(rp.out, text)
			} else {
				fmt.Fprintf(rp.out, "config option %s (%s); tor's manual page is not installed here\n", name, tn.configTypes[name])
			}
			fmt.Fprintf(rp.out, "its value now (%s):\n", tn.configTypes[name])
			return rp.raw("GETCONF " + name)
		}
	}
	if doc, ok := tn.infoDocs[topic]; ok {
		fmt.Fprintf(rp.out, "GETINFO %s: %s\n", topic, doc)
		return nil
	}
	return rp.exec(mustParse("help(" + strconv.Quote(topic) + ")"))
}

// mustParse parses a chunk made by the REPL itself.
func mustParse(src string) *syntax.File {
	f, err := runtime.FileOptions().Parse("<repl>", src+"\n", 0)
	if err != nil {
		panic(err)
	}
	return f
}

func (rp *repl) policyCommand(arg string) error {
	switch arg {
	case "":
		var on bool
		rp.s.Do(func(*starlark.Thread, starlark.StringDict) error { on = rp.s.HasPolicy(); return nil })
		if on {
			fmt.Fprintln(rp.out, "a stream policy is active; :policy off removes it")
		} else {
			fmt.Fprintln(rp.out, "no stream policy")
		}
		return nil
	case "off":
		var had bool
		rp.s.Do(func(*starlark.Thread, starlark.StringDict) error { had = rp.s.StopPolicy(); return nil })
		if had {
			fmt.Fprintln(rp.out, "policy removed; streams go to tor again")
		} else {
			fmt.Fprintln(rp.out, "no stream policy")
		}
		return nil
	}
	return errors.New(":policy [off]")
}

func (rp *repl) showEvents(arg string) error {
	if arg == "clear" {
		var n int
		rp.s.Do(func(*starlark.Thread, starlark.StringDict) error {
			n = len(rp.events.buf)
			rp.events = eventRing{}
			return nil
		})
		fmt.Fprintf(rp.out, "%d events cleared\n", n)
		return nil
	}
	var types []string
	for _, a := range strings.Fields(arg) {
		t, err := builtins.EventName(a)
		if err != nil {
			return err
		}
		types = append(types, t)
	}
	var b strings.Builder
	var subs string
	rp.s.Do(func(*starlark.Thread, starlark.StringDict) error {
		for _, ev := range rp.events.all() {
			if len(types) == 0 || slices.Contains(types, ev.EventType()) {
				b.WriteString(eventText(ev))
			}
		}
		if rp.eventsSeen == 0 {
			subs = "no events yet; the session receives CIRC and STREAM, those its handlers and watches need and those of a typed SETEVENTS"
		}
		return nil
	})
	if subs != "" && b.Len() == 0 {
		fmt.Fprintln(rp.out, subs)
		return nil
	}
	io.WriteString(rp.out, b.String())
	return nil
}

// watch prints the live events of one type that match a condition.
type watch struct {
	n    int
	typ  string
	cond string            // as typed; "" for every event
	fn   starlark.Callable // lambda e, TYPE: (cond); nil for none
	fail int               // failures in a row
}

func (rp *repl) addWatch(arg string) error {
	typName, cond, _ := strings.Cut(arg, " ")
	cond = strings.TrimSpace(cond)
	if cond != "" {
		c, ok := strings.CutPrefix(cond, "where ")
		if !ok {
			return errors.New(":watch TYPE [where EXPR]")
		}
		cond = strings.TrimSpace(c)
	}
	typ, err := builtins.EventName(typName)
	if err != nil {
		return err
	}
	param := strings.ToLower(typ)
	err = rp.s.Do(func(t *starlark.Thread, g starlark.StringDict) error {
		w := &watch{typ: typ, cond: cond}
		if cond != "" {
			scratch := make(starlark.StringDict, len(g))
			for k, v := range g {
				scratch[k] = v
			}
			src := "__watch = lambda e, " + param + ": (" + cond + ")\n"
			f, err := runtime.FileOptions().Parse("<watch>", src, 0)
			if err != nil {
				return err
			}
			if err := starlark.ExecREPLChunk(f, t, scratch); err != nil {
				return err
			}
			w.fn = scratch["__watch"].(starlark.Callable)
		}
		rp.nextWatch++
		w.n = rp.nextWatch
		rp.watches = append(rp.watches, w)
		if err := rp.s.Subscribe("watch", rp.watchTypes()); err != nil {
			rp.watches = rp.watches[:len(rp.watches)-1]
			return err
		}
		fmt.Fprintf(rp.out, "watch %d: %s\n", w.n, w.describe())
		return nil
	})
	if err != nil {
		return errors.New(runtime.FormatError(err))
	}
	return nil
}

func (w *watch) describe() string {
	if w.cond == "" {
		return strings.ToLower(w.typ)
	}
	return strings.ToLower(w.typ) + " where " + w.cond
}

func (rp *repl) watchTypes() []string {
	var types []string
	for _, w := range rp.watches {
		if !slices.Contains(types, w.typ) {
			types = append(types, w.typ)
		}
	}
	return types
}

func (rp *repl) listWatches() error {
	rp.s.Do(func(*starlark.Thread, starlark.StringDict) error {
		if len(rp.watches) == 0 {
			fmt.Fprintln(rp.out, "no watches; :watch TYPE [where EXPR]")
		}
		for _, w := range rp.watches {
			fmt.Fprintf(rp.out, "watch %d: %s\n", w.n, w.describe())
		}
		return nil
	})
	return nil
}

func (rp *repl) unwatch(arg string) error {
	var n int
	if arg != "all" && arg != "" {
		var err error
		if n, err = strconv.Atoi(arg); err != nil {
			return errors.New(":unwatch [N|all]")
		}
	}
	var removed []string
	err := rp.s.Do(func(*starlark.Thread, starlark.StringDict) error {
		kept := rp.watches[:0]
		for _, w := range rp.watches {
			if n == 0 || w.n == n {
				removed = append(removed, strconv.Itoa(w.n))
				continue
			}
			kept = append(kept, w)
		}
		clear(rp.watches[len(kept):])
		rp.watches = kept
		return rp.s.Subscribe("watch", rp.watchTypes())
	})
	if err != nil {
		return err
	}
	switch {
	case len(removed) > 0:
		fmt.Fprintf(rp.out, "removed watch %s\n", strings.Join(removed, ", "))
	case n == 0:
		fmt.Fprintln(rp.out, "no watches")
	default:
		return fmt.Errorf("no watch %d", n)
	}
	return nil
}

// runWatch prints ev if it meets w's condition. A condition that fails is
// reported; one that fails ten times in a row is removed.
func (rp *repl) runWatch(w *watch, ev ctl.Event) {
	if w.fn != nil {
		v := rp.s.EventValue(ev)
		got, err := rp.s.Call(w.fn, starlark.Tuple{v, v})
		if err != nil {
			w.fail++
			fmt.Fprintf(rp.errOut, "watch %d: %s\n", w.n, runtime.FormatError(err))
			if w.fail >= 10 {
				fmt.Fprintf(rp.errOut, "watch %d removed: its condition failed 10 times in a row\n", w.n)
				for i, x := range rp.watches {
					if x == w {
						rp.watches = append(rp.watches[:i], rp.watches[i+1:]...)
						break
					}
				}
				rp.s.Subscribe("watch", rp.watchTypes())
			}
			return
		}
		w.fail = 0
		if !got.Truth() {
			return
		}
	}
	fmt.Fprintf(rp.out, "[watch %d] %s", w.n, eventText(ev))
}

// info is :info RELAY: the relays whose nickname, fingerprint (or its
// first 8 or more hex digits) or address is RELAY, as tor-prompt's /info
// shows them, from tor.routers() (the consensus and the descriptors).
func (rp *repl) info(arg string) error {
	q := strings.ToUpper(strings.TrimPrefix(arg, "$"))
	rp.evaling.Store(true)
	defer rp.evaling.Store(false)
	return rp.result(rp.s.Do(func(t *starlark.Thread, g starlark.StringDict) error {
		v, err := starlark.EvalOptions(&syntax.FileOptions{}, t, "<info>", "tor.routers()", g)
		if err != nil {
			return err
		}
		it, ok := v.(starlark.Iterable)
		if !ok {
			return fmt.Errorf(":info: tor.routers() gave %s", v.Type())
		}
		found := 0
		iter := it.Iterate()
		defer iter.Done()
		var r starlark.Value
		for iter.Next(&r) {
			ra, ok := r.(starlark.HasAttrs)
			if !ok {
				continue
			}
			nick, fp, addr := attrText(ra, "nickname"), attrText(ra, "fingerprint"), attrText(ra, "address")
			if nick == arg || strings.EqualFold(fp, q) || addr == arg || len(q) >= 8 && strings.HasPrefix(strings.ToUpper(fp), q) {
				if found > 0 {
					fmt.Fprintln(rp.out)
				}
				fmt.Fprint(rp.out, relayInfo(ra))
				found++
			}
		}
		if found == 0 {
			return fmt.Errorf("no relay %s in the consensus (give a nickname, a fingerprint or an address)", arg)
		}
		return nil
	}))
}

// attrText is v.name as text: a string as it is, None and errors as "".
func attrText(v starlark.HasAttrs, name string) string {
	a, err := v.Attr(name)
	if err != nil || a == nil || a == starlark.None {
		return ""
	}
	if s, ok := starlark.AsString(a); ok {
		return s
	}
	if seq, ok := a.(starlark.Indexable); ok {
		parts := make([]string, seq.Len())
		for i := range parts {
			if s, ok := starlark.AsString(seq.Index(i)); ok {
				parts[i] = s
			} else {
				parts[i] = seq.Index(i).String()
			}
		}
		return strings.Join(parts, " ")
	}
	return a.String()
}

// relayInfo is :info's text for one relay.
func relayInfo(r starlark.HasAttrs) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s $%s\n", attrText(r, "nickname"), attrText(r, "fingerprint"))
	line := func(label, value string) {
		if value != "" && value != "0" {
			fmt.Fprintf(&b, "  %-12s %s\n", label, value)
		}
	}
	addr := attrText(r, "address")
	if p := attrText(r, "or_port"); p != "" {
		addr += ":" + p
	}
	if d := attrText(r, "dir_port"); d != "" && d != "0" {
		addr += ", dir port " + d
	}
	line("address", addr)
	line("or addresses", attrText(r, "or_addresses"))
	line("flags", attrText(r, "flags"))
	line("version", attrText(r, "version"))
	line("platform", attrText(r, "platform"))
	bw := attrText(r, "bandwidth")
	if attrText(r, "unmeasured") == "True" {
		bw += " (unmeasured)"
	}
	line("bandwidth", bw)
	line("exit policy", attrText(r, "exit_policy"))
	line("summary", attrText(r, "exit_policy_summary"))
	line("family", attrText(r, "family"))
	line("eff. family", attrText(r, "effective_family"))
	line("country", attrText(r, "country"))
	line("uptime", attrText(r, "uptime"))
	line("published", attrText(r, "published"))
	if d, err := r.Attr("descriptor"); err == nil && d != nil && d != starlark.None {
		if da, ok := d.(starlark.HasAttrs); ok {
			line("contact", attrText(da, "contact"))
		}
	}
	return b.String()
}
