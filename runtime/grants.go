package runtime

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Grants. By default a script may read tor's state, subscribe to events,
// run a stream policy and map addresses. What changes tor for everyone
// needs the user's grant (torscript run --allow GRANT):
//
//	SAVECONF, LOADCONF, TAKEOWNERSHIP, DROPGUARDS, DROPTIMEOUTS,
//	POSTDESCRIPTOR      the command
//	SIGNAL:HALT         SIGNAL HALT or TERM
//	SIGNAL:SHUTDOWN     SIGNAL SHUTDOWN or INT
//	SIGNAL:DUMP         SIGNAL DUMP or USR1
//	ADD_ONION:KEY       ADD_ONION with a key of the script's (not NEW:...)
//	SETCONF:Key         SETCONF or RESETCONF of Key, unless the script
//	                    declared it (tor.require(config=[...]))
//	SETCONF             SETCONF or RESETCONF of any key
//	load                load() of a file outside the script's directory
//	net                 tor.fetch and tor.connect: streams of the script's
//	                    own through tor's SocksPort
//	all                 everything
//
// The check is made on the command line a script's builtin is about to
// send, so tor.raw is held to the same rules; nothing is sent when it
// fails.
const grantsHelp = "SAVECONF, LOADCONF, TAKEOWNERSHIP, DROPGUARDS, DROPTIMEOUTS, POSTDESCRIPTOR, SIGNAL:HALT, SIGNAL:SHUTDOWN, SIGNAL:DUMP, ADD_ONION:KEY, SETCONF:Key, SETCONF, load, net, all"

// grants are what the user allowed and the config keys the script
// declared.
type grants struct {
	allowed  map[string]bool // upper-cased grants
	declared map[string]bool // upper-cased config keys
}

func newGrants(allow []string) (*grants, error) {
	g := &grants{allowed: map[string]bool{}, declared: map[string]bool{}}
	for _, a := range allow {
		for _, one := range strings.Split(a, ",") {
			one = strings.TrimSpace(one)
			if one == "" {
				continue
			}
			if !validGrant(one) {
				return nil, fmt.Errorf("--allow %s: unknown grant; grants are %s", one, grantsHelp)
			}
			g.allowed[strings.ToUpper(one)] = true
		}
	}
	return g, nil
}

// GrantNames are the grants --allow takes, lowercase, for completion
// ("setconf:KEY" stands for SETCONF of one key).
func GrantNames() []string {
	return []string{"all", "net", "load", "setconf", "setconf:", "saveconf", "loadconf", "takeownership",
		"dropguards", "droptimeouts", "postdescriptor", "signal:halt", "signal:shutdown", "signal:dump", "add_onion:key"}
}

func validGrant(g string) bool {
	up := strings.ToUpper(g)
	switch up {
	case "SAVECONF", "LOADCONF", "TAKEOWNERSHIP", "DROPGUARDS", "DROPTIMEOUTS", "POSTDESCRIPTOR",
		"SIGNAL:HALT", "SIGNAL:SHUTDOWN", "SIGNAL:DUMP", "ADD_ONION:KEY", "SETCONF", "LOAD", "NET", "ALL":
		return true
	}
	key, ok := strings.CutPrefix(up, "SETCONF:")
	return ok && key != ""
}

func (g *grants) has(grant string) bool {
	return g.allowed["ALL"] || g.allowed[strings.ToUpper(grant)]
}

// needs returns the grants a command line needs that the user has not
// given; an error when the line cannot be checked (ctl.ParseCommandLine
// refuses it, or tor would not run it as the check reads it).
func (g *grants) needs(line string) ([]string, error) {
	grants, err := grantsFor(line)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, grant := range grants {
		if key, ok := strings.CutPrefix(grant, "SETCONF:"); ok {
			// The runtime's own options (__LeaveStreamsUnattached,
			// __OwningControllerProcess, ...) strand streams or stop tor:
			// a declaration is not enough, the user must grant them.
			internal := strings.HasPrefix(key, "__")
			if g.declared[strings.ToUpper(key)] && !internal || g.has("SETCONF") {
				continue
			}
		}
		if !g.has(grant) && !slices.Contains(missing, grant) {
			missing = append(missing, grant)
		}
	}
	return missing, nil
}

// multiLine are tor's multi-line commands (control_cmd.c MULTLINE); tor
// knows no other command with a '+'.
var multiLine = map[string]bool{"LOADCONF": true, "POSTDESCRIPTOR": true, "HSPOST": true}

// RuntimeCommand says why a command line is the runtime's to send, or ""
// when a script may send it (builtins.RuntimeCommand: control_cmd.c reads
// the keyword exactly as ctl.ParseCommandLine does, so "SETEVENTS\tCIRC"
// is SETEVENTS too). A line ctl.ParseCommandLine refuses is reported with
// its error.
func RuntimeCommand(line string) (string, error) {
	cl, err := ctl.ParseCommandLine(line)
	if err != nil {
		return "", err
	}
	return builtins.RuntimeCommand(cl.Name()), nil
}

// grantsFor lists the grants a command line needs, reading it as tor does
// (ctl.ParseCommandLine). A line it cannot read, or one whose arguments
// tor would read in a way the check cannot follow, is an error.
func grantsFor(line string) ([]string, error) {
	cl, err := ctl.ParseCommandLine(line)
	if err != nil {
		return nil, err
	}
	name := cl.Name()
	switch name {
	case "SAVECONF", "LOADCONF", "TAKEOWNERSHIP", "DROPGUARDS", "DROPTIMEOUTS", "POSTDESCRIPTOR", "SIGNAL", "ADD_ONION", "SETCONF", "RESETCONF":
	default:
		return nil, nil // most commands, ATTACHSTREAM among them: no fields to split
	}
	if cl.Multi != multiLine[name] {
		// Tor answers 510 (unrecognized command) to "+SETCONF" and to a
		// one-line LOADCONF; refuse rather than guess.
		if cl.Multi {
			return nil, fmt.Errorf("%w: tor has no multi-line %s", ctl.ErrCommandLine, name)
		}
		return nil, fmt.Errorf("%w: %s is a multi-line command (+%s)", ctl.ErrCommandLine, name, name)
	}
	switch name {
	case "SAVECONF", "LOADCONF", "TAKEOWNERSHIP", "DROPGUARDS", "DROPTIMEOUTS", "POSTDESCRIPTOR":
		return []string{name}, nil
	case "SIGNAL":
		sig, err := cl.Signal()
		if err != nil {
			return nil, err
		}
		// signal_table is matched with strcasecmp: ASCII only.
		switch strings.ToUpper(sig) {
		case "HALT", "TERM":
			return []string{"SIGNAL:HALT"}, nil
		case "SHUTDOWN", "INT":
			return []string{"SIGNAL:SHUTDOWN"}, nil
		case "DUMP", "USR1":
			return []string{"SIGNAL:DUMP"}, nil
		}
		if !isASCII(sig) {
			return nil, fmt.Errorf("%w: signal %q is not ASCII", ctl.ErrCommandLine, sig)
		}
	case "ADD_ONION":
		_, isNew, err := cl.OnionKey()
		if err != nil {
			return nil, err
		}
		if !isNew {
			return []string{"ADD_ONION:KEY"}, nil
		}
	case "SETCONF", "RESETCONF":
		keys, err := cl.ConfKeys()
		if err != nil {
			return nil, err
		}
		var out []string
		for _, k := range keys {
			out = append(out, "SETCONF:"+k)
		}
		return out, nil
	}
	return nil, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// scriptCall marks the contexts of a script's builtins, so that the
// runtime's own commands (__LeaveStreamsUnattached, handing streams back)
// are not held to the script's grants.
type scriptCall struct{}

func scriptContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, scriptCall{}, true)
}

// ScriptContext marks ctx as the script's, so that the commands sent with
// it are held to the grants (the REPL's raw control lines).
func ScriptContext(ctx context.Context) context.Context { return scriptContext(ctx) }

// checkCommand is the connection's check of every command: a script's
// command that needs a grant the user has not given, that the runtime
// owns, or that the check cannot read as tor will, is refused.
func (r *Runtime) checkCommand(ctx context.Context, line string) error {
	if ctx.Value(scriptCall{}) == nil {
		return nil
	}
	return r.checkScriptLine(ctx, line)
}

func (r *Runtime) checkScriptLine(ctx context.Context, line string) error {
	why, err := RuntimeCommand(line)
	if err != nil {
		return fmt.Errorf("refused, nothing sent: %v", err)
	}
	cl, _ := ctl.ParseCommandLine(line)
	if why != "" {
		return fmt.Errorf("refused, nothing sent: %s is not for scripts: %s", cl.Name(), why)
	}
	missing, err := r.grants.needs(line)
	if err != nil {
		return fmt.Errorf("refused, nothing sent: %v", err)
	}
	if len(missing) == 0 {
		// Allowed: record what it changes before it goes out.
		return r.recordCommand(ctx, line)
	}
	flags := "--allow " + strings.Join(missing, " --allow ")
	return fmt.Errorf("refused, nothing sent: %s changes tor for everyone and this script was not allowed to (run it with %s)", cl.Name(), flags)
}

// require is tor.require: the script declares the config keys it sets and
// the commands it needs; commands the user has not granted stop it here,
// before it does anything.
func (r *Runtime) require(commands, config []string, keep bool) error {
	var missing []string
	for _, c := range commands {
		if !validGrant(c) {
			return fmt.Errorf("tor.require: unknown command grant %q; grants are %s", c, grantsHelp)
		}
		if !r.grants.has(c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("this script needs grants it was not given: run it with --allow %s", strings.Join(missing, " --allow "))
	}
	for _, k := range config {
		r.grants.declared[strings.ToUpper(k)] = true
		if keep {
			if r.own.keep == nil {
				r.own.keep = map[string]bool{}
			}
			r.own.keep[strings.ToUpper(k)] = true
		}
	}
	if len(config) > 0 {
		if keep {
			r.log.Info("config the script sets stays set after it ends (tor.require keep=True)", "keys", strings.Join(config, ","))
		} else {
			r.log.Info("config the script sets is restored when it ends", "keys", strings.Join(config, ","))
		}
	}
	return nil
}

// Requirements is what a script and the modules it loads declare with
// tor.require at their top level, and the grants they could reach, read
// without running them (torscript check).
type Requirements struct {
	Commands, Config []string
	// Kept are the config keys declared with keep=True: not restored
	// when the script ends.
	Kept []string
	Load bool
	// Uses are the tor builtins it calls (or refers to) that need a
	// grant, with the grant ("tor.save_conf: SAVECONF"); " (in FILE)" for
	// a loaded module's.
	Uses []string
	// Dynamic are the places where it reaches tor's builtins in a way
	// that cannot be read without running it (getattr(tor, ...), tor
	// passed to a function, tor.raw with a line built at run time), as
	// "FILE:LINE:COL: what": run decides there.
	Dynamic []string
}

// ReadRequirements finds tor.require(...) calls with literal arguments at
// the top level of a parsed script, the uses of tor builtins that may need
// a grant anywhere in it, and where it reaches tor dynamically. f may be
// resolved already (CheckRequirements) or not.
func ReadRequirements(f *syntax.File) Requirements {
	if f.Module == nil {
		// Resolve it to tell tor from a keyword argument or a field
		// named tor; every name counts as defined.
		resolve.File(f, func(string) bool { return true }, starlark.Universe.Has)
	}
	req := readDeclarations(f)
	declared := map[string]bool{}
	for _, k := range req.Config {
		declared[strings.ToUpper(k)] = true
	}
	readUses(f, declared, "", &req)
	slices.Sort(req.Uses)
	return req
}

// readDeclarations reads the literal tor.require calls at the top level;
// a call with computed arguments is dynamic.
func readDeclarations(f *syntax.File) Requirements {
	var req Requirements
	strs := func(e syntax.Expr) ([]string, bool) {
		l, ok := e.(*syntax.ListExpr)
		if !ok {
			return nil, false
		}
		var out []string
		for _, x := range l.List {
			lit, ok := x.(*syntax.Literal)
			if !ok || lit.Token != syntax.STRING {
				return out, false
			}
			out = append(out, lit.Value.(string))
		}
		return out, true
	}
	for _, st := range f.Stmts {
		es, ok := st.(*syntax.ExprStmt)
		if !ok {
			continue
		}
		call, ok := es.X.(*syntax.CallExpr)
		if !ok || torAttr(call.Fn) != "require" {
			continue
		}
		for _, a := range call.Args {
			bin, ok := a.(*syntax.BinaryExpr)
			id, isID := bin.X.(*syntax.Ident)
			if !ok || bin.Op != syntax.EQ || !isID {
				continue
			}
			var vals []string
			var lit bool
			switch id.Name {
			case "commands":
				vals, lit = strs(bin.Y)
				req.Commands = append(req.Commands, vals...)
			case "config":
				vals, lit = strs(bin.Y)
				req.Config = append(req.Config, vals...)
				if keepTrue(call) {
					req.Kept = append(req.Kept, vals...)
				}
			default:
				continue
			}
			if !lit {
				start, _ := bin.Y.Span()
				req.Dynamic = append(req.Dynamic, fmt.Sprintf("%s: tor.require(%s=...) with values computed at run time", start, id.Name))
			}
		}
	}
	return req
}

// keepTrue reports whether a tor.require call says keep=True.
func keepTrue(call *syntax.CallExpr) bool {
	for _, a := range call.Args {
		if bin, ok := a.(*syntax.BinaryExpr); ok && bin.Op == syntax.EQ {
			if id, ok := bin.X.(*syntax.Ident); ok && id.Name == "keep" {
				v, ok := bin.Y.(*syntax.Ident)
				return ok && v.Name == "True"
			}
		}
	}
	return false
}

// isTor reports whether id is the predeclared tor module: an identifier
// the resolver bound to it (a keyword argument or a field named tor has no
// binding, a local or global tor another one).
func isTor(id *syntax.Ident) bool {
	if id.Name != "tor" {
		return false
	}
	b, ok := id.Binding.(*resolve.Binding)
	return ok && (b.Scope == resolve.Predeclared || b.Scope == resolve.Universal)
}

// readUses adds the grants f's uses of tor builtins could need to req,
// with in appended to each (" (in lib.star)"), and the places where it
// reaches tor dynamically.
func readUses(f *syntax.File, declared map[string]bool, in string, req *Requirements) {
	addUse := func(use string) {
		use += in
		if !slices.Contains(req.Uses, use) {
			req.Uses = append(req.Uses, use)
		}
	}
	dynamic := func(n syntax.Node, what string) {
		start, _ := n.Span()
		req.Dynamic = append(req.Dynamic, fmt.Sprintf("%s: %s", start, what))
	}
	called := map[*syntax.DotExpr]*syntax.CallExpr{}
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.CallExpr:
			if d, ok := n.Fn.(*syntax.DotExpr); ok {
				called[d] = n
			}
		case *syntax.DotExpr:
			id, ok := n.X.(*syntax.Ident)
			if !ok || !isTor(id) {
				return true
			}
			readUse(n, called[n], declared, addUse, dynamic)
			return false
		case *syntax.Ident:
			if isTor(n) {
				// Not tor.X (handled above): tor itself is handed to
				// something (getattr(tor, ...), f(tor), t = tor).
				dynamic(n, "tor used as a value (getattr, passed to a function, assigned); run will decide which grants it needs")
			}
		}
		return true
	})
}

// readUse adds the grant that n, tor.NAME, could need to the uses, as the
// builtins' table says; call is the call of it, or nil when it is used
// other than by a call.
func readUse(n *syntax.DotExpr, call *syntax.CallExpr, declared map[string]bool, addUse func(string), dynamic func(syntax.Node, string)) {
	name := n.Name.Name
	e, ok := builtins.Lookup(name)
	if !ok || e.Grant.Kind == builtins.GrantNone {
		return
	}
	g := e.Grant.String()
	switch {
	case call == nil:
		// tor.save_conf handed around: what it reaches is known unless
		// it is one whose arguments decide.
		if e.Grant.ArgDecides() {
			dynamic(n, "tor."+name+" used other than by a call; run will decide which grants its calls need")
		}
	case e.Grant.Kind == builtins.GrantLine:
		readRaw(call, addUse, dynamic)
		return
	default:
		if precise, known := preciseGrant(e.Grant.Kind, call, declared); known {
			if precise == "" {
				return
			}
			g = precise
		}
	}
	addUse("tor." + name + ": " + g)
}

// readRaw reads tor.raw(LINE): a literal line is checked as run checks
// it; any other is dynamic.
func readRaw(call *syntax.CallExpr, addUse func(string), dynamic func(syntax.Node, string)) {
	if len(call.Args) != 1 {
		dynamic(call, "tor.raw with arguments check cannot read; run will decide")
		return
	}
	lit, ok := call.Args[0].(*syntax.Literal)
	if !ok || lit.Token != syntax.STRING {
		dynamic(call, "tor.raw with a command built at run time; run will decide which grants it needs")
		return
	}
	line := lit.Value.(string)
	if why, err := RuntimeCommand(line); err != nil || why != "" {
		if err == nil {
			err = fmt.Errorf("the runtime's own command")
		}
		addUse(fmt.Sprintf("tor.raw(%q): refused at run (%v)", line, err))
		return
	}
	gs, err := grantsFor(line)
	switch {
	case err != nil:
		addUse(fmt.Sprintf("tor.raw(%q): refused at run (%v)", line, err))
	case len(gs) > 0:
		addUse("tor.raw: " + strings.Join(gs, ", ") + " (SETCONF keys the script declares need none)")
	}
}

// preciseGrant works out the grant a call needs from its literal
// arguments: tor.signal("NEWNYM") needs none, tor.signal("HALT") needs
// SIGNAL:HALT, tor.set_conf(ExitNodes=...) needs SETCONF:ExitNodes unless
// declared. known is false when the arguments are not literal.
func preciseGrant(kind builtins.GrantKind, call *syntax.CallExpr, declared map[string]bool) (grant string, known bool) {
	switch kind {
	case builtins.GrantSignal:
		if len(call.Args) == 0 {
			return "", false
		}
		lit, ok := call.Args[0].(*syntax.Literal)
		if !ok || lit.Token != syntax.STRING {
			return "", false
		}
		gs, err := grantsFor("SIGNAL " + lit.Value.(string))
		if err != nil {
			return "", false
		}
		return strings.Join(gs, ","), true
	case builtins.GrantConfKeys:
		var keys []string
		for _, a := range call.Args {
			switch a := a.(type) {
			case *syntax.BinaryExpr:
				if id, ok := a.X.(*syntax.Ident); ok && a.Op == syntax.EQ {
					keys = append(keys, id.Name)
					continue
				}
				return "", false
			case *syntax.Literal:
				if a.Token == syntax.STRING {
					keys = append(keys, a.Value.(string))
					continue
				}
				return "", false
			default:
				return "", false
			}
		}
		var need []string
		for _, k := range keys {
			if !declared[strings.ToUpper(k)] {
				need = append(need, "SETCONF:"+k)
			}
		}
		return strings.Join(need, ","), true
	}
	return "", false
}

// torAttr returns X for an expression tor.X, else "".
func torAttr(e syntax.Expr) string {
	if d, ok := e.(*syntax.DotExpr); ok {
		if id, ok := d.X.(*syntax.Ident); ok && isTor(id) {
			return d.Name.Name
		}
	}
	return ""
}

// CheckRequirements parses and resolves a script and every module it
// loads, without running anything, and reads what they ask for. Errors
// read FILE:LINE:COL: message: a syntax or name error, a load cycle, a
// loaded name the module does not define.
func CheckRequirements(filename string, src []byte, opts Options) (Requirements, error) {
	r := New(opts)
	r.loader.setRoot(filename, false)
	isPredeclared := func(name string) bool { return r.pre.Has(name) || slices.Contains(opts.ExtraGlobals, name) }
	c := &checker{r: r, filename: filename, isPredeclared: isPredeclared, done: map[string]*checkedModule{}}
	if _, err := c.check(filename, src); err != nil {
		return Requirements{}, err
	}
	return c.requirements(), nil
}

// checker is CheckRequirements at work: the modules checked so far, in
// the order they were done, and the stack of those being checked.
type checker struct {
	r             *Runtime
	filename      string
	isPredeclared func(string) bool // for filename; the modules it loads see r.pre
	done          map[string]*checkedModule
	order         []*checkedModule
	stack         []string // modules being checked, outermost first
}

// checkedModule is a module checked: its parsed file and its globals.
type checkedModule struct {
	name    string
	file    *syntax.File
	globals map[string]bool
	exports map[string][]string // its module(...) and struct(...) values' keys
}

// check parses and resolves one module, and checks the modules it loads
// first.
func (c *checker) check(name string, src []byte) (*checkedModule, error) {
	pre := c.r.pre.Has
	if name == c.filename {
		pre = c.isPredeclared
	}
	f, err := FileOptions().Parse(name, src, 0)
	if err != nil {
		return nil, errors.New(FormatError(err))
	}
	if _, err := starlark.FileProgram(f, pre); err != nil {
		return nil, errors.New(FormatError(err))
	}
	key := name // as resolveModule names it: absolute
	if abs, err := filepath.Abs(name); err == nil && !strings.HasPrefix(name, StdlibPrefix) {
		key = abs
	}
	c.stack = append(c.stack, key)
	defer func() { c.stack = c.stack[:len(c.stack)-1] }()
	loaded := map[*resolve.Binding][]string{}
	for _, st := range f.Stmts {
		if ls, ok := st.(*syntax.LoadStmt); ok {
			lm, err := c.load(name, ls)
			if err != nil {
				return nil, err
			}
			for i, from := range ls.From {
				if attrs, ok := lm.exports[from.Name]; ok {
					if b, ok := ls.To[i].Binding.(*resolve.Binding); ok {
						loaded[b] = attrs
					}
				}
			}
		}
	}
	if err := c.checkAttrs(f, loaded, pre); err != nil {
		return nil, err
	}
	m := &checkedModule{name: name, file: f, globals: map[string]bool{}, exports: moduleExports(f)}
	if rm, ok := f.Module.(*resolve.Module); ok {
		for _, b := range rm.Globals {
			m.globals[b.First.Name] = true
		}
	}
	c.done[key] = m
	c.order = append(c.order, m)
	return m, nil
}

// load checks the module a load statement of module name loads (unless it
// was checked already), and that it defines the names loaded.
func (c *checker) load(name string, ls *syntax.LoadStmt) (*checkedModule, error) {
	mod := ls.ModuleName()
	pos := ls.Module.TokenPos
	resolved, err := resolveModule(name, mod)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", pos, err)
	}
	if i := slices.Index(c.stack, resolved); i >= 0 {
		var names []string
		for _, s := range append(slices.Clone(c.stack[i:]), resolved) {
			names = append(names, displayName(s))
		}
		return nil, fmt.Errorf("%s: load %q: cycle in load graph: %s", pos, mod, strings.Join(names, " loads "))
	}
	m := c.done[resolved]
	if m == nil {
		msrc, err := c.r.loader.read(resolved)
		if err != nil {
			return nil, fmt.Errorf("%s: load %q: %v", pos, mod, err)
		}
		if m, err = c.check(resolved, msrc); err != nil {
			return nil, err
		}
	}
	for _, from := range ls.From {
		if !m.globals[from.Name] {
			return nil, fmt.Errorf("%s: load %q: %s defines no global %q", from.NamePos, mod, displayName(resolved), from.Name)
		}
	}
	return m, nil
}

// requirements reads what the checked modules declare and use:
// declarations first (a module's tor.require counts for all), then the
// uses, the script's own first.
func (c *checker) requirements() Requirements {
	var req Requirements
	declared := map[string]bool{}
	for _, m := range c.order {
		d := readDeclarations(m.file)
		for _, cmd := range d.Commands {
			if !slices.Contains(req.Commands, cmd) {
				req.Commands = append(req.Commands, cmd)
			}
		}
		for _, k := range d.Config {
			if !declared[strings.ToUpper(k)] {
				declared[strings.ToUpper(k)] = true
				req.Config = append(req.Config, k)
			}
		}
		req.Kept = append(req.Kept, d.Kept...)
		req.Dynamic = append(req.Dynamic, d.Dynamic...)
	}
	for i := len(c.order) - 1; i >= 0; i-- {
		m := c.order[i]
		in := ""
		if m.name != c.filename {
			in = " (in " + displayName(m.name) + ")"
		}
		readUses(m.file, declared, in, &req)
	}
	slices.Sort(req.Uses)
	return req
}
