package main

// The guardian. `torscript run` and `eval` run the script in the process
// the user started (the interpreter) and start, before the script runs, a
// second process: the guardian, which runs no Starlark. The guardian is in
// a session of its own, so that Ctrl-C, a closed terminal, or a kill -9 of
// the interpreter or of its whole process group does not reach it.
//
// Before it starts the guardian, the interpreter opens the run's journal
// and the tor's policy lock (runtime/owner) and hands both to it: their
// locks then outlive the interpreter until the guardian has finished. The
// interpreter sends the guardian a heartbeat every 200 ms on a pipe, and a
// "wedged" line when a call it cancelled does not return (it is blocked
// inside one builtin, where Starlark cannot stop it). The guardian holds
// no control connection while the interpreter lives.
//
// When the pipe closes (the interpreter exited, was killed, or died of
// --max-memory), when a heartbeat is 3 s late, or on "wedged" (then the
// guardian kills the interpreter first), the guardian reads the journal.
// After a clean exit it says everything was undone; otherwise the
// guardian connects to tor and undoes what it says: __LeaveStreamsUnattached
// back to its value before, every stream waiting for a controller handed
// to tor (or closed, per on_error), the script's address mappings removed
// and the config keys it set restored. Then it logs "guardian took over"
// and exits.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chzyer/readline"

	"github.com/torscript/torscript/runtime"
	"github.com/torscript/torscript/runtime/owner"
)

// The guardian's environment and file descriptors.
// guardControlEnv names, for the guardian of one tor of a fleet, the
// control address it guards.
const guardControlEnv = "TORSCRIPT_GUARD_CONTROL"

const (
	guardEnv    = "TORSCRIPT_GUARDIAN"    // in the guardian: the interpreter's pid
	launchedEnv = "TORSCRIPT_LAUNCHED"    // "ADDR\nCOOKIE" of the tor the interpreter launched
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
)

func isGuardian() bool { return os.Getenv(guardEnv) != "" }

// startGuardian opens the run's records, undoes what dead runs left, and
// starts the guardian. It returns the Ownership for the runtime and the
// function the runtime reports a wedged call with.
func startGuardian(ctx context.Context, f *factory, script string, sf *scriptFlags) (*runtime.Ownership, func(string, time.Duration), error) {
	// This connection then serves the script (f.connect hands it out
	// once): one dial and authentication less at start.
	conn, control, err := f.dial(ctx, true)
	if err != nil {
		return nil, nil, err
	}
	handed := false
	defer func() {
		if !handed {
			conn.Close()
		}
	}()
	tor, err := owner.OpenTor(owner.Dir(), owner.Key(ctx, conn, control))
	if err != nil {
		return nil, nil, err
	}
	done, err := tor.Repair(ctx, conn)
	for _, d := range done {
		f.log.Warn("undid what a dead torscript left", "what", d)
	}
	if err != nil {
		f.log.Error("could not undo what a dead torscript left", "err", err)
	}
	holder := owner.NewHolder(script, control)
	run, err := tor.NewRun(holder)
	if err != nil {
		return nil, nil, fmt.Errorf("recording this run: %w", err)
	}
	pol, err := tor.OpenPolicy()
	if err != nil {
		run.Remove()
		return nil, nil, fmt.Errorf("recording this run: %w", err)
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), guardEnv+"="+strconv.Itoa(os.Getpid()))
	if len(f.conn.controls) == 1 && f.conn.noEnvCookie {
		// One tor of a fleet: the guardian watches that one.
		cmd.Env = append(cmd.Env, guardControlEnv+"="+f.conn.control)
	}
	if p := f.launched; p != nil {
		cmd.Env = append(cmd.Env, launchedEnv+"="+p.ControlAddr+"\n"+p.CookiePath)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, os.Stderr
	if readline.IsTerminal(int(os.Stdin.Fd())) {
		// To put the terminal back as it was if it must kill a REPL
		// that left it in raw mode.
		cmd.Stdin = os.Stdin
	}
	cmd.ExtraFiles = []*os.File{run.File(), pol.File(), statusR}
	var pwW *os.File
	if f.typedPassword != "" {
		pwR, w, err := os.Pipe()
		if err != nil {
			return nil, nil, err
		}
		defer pwR.Close()
		pwW = w
		cmd.ExtraFiles = append(cmd.ExtraFiles, pwR)
		cmd.Env = append(cmd.Env, passwordEnv+"="+strconv.Itoa(fdPassword))
	}
	setGuardianAttrs(cmd)
	if err := cmd.Start(); err != nil {
		run.Remove()
		pol.Close()
		return nil, nil, fmt.Errorf("starting the guardian: %w", err)
	}
	statusR.Close()
	if pwW != nil {
		io.WriteString(pwW, f.typedPassword)
		pwW.Close()
	}
	holder.Guardian = cmd.Process.Pid
	run.Record(owner.Entry{Op: "holder", Holder: &holder})
	// The guardian is not waited for: it outlives us when it has work.
	cmd.Process.Release()
	f.firstConn, handed = conn, true
	own := &runtime.Ownership{Run: run, Policy: pol, Holder: holder, Control: control, TakeOver: sf.takeOver}
	return own, startHeartbeat(statusW), nil
}

// startHeartbeat tells the guardian, every beatEvery, that the
// interpreter is alive; the function it returns reports a call that
// cannot be cancelled.
func startHeartbeat(w *os.File) (wedged func(what string, since time.Duration)) {
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

// guardianRun is the guardian process.
func guardianRun(f *factory, maxMemory string) error {
	// Signals meant for the interpreter's terminal or job are not ours:
	// the guardian stays until it has done its work.
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGPIPE)
	interp, _ := strconv.Atoi(os.Getenv(guardEnv))
	if interp <= 1 {
		return fmt.Errorf("guardian: %s=%q: not a process id", guardEnv, os.Getenv(guardEnv))
	}
	run := owner.RunFromFile(os.NewFile(fdJournal, "journal"))
	pol := owner.PolicyFromFile(os.NewFile(fdPolicy, "policy.lock"))
	status := os.NewFile(fdStatus, "status")
	if fd := os.Getenv(passwordEnv); fd != "" {
		n, _ := strconv.Atoi(fd)
		b, err := io.ReadAll(os.NewFile(uintptr(n), "password"))
		if err == nil {
			f.typedPassword = string(b)
		}
	}

	var term *readline.State
	if readline.IsTerminal(0) {
		term, _ = readline.GetState(0)
	}
	reason := watchInterpreter(status, interp)
	if reason != "" {
		// Stop it for good before touching what it owned.
		syscall.Kill(interp, syscall.SIGKILL)
		waitGone(interp, 2*time.Second)
		if term != nil {
			readline.Restore(0, term)
		}
	}
	st, err := run.State()
	if err != nil {
		return err
	}
	defer pol.Close()
	if st.Empty() {
		run.Remove()
		if reason != "" {
			f.log.Error("guardian stopped the interpreter", "reason", reason)
		}
		return nil
	}
	if reason == "" {
		reason = fmt.Sprintf("the interpreter (pid %d) ended without undoing its changes: it was killed, or crashed", interp)
		if limit, err := parseSize(maxMemory); err == nil && limit > 0 {
			reason += fmt.Sprintf(", or went over --max-memory %s", formatSize(limit))
		}
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var n int
	for {
		c, _, derr := f.dialGuard(ctx)
		if derr == nil {
			n, err = owner.Undo(ctx, c, st)
			c.Close()
			if err == nil {
				break
			}
		} else {
			err = derr
		}
		if ctx.Err() != nil {
			f.log.Error("guardian could not undo the script's changes; torscript repair (or the next torscript run) will", "reason", reason, "err", err)
			return silentError{exitError}
		}
		time.Sleep(500 * time.Millisecond)
	}
	run.Remove()
	pol.Unlock()
	f.log.Error("guardian took over", "reason", reason, "streams_handed_back", n, "restored", st.Summary(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// watchInterpreter reads the interpreter's heartbeats until its pipe
// closes (""), or returns why the interpreter must be stopped.
func watchInterpreter(status *os.File, interp int) string {
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(status)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timer := time.NewTimer(beatLost)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return ""
			}
			if what, ok := strings.CutPrefix(line, "wedged "); ok {
				return "the interpreter is stuck and cannot be cancelled: " + what
			}
			timer.Reset(beatLost)
		case <-timer.C:
			if syscall.Kill(interp, 0) != nil {
				return "" // gone; its end of the pipe is closing
			}
			return fmt.Sprintf("the interpreter sent no heartbeat for %v", beatLost)
		}
	}
}

// waitGone waits until pid no longer exists (or is a zombie), at most d.
func waitGone(pid int, d time.Duration) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && strings.HasPrefix(s[i+1:], " Z") {
			return
		}
		time.Sleep(10 * time.Millisecond)
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
