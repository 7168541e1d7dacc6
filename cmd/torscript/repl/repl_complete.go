package repl

import (
	"context"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.starlark.net/starlark"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
)

// completer completes what is typed at the prompt (readline's
// AutoCompleter). Tor's own names come from the connected tor (info/names,
// config/names, events/names, signal/names), so a newer tor completes its
// new names; live circuit and stream ids come from the session's state.
type completer struct {
	rp *repl

	mu        sync.Mutex
	names     *torNames
	namesConn int // the connection they came from
}

// torNames are the names the connected tor knows.
type torNames struct {
	info, config, events, signals []string
	infoDocs                      map[string]string // "version": "The current version of Tor."
	configTypes                   map[string]string // "SocksPort": "LineList"
}

// waitLoop bounds how long completion waits for the session's loop.
const waitLoop = 300 * time.Millisecond

// Do returns the candidates' remaining runes and the length of the word
// they complete.
func (c *completer) Do(line []rune, pos int) ([][]rune, int) {
	word, cands := c.candidates(string(line[:pos]))
	var out [][]rune
	seen := map[string]bool{}
	for _, cand := range cands {
		if strings.HasPrefix(cand, word) && !seen[cand] {
			seen[cand] = true
			out = append(out, []rune(cand[len(word):]))
		}
	}
	return out, len([]rune(word))
}

var (
	reStringArg = regexp.MustCompile(`(\w+)\(([^()]*?)["']([^"']*)$`)
	reIDArg     = regexp.MustCompile(`(\w+)\(((?:\s*["']?\d+["']?\s*,)*)\s*["']?(\d*)$`)
	reKwarg     = regexp.MustCompile(`(\w+)\(([^()]*?)([A-Za-z_]\w*)$`)
	reAttr      = regexp.MustCompile(`([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\.(\w*)$`)
	reIdent     = regexp.MustCompile(`([A-Za-z_]\w*)$`)
)

// candidates returns the word being completed and what it may become.
// The arguments of tor's builtins complete as the builtins' table says
// (builtins.Lookup), so that an alias completes as its target.
func (c *completer) candidates(text string) (string, []string) {
	trimmed := strings.TrimLeft(text, " \t")
	if strings.HasPrefix(trimmed, ":") && !strings.Contains(trimmed, " ") {
		var names []string
		for _, rc := range replCommands {
			names = append(names, rc.name)
		}
		return trimmed, names
	}
	if word, cands, ok := c.rawCandidates(trimmed); ok {
		return word, cands
	}
	if m := reStringArg.FindStringSubmatch(text); m != nil && closedStrings(m[2]) {
		return m[3], c.argCandidates(argCompletion(m[1]).Arg(argIndex(m[2])))
	}
	if m := reKwarg.FindStringSubmatch(text); m != nil && argStart(m[2]) && argCompletion(m[1]).Keywords == builtins.ArgConfigKey {
		// tor.set_conf(SocksP -> SocksPort=, a keyword argument.
		var names []string
		for _, n := range c.torNames().config {
			names = append(names, n+"=")
		}
		return m[3], names
	}
	if m := reIDArg.FindStringSubmatch(text); m != nil {
		// tor.circuit(1, tor.attach_stream("12", "3: the ids of live
		// circuits or streams where the builtin takes one.
		switch a := argCompletion(m[1]).Arg(strings.Count(m[2], ",")); a {
		case builtins.ArgCircuit, builtins.ArgStream:
			return m[3], c.argCandidates(a)
		}
	}
	if m := reAttr.FindStringSubmatch(text); m != nil {
		return m[2], c.attrs(m[1])
	}
	if m := reIdent.FindStringSubmatch(text); m != nil {
		return m[1], c.globals()
	}
	return "", nil
}

// argCompletion is how the arguments of the tor builtin named fn complete
// (none for a name that is not one).
func argCompletion(fn string) builtins.Completion {
	e, _ := builtins.Lookup(fn)
	return e.Complete
}

// closedStrings reports whether every string in s is closed.
func closedStrings(s string) bool {
	var quote rune
	for _, r := range s {
		switch {
		case quote == 0 && (r == '"' || r == '\''):
			quote = r
		case r == quote:
			quote = 0
		}
	}
	return quote == 0
}

// argIndex is the index of the argument being typed after an open
// parenthesis, given what comes before it (strings closed): the commas
// outside brackets and strings.
func argIndex(before string) int {
	n, depth := 0, 0
	var quote rune
	for _, r := range before {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
			continue
		case r == '"' || r == '\'':
			quote = r
			continue
		}
		switch r {
		case '[', '{':
			depth++
		case ']', '}':
			depth--
		case ',':
			if depth == 0 {
				n++
			}
		}
	}
	return n
}

// argCandidates are what an argument that completes as a may be.
func (c *completer) argCandidates(a builtins.Arg) []string {
	switch a {
	case builtins.ArgInfoKey:
		return c.torNames().info
	case builtins.ArgConfigKey:
		return c.torNames().config
	case builtins.ArgEvent:
		var lower []string
		for _, e := range c.torNames().events {
			lower = append(lower, strings.ToLower(e))
		}
		return lower
	case builtins.ArgSignal:
		return c.torNames().signals
	case builtins.ArgCircuit:
		return c.ids(false)
	case builtins.ArgStream:
		return c.ids(true)
	}
	return nil
}

// rawCandidates completes a raw control command: its keyword, then the
// names or ids its arguments take.
func (c *completer) rawCandidates(text string) (string, []string, bool) {
	if text == "" || !isUpperWord(text[:1]) {
		return "", nil, false
	}
	fields := strings.Fields(text)
	if !strings.ContainsAny(text, " \t") {
		if !isUpperWord(text) {
			return "", nil, false
		}
		return text, rawKeywords, true
	}
	kw := fields[0]
	if !slices.Contains(rawKeywords, kw) {
		return "", nil, false
	}
	word := ""
	if !strings.HasSuffix(text, " ") {
		word = fields[len(fields)-1]
		fields = fields[:len(fields)-1]
	}
	arg := len(fields) // 1 for the first argument
	switch kw {
	case "GETINFO":
		return word, c.torNames().info, true
	case "GETCONF", "RESETCONF", "SETCONF":
		return word, c.torNames().config, true
	case "SETEVENTS":
		return word, append([]string{"EXTENDED"}, c.torNames().events...), true
	case "SIGNAL":
		return word, c.torNames().signals, true
	case "CLOSECIRCUIT", "EXTENDCIRCUIT", "SETCIRCUITPURPOSE":
		if arg == 1 {
			return word, c.ids(false), true
		}
	case "CLOSESTREAM", "REDIRECTSTREAM":
		if arg == 1 {
			return word, c.ids(true), true
		}
	case "ATTACHSTREAM":
		switch arg {
		case 1:
			return word, c.ids(true), true
		case 2:
			return word, c.ids(false), true
		}
	}
	return word, nil, true
}

// argStart reports whether what follows an open parenthesis ends where an
// argument starts: nothing yet, or whole arguments and a comma, with every
// string closed.
func argStart(before string) bool {
	if strings.Count(before, `"`)%2 != 0 || strings.Count(before, "'")%2 != 0 {
		return false
	}
	b := strings.TrimSpace(before)
	return b == "" || strings.HasSuffix(b, ",")
}

func isUpperWord(s string) bool {
	for _, r := range s {
		if (r < 'A' || r > 'Z') && r != '_' {
			return false
		}
	}
	return true
}

// ids are the live circuits' (or streams') ids.
func (c *completer) ids(streams bool) []string {
	var ids []string
	s := c.rp.s
	s.TryDo(waitLoop, func(starlark.StringDict) {
		if streams {
			ids = s.StreamIDs()
		} else {
			ids = s.CircuitIDs()
		}
	})
	slices.SortFunc(ids, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	return ids
}

// globals are the session's names, the built-in functions and the
// keywords.
func (c *completer) globals() []string {
	var names []string
	c.rp.s.TryDo(waitLoop, func(g starlark.StringDict) {
		names = g.Keys()
	})
	for name := range starlark.Universe {
		names = append(names, name)
	}
	names = append(names, "def", "for", "if", "elif", "else", "lambda", "load", "return", "while", "break", "continue", "pass", "and", "not", "or", "in")
	sort.Strings(names)
	return names
}

// attrs are the attribute names of the value a dotted name denotes.
func (c *completer) attrs(path string) []string {
	var names []string
	c.rp.s.TryDo(waitLoop, func(g starlark.StringDict) {
		parts := strings.Split(path, ".")
		v, ok := g[parts[0]]
		if !ok {
			v, ok = starlark.Universe[parts[0]]
		}
		if !ok {
			return
		}
		for _, p := range parts[1:] {
			ha, isAttrs := v.(starlark.HasAttrs)
			if !isAttrs {
				return
			}
			next, err := ha.Attr(p)
			if err != nil || next == nil {
				return
			}
			v = next
		}
		if ha, ok := v.(starlark.HasAttrs); ok {
			names = ha.AttrNames()
		}
	})
	return names
}

// torNames returns tor's names, asking tor again after a reconnect.
func (c *completer) torNames() *torNames {
	var conn *ctl.Conn
	var n int
	s := c.rp.s
	s.TryDo(waitLoop, func(starlark.StringDict) { conn, n = s.Conn(), s.ConnN() })
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.names != nil && (conn == nil || n == c.namesConn) {
		return c.names
	}
	if conn == nil {
		return parseTorNames(nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	got, err := conn.GetInfo(ctx, "info/names", "config/names", "events/names", "signal/names")
	if err != nil {
		if c.names != nil {
			return c.names
		}
		return parseTorNames(nil)
	}
	c.names, c.namesConn = parseTorNames(got), n
	return c.names
}

// parseTorNames reads tor's answers to GETINFO info/names ("key -- doc"
// lines; "ns/id/*" taken as "ns/id/"), config/names ("Name Type" lines),
// events/names and signal/names (names separated by spaces).
func parseTorNames(m map[string]string) *torNames {
	tn := &torNames{infoDocs: map[string]string{}, configTypes: map[string]string{}}
	for _, l := range strings.Split(m["info/names"], "\n") {
		key, doc, _ := strings.Cut(l, " -- ")
		key = strings.TrimSpace(key)
		if key == "" {
			continue
		}
		tn.infoDocs[key] = strings.TrimSpace(doc)
		if i := strings.IndexAny(key, "*<"); i >= 0 {
			key = key[:i]
		}
		tn.info = append(tn.info, key)
	}
	for _, l := range strings.Split(m["config/names"], "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			tn.config = append(tn.config, f[0])
			if len(f) > 1 {
				tn.configTypes[f[0]] = f[1]
			}
		}
	}
	tn.events = strings.Fields(m["events/names"])
	tn.signals = strings.Fields(m["signal/names"])
	for _, l := range [][]string{tn.info, tn.config, tn.events, tn.signals} {
		sort.Strings(l)
	}
	tn.info = slices.Compact(tn.info)
	return tn
}
