package repl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/chzyer/readline"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime"
)

// errInterrupted is what a read returns when Ctrl-C was typed at the
// prompt: the input so far is dropped.
var errInterrupted = errors.New("interrupted")

// lineReader reads the REPL's input a line at a time.
type lineReader interface {
	// readLine returns a line without its newline; io.EOF at the end,
	// errInterrupted on Ctrl-C.
	readLine(prompt string) (string, error)
	// saveHistory records a line typed by the user.
	saveHistory(line string)
	close()
}

// termReader reads from a terminal with line editing, completion and
// history.
type termReader struct{ rl *readline.Instance }

func (r *termReader) readLine(prompt string) (string, error) {
	r.rl.SetPrompt(prompt)
	line, err := r.rl.Readline()
	if errors.Is(err, readline.ErrInterrupt) {
		return "", errInterrupted
	}
	return line, err
}

func (r *termReader) saveHistory(line string) {
	if strings.TrimSpace(line) != "" && !secretLine(line) {
		r.rl.SaveHistory(line)
	}
}

func (r *termReader) close() { r.rl.Close() }

// pipeReader reads lines from a reader that is not a terminal, in a
// goroutine of its own so that a read can be abandoned.
type pipeReader struct {
	lines chan string
	err   error // after lines is closed
	quit  chan struct{}
	once  sync.Once
}

func newPipeReader(in io.Reader) *pipeReader {
	r := &pipeReader{lines: make(chan string), quit: make(chan struct{})}
	go func() {
		defer close(r.lines)
		br := newLineScanner(in)
		for {
			line, err := br()
			if err != nil {
				if err != io.EOF {
					r.err = err
				}
				return
			}
			select {
			case r.lines <- line:
			case <-r.quit:
				return
			}
		}
	}()
	return r
}

func (r *pipeReader) readLine(string) (string, error) {
	select {
	case line, ok := <-r.lines:
		if !ok {
			if r.err != nil {
				return "", r.err
			}
			return "", io.EOF
		}
		return line, nil
	case <-r.quit:
		return "", io.EOF
	}
}

func (r *pipeReader) saveHistory(string) {}
func (r *pipeReader) close()             { r.once.Do(func() { close(r.quit) }) }

// repl is one REPL session.
type repl struct {
	s           *runtime.Session
	lastLoad    string // the file :reload reloads by default
	in          lineReader
	out         io.Writer // results and print(); above the prompt on a terminal
	errOut      io.Writer // errors and the log
	evaling     atomic.Bool
	interactive bool // a terminal, with line editing
	failed      int  // inputs that failed, for a piped session's exit status

	mu        sync.Mutex
	cancelRaw context.CancelFunc // stops a raw command's wait; under mu

	// Owned by the loop goroutine (OnEvent, and code run by Do).
	events     eventRing
	rawEvents  []string // types subscribed by a typed SETEVENTS: printed as they come
	watches    []*watch
	nextWatch  int
	eventsSeen int

	comp *completer
}

// maxEvents is how many events :events keeps.
const maxEvents = 1000

// Options are the inputs of Run.
type Options struct {
	In          io.Reader
	Out, ErrOut io.Writer
	// Log takes the warnings of setting up the prompt (the history
	// file).
	Log *slog.Logger
	// Open starts the session the REPL drives: a runtime made with
	// Streams' Stdout and OnEvent (runtime.Options), its log on
	// Streams' ErrOut. Its error is returned by Run as it is.
	Open func(ctx context.Context, st Streams) (*runtime.Session, error)
}

// Streams are what the REPL gives the session it drives.
type Streams struct {
	// Out takes print() and results; ErrOut the log. On a terminal they
	// write above the line being typed.
	Out, ErrOut io.Writer
	// Interactive: a terminal, with line editing. The log should then
	// go to ErrOut, not to the terminal directly.
	Interactive bool
	// OnEvent is the REPL's runtime.Options.OnEvent (:events, :watch,
	// a typed SETEVENTS).
	OnEvent func(ctl.Event)
}

// Run reads and runs input until its end, exit(), :quit or ctx is
// cancelled (SIGTERM). Ctrl-C stops the evaluation running, not the
// REPL. It returns Open's error, or what the session's Close returns
// (a *runtime.ExitError for exit(n) with n other than 0).
func Run(ctx context.Context, opts Options) error {
	// Ctrl-C belongs to the REPL: it stops an evaluation, not torscript.
	signal.Reset(os.Interrupt)
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt)
	defer signal.Stop(sigc)

	rp := &repl{}
	rp.comp = &completer{rp: rp} // also :help's source of tor's names
	var in lineReader
	interactive := isTerminal(opts.In) && isTerminal(opts.Out)
	if interactive {
		cfg := &readline.Config{
			Prompt:                 ">>> ",
			AutoComplete:           rp.comp,
			InterruptPrompt:        "^C",
			EOFPrompt:              "",
			HistoryFile:            historyPath(),
			DisableAutoSaveHistory: true,
			HistoryLimit:           10000,
			Stdin:                  readline.NewCancelableStdin(opts.In),
			Stdout:                 opts.Out,
			Stderr:                 opts.ErrOut,
		}
		if cfg.HistoryFile != "" {
			if err := privateHistory(cfg.HistoryFile); err != nil {
				opts.Log.Warn("history will not be saved", "err", err)
				cfg.HistoryFile = ""
			}
		}
		rl, err := readline.NewEx(cfg)
		if err != nil {
			return err
		}
		in = &termReader{rl: rl}
		rp.out, rp.errOut = rl.Stdout(), rl.Stderr()
	} else {
		in = newPipeReader(opts.In)
		rp.out, rp.errOut = opts.Out, opts.ErrOut
	}
	rp.in = in
	rp.interactive = interactive
	defer in.close()

	s, err := opts.Open(ctx, Streams{Out: rp.out, ErrOut: rp.errOut, Interactive: interactive, OnEvent: rp.onEvent})
	if err != nil {
		return err
	}
	rp.s = s
	defer s.Close() // idempotent: after the loop below, or on a panic

	// SIGTERM, exit() in a handler: stop reading.
	go func() {
		select {
		case <-ctx.Done():
		case <-s.Done():
		}
		in.close()
	}()
	go func() {
		for range sigc {
			if rp.evaling.Load() {
				rp.interrupt()
			} else if !interactive {
				in.close()
			}
		}
	}()

	if interactive {
		fmt.Fprintf(rp.out, "torscript %s: Starlark with the tor module. help(), :help; Ctrl-D leaves.\n", replVersion(s))
	}
	rp.loop()
	if interactive {
		fmt.Fprintln(rp.out)
	}
	err = s.Close()
	if err == nil && !interactive && rp.failed > 0 {
		return &InputsFailed{N: rp.failed}
	}
	return err
}

// isTerminal reports whether r (a reader or a writer) is a terminal.
func isTerminal(r any) bool {
	f, ok := r.(*os.File)
	return ok && readline.IsTerminal(int(f.Fd()))
}

// historyPath is $XDG_STATE_HOME/torscript/history, or
// ~/.local/state/torscript/history; "" if neither can be found.
func historyPath() string {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "torscript", "history")
}

// privateHistory makes the history file, and its directory, readable by
// the user alone (readline would create it 0666 less the umask), and
// makes an existing one so.
func privateHistory(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	hf, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	hf.Close()
	return os.Chmod(path, 0o600)
}

// secretRE matches lines that may carry a secret: they are never saved in
// the history.
var secretRE = regexp.MustCompile(`(?i)passw|secret|authenticate|cookie|private_?key|ed25519-v3:|rsa1024:|x25519:|client_auth|onion_client_auth_add`)

func secretLine(line string) bool { return secretRE.MatchString(line) }

func replVersion(s *runtime.Session) string {
	v := "?"
	s.Do(func(t *starlark.Thread, _ starlark.StringDict) error {
		if c := s.Conn(); c != nil {
			if got, err := c.GetInfoOne(builtins.Context(t), "version"); err == nil {
				v = "on tor " + got
			}
		}
		return nil
	})
	return v
}

// loop reads and runs input until its end, exit() or :quit.
func (rp *repl) loop() {
	for {
		err := rp.step()
		if err == io.EOF {
			return
		}
		if err != nil {
			if rp.interactive && strings.Contains(err.Error(), "cancelled: interrupted") {
				fmt.Fprintln(rp.errOut) // off the line the terminal echoed ^C on
			}
			fmt.Fprintln(rp.errOut, err)
			rp.failed++
		}
	}
}

// InputsFailed ends a session read from a pipe or a file in which inputs
// failed (their errors were printed as they came): a script fed to the
// REPL that went wrong must not exit 0.
type InputsFailed struct{ N int }

func (e *InputsFailed) Error() string {
	if e.N == 1 {
		return "1 input failed"
	}
	return fmt.Sprintf("%d inputs failed", e.N)
}

// step reads and runs one input: a REPL command, a raw control command or
// a Starlark chunk. It returns io.EOF at the end of the input.
func (rp *repl) step() error {
	first, err := rp.in.readLine(">>> ")
	if err == errInterrupted {
		return nil
	}
	if err != nil {
		return err
	}
	trimmed := strings.TrimSpace(first)
	switch {
	case trimmed == "":
		return nil
	case strings.HasPrefix(trimmed, ":"):
		rp.in.saveHistory(first)
		return rp.command(trimmed)
	case isPromptCommand(trimmed):
		// tor-prompt's /help, /events, /info, /python, /quit: never Starlark.
		rp.in.saveHistory(first)
		return rp.command(":" + trimmed[1:])
	case isRawCommand(trimmed):
		rp.in.saveHistory(first)
		return rp.raw(trimmed)
	}
	var lines []string
	pending := &first
	interrupted := false
	readMore := func() ([]byte, error) {
		if pending != nil {
			l := *pending
			pending = nil
			lines = append(lines, l)
			return []byte(l + "\n"), nil
		}
		l, err := rp.in.readLine("... ")
		if err == errInterrupted {
			interrupted = true
			return nil, err
		}
		if err != nil {
			return nil, err
		}
		lines = append(lines, l)
		return []byte(l + "\n"), nil
	}
	opts := *runtime.FileOptions()
	opts.LoadBindsGlobally = true
	f, err := opts.ParseCompoundStmt("<stdin>", readMore)
	for _, l := range lines {
		rp.in.saveHistory(l)
	}
	if interrupted {
		return nil
	}
	if err != nil {
		if err == io.EOF {
			return io.EOF
		}
		return errors.New(runtime.FormatError(err))
	}
	return rp.exec(f)
}

// exec runs a parsed chunk: an expression's value is printed and bound to
// _.
func (rp *repl) exec(f *syntax.File) error {
	rp.evaling.Store(true)
	defer rp.evaling.Store(false)
	err := rp.s.Do(func(t *starlark.Thread, g starlark.StringDict) error {
		if len(f.Stmts) == 1 {
			if es, ok := f.Stmts[0].(*syntax.ExprStmt); ok {
				v, err := starlark.EvalExprOptions(f.Options, t, es.X, g)
				if err != nil {
					return err
				}
				g["_"] = v
				if v != starlark.None {
					fmt.Fprintln(rp.out, pretty(v))
				}
				return nil
			}
		}
		return starlark.ExecREPLChunk(f, t, g)
	})
	return rp.result(err)
}

// result turns what an evaluation returned into what the REPL says.
func (rp *repl) result(err error) error {
	if err == nil {
		return nil
	}
	var exit *runtime.ExitError
	if errors.As(err, &exit) {
		return io.EOF
	}
	if errors.Is(err, runtime.ErrSessionEnded) {
		return io.EOF
	}
	return errors.New(runtime.FormatError(err))
}

// isPromptCommand reports whether a line is one of tor-prompt's commands.
func isPromptCommand(line string) bool {
	name, _, _ := strings.Cut(line, " ")
	switch name {
	case "/help", "/events", "/info", "/python", "/quit":
		return true
	}
	return false
}

// rawKeywords are the control commands a line may start with to be sent
// as typed.
var rawKeywords = ctl.CommandKeywords()

// isRawCommand reports whether a line is a control command: it starts
// with an upper-case keyword followed by the end of the line or a space,
// and what follows is not Starlark using a name like that (SIGNAL = 1,
// SIGNAL + 1): no argument of a control command starts with an operator.
func isRawCommand(line string) bool {
	kw, rest, _ := strings.Cut(line, " ")
	if !slices.Contains(rawKeywords, kw) {
		return false
	}
	rest = strings.TrimSpace(rest)
	return rest == "" || !strings.ContainsRune("=+-*/%<>!|&^.[(,:;", rune(rest[0]))
}

// raw sends a control command as typed and prints tor's reply as tor sent
// it.
func (rp *repl) raw(line string) error {
	// The keyword as tor reads it (ctl.ParseCommandLine); the grants
	// check reads the line the same way before anything is sent.
	cl, err := ctl.ParseCommandLine(line)
	if err != nil {
		return fmt.Errorf("refused, nothing sent: %v", err)
	}
	switch kw := cl.Keyword; kw {
	case "QUIT":
		return io.EOF
	case "AUTHENTICATE", "AUTHCHALLENGE":
		return errors.New("the REPL authenticated when it connected; " + kw + " is not sent")
	case "SETEVENTS":
		return rp.setEvents(cl.Args)
	}
	var conn *ctl.Conn
	rp.s.Do(func(*starlark.Thread, starlark.StringDict) error { conn = rp.s.Conn(); return nil })
	if conn == nil {
		return errors.New("not connected to tor (reconnecting)")
	}
	ctx, cancel := context.WithCancel(runtime.ScriptContext(context.Background())) // held to the grants
	defer cancel()
	rp.mu.Lock()
	rp.cancelRaw = cancel // Ctrl-C stops waiting for the reply
	rp.mu.Unlock()
	rp.evaling.Store(true)
	reply, err := conn.Raw(ctx, line)
	rp.evaling.Store(false)
	rp.mu.Lock()
	rp.cancelRaw = nil
	rp.mu.Unlock()
	if reply != nil {
		io.WriteString(rp.out, toLF(reply.String()))
		return nil
	}
	return err
}

// interrupt stops the running evaluation or raw command (Ctrl-C).
func (rp *repl) interrupt() {
	rp.s.Interrupt()
	rp.mu.Lock()
	if rp.cancelRaw != nil {
		rp.cancelRaw()
	}
	rp.mu.Unlock()
}

// setEvents handles a typed SETEVENTS: the session subscribes to those
// events besides what its handlers need, and prints them as they come.
func (rp *repl) setEvents(args string) error {
	var types []string
	for _, a := range strings.Fields(args) {
		if strings.EqualFold(a, "EXTENDED") {
			continue
		}
		t, err := builtins.EventName(a)
		if err != nil {
			return err
		}
		types = append(types, t)
	}
	err := rp.s.Do(func(*starlark.Thread, starlark.StringDict) error {
		if err := rp.s.Subscribe("raw", types); err != nil {
			return err
		}
		rp.rawEvents = types
		// Printed here, on the loop, so that no event of these types
		// (printed by onEvent, on the loop too) comes before it.
		fmt.Fprintln(rp.out, "250 OK")
		return nil
	})
	if err != nil {
		return errors.New(runtime.FormatError(err))
	}
	return nil
}

// onEvent runs on the loop for every event: it keeps the last maxEvents,
// prints those a typed SETEVENTS asked for, and runs the watches.
func (rp *repl) onEvent(ev ctl.Event) {
	rp.eventsSeen++
	rp.events.add(ev)
	typ := ev.EventType()
	if slices.Contains(rp.rawEvents, typ) {
		io.WriteString(rp.out, eventText(ev))
	}
	for _, w := range rp.watches {
		if w.typ == typ {
			rp.runWatch(w, ev)
		}
	}
}

// eventRing keeps the last maxEvents events.
type eventRing struct {
	buf  []ctl.Event
	next int // where the next goes once buf is full
}

func (r *eventRing) add(ev ctl.Event) {
	if len(r.buf) < maxEvents {
		r.buf = append(r.buf, ev)
		return
	}
	r.buf[r.next] = ev
	r.next = (r.next + 1) % maxEvents
}

// all returns the events kept, oldest first.
func (r *eventRing) all() []ctl.Event {
	return append(slices.Clone(r.buf[r.next:]), r.buf[:r.next]...)
}

func eventText(ev ctl.Event) string {
	return toLF(ev.Reply().String())
}

// toLF turns tor's CRLF line ends into the terminal's LF.
func toLF(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }
