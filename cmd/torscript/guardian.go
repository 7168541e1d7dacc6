package main

// The guardian. `torscript run` and `eval` start two processes: this one,
// the guardian, which runs no Starlark, and the interpreter, a child
// running the script. The guardian keeps a control connection of its own
// (idle: it costs tor and the streams nothing) and the run's journal (see
// runtime/owner), and watches the interpreter: when it exits, is killed,
// runs out of memory (--max-memory, enforced by the kernel), stops sending
// heartbeats, or reports that a call cannot be cancelled (it is blocked
// inside one builtin), the guardian kills it and undoes what the journal
// says is left: __LeaveStreamsUnattached back to its value before, every
// stream waiting for a controller handed to tor (or closed, per
// on_error), the script's address mappings removed and the config keys it
// set restored. After a clean exit the interpreter has undone everything
// itself and the journal says so.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime"
	"github.com/torscript/torscript/runtime/owner"
)

// The interpreter child's environment and file descriptors.
const (
	interpEnv   = "TORSCRIPT_INTERPRETER" // "1" in the interpreter
	holderEnv   = "TORSCRIPT_HOLDER"      // the run's owner.Holder as JSON
	launchedEnv = "TORSCRIPT_LAUNCHED"    // "ADDR\nCOOKIE" of the tor the guardian launched
	passwordEnv = "TORSCRIPT_PASSWORD_FD" // the fd the typed password comes on
	fdJournal   = 3
	fdPolicy    = 4
	fdStatus    = 5
	fdPassword  = 6
)

const (
	// beatEvery is how often the interpreter says it is alive; beatLost is
	// how long the guardian waits for a heartbeat before it takes over.
	beatEvery = 200 * time.Millisecond
	beatLost  = 3 * time.Second
	// stopGrace is how long the interpreter has to stop cleanly after
	// SIGTERM before it is killed.
	stopGrace = 10 * time.Second
)

func isInterpreter() bool { return os.Getenv(interpEnv) == "1" }

// guardRun runs the script in an interpreter child and watches it.
func guardRun(ctx context.Context, opts *runOptions) error {
	f := opts.f
	conn, control, err := f.dialGuard(ctx)
	if err != nil {
		return err
	}
	defer func() { conn.Close() }()
	key := owner.Key(ctx, conn, control)
	tor, err := owner.OpenTor(owner.Dir(), key)
	if err != nil {
		return err
	}
	done, err := tor.Repair(ctx, conn)
	for _, d := range done {
		f.log.Warn("undid what a dead torscript left", "what", d)
	}
	if err != nil {
		f.log.Error("could not undo what a dead torscript left", "err", err)
	}
	script := opts.file
	if script == "" {
		script = "<eval>"
	}
	holder := owner.NewHolder(script, control)
	run, err := tor.NewRun(holder)
	if err != nil {
		return fmt.Errorf("recording this run: %w", err)
	}
	pol, err := tor.OpenPolicy()
	if err != nil {
		run.Remove()
		return fmt.Errorf("recording this run: %w", err)
	}
	defer pol.Close()

	g := &guardian{f: f, run: run, conn: conn, polFile: pol.File(), maxMemory: opts.sf.maxMemoryBytes}
	code, gerr := g.watch(ctx, holder)
	conn = g.conn
	return g.finish(code, gerr)
}

type guardian struct {
	f         *factory
	run       *owner.Run
	conn      *ctl.Conn
	child     *exec.Cmd
	polFile   *os.File
	maxMemory int64
	reason    string // why the guardian stepped in; "" when it did not
	keep      bool   // the journal could not be undone: keep it for repair
	oom       atomic.Bool
}

type childExit struct {
	code int
	err  error
}

// watch starts the interpreter and waits for it to end, killing it when
// it wedges or stops answering, or does not stop after SIGTERM.
func (g *guardian) watch(ctx context.Context, holder owner.Holder) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 1, err
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return 1, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return 1, err
	}
	hj, _ := json.Marshal(holder)
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), interpEnv+"=1", holderEnv+"="+string(hj))
	if p := g.f.launched; p != nil {
		cmd.Env = append(cmd.Env, launchedEnv+"="+p.ControlAddr+"\n"+p.CookiePath)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, errW
	cmd.ExtraFiles = []*os.File{g.run.File(), nil, statusW}
	if pf := g.policyFile(); pf != nil {
		cmd.ExtraFiles[1] = pf
	}
	var pwW *os.File
	if pw := g.f.typedPassword; pw != "" {
		var pwR *os.File
		if pwR, pwW, err = os.Pipe(); err != nil {
			return 1, err
		}
		defer pwR.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, pwR)
		cmd.Env = append(cmd.Env, passwordEnv+"="+strconv.Itoa(fdPassword))
	}
	setChildAttrs(cmd)
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("starting the interpreter: %w", err)
	}
	g.child = cmd
	statusW.Close()
	errW.Close()
	if pwW != nil {
		io.WriteString(pwW, g.f.typedPassword)
		pwW.Close()
	}
	holder.Interpreter = cmd.Process.Pid
	g.run.Record(owner.Entry{Op: "holder", Holder: &holder})

	exited := make(chan childExit, 1)
	stderrDone := make(chan struct{})
	go func() {
		g.copyStderr(errR)
		close(stderrDone)
	}()
	status := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(statusR)
		for sc.Scan() {
			status <- sc.Text()
		}
		close(status)
	}()
	go func() {
		err := cmd.Wait()
		<-stderrDone
		code := cmd.ProcessState.ExitCode()
		exited <- childExit{code: code, err: err}
	}()

	lastBeat := time.Now()
	tick := time.NewTicker(beatEvery)
	defer tick.Stop()
	var stopDeadline <-chan time.Time
	kill := func(why string) {
		if g.reason == "" {
			g.reason = why
		}
		cmd.Process.Signal(syscall.SIGKILL)
	}
	for {
		select {
		case <-ctx.Done():
			if stopDeadline == nil {
				cmd.Process.Signal(syscall.SIGTERM)
				stopDeadline = time.After(stopGrace)
			}
		case <-stopDeadline:
			kill(fmt.Sprintf("the interpreter did not stop within %v of SIGTERM", stopGrace))
		case line, ok := <-status:
			if !ok {
				status = nil
				continue
			}
			lastBeat = time.Now()
			if what, ok := strings.CutPrefix(line, "wedged "); ok {
				kill("the interpreter is stuck and cannot be cancelled: " + what)
			}
		case <-tick.C:
			if status != nil && time.Since(lastBeat) > beatLost && g.reason == "" {
				kill(fmt.Sprintf("the interpreter sent no heartbeat for %v", time.Since(lastBeat).Round(time.Millisecond)))
			}
		case ex := <-exited:
			if g.reason == "" && ex.err != nil {
				var ee *exec.ExitError
				if errors.As(ex.err, &ee) {
					if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
						g.reason = "the interpreter was killed (" + ws.Signal().String() + ")"
					}
				}
			}
			if g.oom.Load() {
				g.reason = fmt.Sprintf("the interpreter ran out of memory (--max-memory %s)", formatSize(g.maxMemory))
			}
			return ex.code, nil
		}
	}
}

// copyStderr passes the interpreter's stderr through, noting an out of
// memory death and cutting a Go crash dump to its first lines.
func (g *guardian) copyStderr(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	crash, dropped := 0, 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "fatal error: ") || strings.HasPrefix(line, "runtime: out of memory") {
			if strings.Contains(line, "out of memory") {
				g.oom.Store(true)
			}
			if crash == 0 {
				crash = 1
			}
		}
		if crash > 0 {
			crash++
			if crash > 12 {
				dropped++
				continue
			}
		}
		fmt.Fprintln(g.f.errOut, line)
	}
	if dropped > 0 {
		fmt.Fprintf(g.f.errOut, "… %d more lines of the interpreter's crash report left out\n", dropped)
	}
}

func (g *guardian) policyFile() *os.File { return g.polFile }

// finish undoes what the interpreter left and decides the exit.
func (g *guardian) finish(code int, werr error) error {
	defer func() {
		if !g.keep {
			g.run.Remove()
		}
	}()
	if werr != nil {
		return werr
	}
	st, err := g.run.State()
	if err != nil {
		return err
	}
	if !st.Empty() {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		n, uerr := g.undo(ctx, st)
		why := g.reason
		if why == "" {
			why = fmt.Sprintf("the interpreter exited with status %d without undoing its changes", code)
		}
		if uerr != nil {
			g.f.log.Error("guardian could not undo the script's changes; run torscript repair when tor is back", "reason", why, "err", uerr)
			g.keep = true
			return silentError{exitError}
		}
		g.f.log.Error("guardian took over", "reason", why, "streams_handed_back", n, "restored", st.Summary(), "took", time.Since(start).Round(time.Millisecond))
		return silentError{exitError}
	}
	if g.reason != "" {
		g.f.log.Error("interpreter ended", "reason", g.reason)
		return silentError{exitError}
	}
	if code != 0 {
		return silentError{exitCodeT(code)}
	}
	return nil
}

// undo restores tor from the journal, on the guardian's connection (made
// again if tor restarted meanwhile).
func (g *guardian) undo(ctx context.Context, st owner.State) (int, error) {
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		if g.conn == nil || g.conn.Err() != nil {
			if g.conn != nil {
				g.conn.Close()
			}
			c, _, err := g.f.dialGuard(ctx)
			if err != nil {
				last = err
				time.Sleep(500 * time.Millisecond)
				continue
			}
			g.conn = c
		}
		n, err := owner.Undo(ctx, g.conn, st)
		if err == nil || ctl.ErrorCode(err) != 0 {
			return n, err
		}
		last = err
	}
	return 0, last
}

// interpreterOwnership is the run's records handed down by the guardian.
func interpreterOwnership(takeOver bool) (*runtime.Ownership, error) {
	var h owner.Holder
	if err := json.Unmarshal([]byte(os.Getenv(holderEnv)), &h); err != nil {
		return nil, fmt.Errorf("interpreter: %s: %v", holderEnv, err)
	}
	h.Interpreter = os.Getpid()
	o := &runtime.Ownership{
		Run:      owner.RunFromFile(os.NewFile(fdJournal, "journal")),
		Holder:   h,
		Control:  h.Control,
		TakeOver: takeOver,
	}
	if pf := os.NewFile(fdPolicy, "policy.lock"); pf != nil {
		if _, err := pf.Stat(); err == nil {
			o.Policy = owner.PolicyFromFile(pf)
		}
	}
	return o, nil
}

// startHeartbeat tells the guardian, every beatEvery, that the
// interpreter is alive; wedged reports a call that cannot be cancelled.
func startHeartbeat() (wedged func(what string, since time.Duration)) {
	w := os.NewFile(fdStatus, "status")
	msgs := make(chan string, 4)
	go func() {
		t := time.NewTicker(beatEvery)
		defer t.Stop()
		for {
			var line string
			select {
			case line = <-msgs:
			case <-t.C:
				line = "beat"
			}
			if _, err := io.WriteString(w, line+"\n"); err != nil {
				return
			}
		}
	}()
	return func(what string, since time.Duration) {
		select {
		case msgs <- fmt.Sprintf("wedged %s (for %v)", strings.ReplaceAll(what, "\n", " "), since.Round(time.Millisecond)):
		default:
		}
	}
}

// parseSize reads 512MiB, 1GiB, 2G, 100M or a number of bytes.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1}} {
		if v, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = v, u.m
			break
		}
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q: want a size such as 512MiB or 2GiB", s)
	}
	return int64(n * float64(mult)), nil
}

func formatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return strconv.FormatInt(n, 10)
}
