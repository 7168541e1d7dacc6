package runtime

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/torscript/torscript/ctl"
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
//	all                 everything
//
// The check is made on the command line a script's builtin is about to
// send, so tor.raw is held to the same rules; nothing is sent when it
// fails.
const grantsHelp = "SAVECONF, LOADCONF, TAKEOWNERSHIP, DROPGUARDS, DROPTIMEOUTS, POSTDESCRIPTOR, SIGNAL:HALT, SIGNAL:SHUTDOWN, SIGNAL:DUMP, ADD_ONION:KEY, SETCONF:Key, SETCONF, load, all"

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

func validGrant(g string) bool {
	up := strings.ToUpper(g)
	switch up {
	case "SAVECONF", "LOADCONF", "TAKEOWNERSHIP", "DROPGUARDS", "DROPTIMEOUTS", "POSTDESCRIPTOR",
		"SIGNAL:HALT", "SIGNAL:SHUTDOWN", "SIGNAL:DUMP", "ADD_ONION:KEY", "SETCONF", "LOAD", "ALL":
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
			if g.declared[strings.ToUpper(key)] || g.has("SETCONF") {
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

// runtimeCommands are the commands the runtime owns: no script line may
// send them (control_cmd.c reads the keyword exactly as
// ctl.ParseCommandLine does, so "SETEVENTS\tCIRC" is SETEVENTS too).
var runtimeCommands = map[string]string{
	"SETEVENTS":     "the runtime subscribes to the events tor.on handlers and the policy need; a script's SETEVENTS would strand them",
	"AUTHENTICATE":  "the runtime authenticates",
	"AUTHCHALLENGE": "the runtime authenticates",
	"QUIT":          "the runtime closes the connection when the script ends",
}

// RuntimeCommand says why a command line is the runtime's to send, or ""
// when a script may send it. A line ctl.ParseCommandLine refuses is
// reported with its error.
func RuntimeCommand(line string) (string, error) {
	cl, err := ctl.ParseCommandLine(line)
	if err != nil {
		return "", err
	}
	return runtimeCommands[cl.Name()], nil
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
func (r *Runtime) require(commands, config []string) error {
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
	}
	return nil
}

// Requirements is what a script declares with tor.require at its top
// level, read without running it (torscript check).
type Requirements struct {
	Commands, Config []string
	Load             bool
	// Uses are the tor builtins it calls that need a grant, with the
	// grant ("tor.save_conf: SAVECONF").
	Uses []string
}

// grantedBuiltins are the tor builtins whose commands may need a grant.
var grantedBuiltins = map[string]string{
	"save_conf": "SAVECONF", "load_conf": "LOADCONF", "take_ownership": "TAKEOWNERSHIP",
	"drop_guards": "DROPGUARDS", "drop_timeouts": "DROPTIMEOUTS", "post_descriptor": "POSTDESCRIPTOR",
	"signal": "SIGNAL:HALT/SHUTDOWN/DUMP for those signals", "add_onion": "ADD_ONION:KEY with a key",
	"set_conf": "SETCONF:Key for undeclared keys", "reset_conf": "SETCONF:Key for undeclared keys",
	"setconf": "SETCONF:Key for undeclared keys", "resetconf": "SETCONF:Key for undeclared keys",
	"raw": "as the command sent",
}

// ReadRequirements finds tor.require(...) calls with literal arguments at
// the top level of a parsed script, and the calls of tor builtins that may
// need a grant anywhere in it.
func ReadRequirements(f *syntax.File) Requirements {
	var req Requirements
	strs := func(e syntax.Expr) []string {
		var out []string
		if l, ok := e.(*syntax.ListExpr); ok {
			for _, x := range l.List {
				if lit, ok := x.(*syntax.Literal); ok && lit.Token == syntax.STRING {
					out = append(out, lit.Value.(string))
				}
			}
		}
		return out
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
			if !ok || bin.Op != syntax.EQ {
				continue
			}
			switch bin.X.(*syntax.Ident).Name {
			case "commands":
				req.Commands = append(req.Commands, strs(bin.Y)...)
			case "config":
				req.Config = append(req.Config, strs(bin.Y)...)
			}
		}
	}
	declared := map[string]bool{}
	for _, k := range req.Config {
		declared[strings.ToUpper(k)] = true
	}
	syntax.Walk(f, func(n syntax.Node) bool {
		if call, ok := n.(*syntax.CallExpr); ok {
			name := torAttr(call.Fn)
			g, ok := grantedBuiltins[name]
			if !ok {
				return true
			}
			if precise, known := preciseGrant(name, call, declared); known {
				if precise == "" {
					return true
				}
				g = precise
			}
			use := "tor." + name + ": " + g
			if !slices.Contains(req.Uses, use) {
				req.Uses = append(req.Uses, use)
			}
		}
		return true
	})
	slices.Sort(req.Uses)
	return req
}

// preciseGrant works out the grant a call needs from its literal
// arguments: tor.signal("NEWNYM") needs none, tor.signal("HALT") needs
// SIGNAL:HALT, tor.set_conf(ExitNodes=...) needs SETCONF:ExitNodes unless
// declared. known is false when the arguments are not literal.
func preciseGrant(name string, call *syntax.CallExpr, declared map[string]bool) (grant string, known bool) {
	switch name {
	case "signal":
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
	case "set_conf", "reset_conf", "setconf", "resetconf":
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
		if id, ok := d.X.(*syntax.Ident); ok && id.Name == "tor" {
			return d.Name.Name
		}
	}
	return ""
}
