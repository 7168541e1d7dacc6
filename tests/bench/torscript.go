package main

import (
	"embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

//go:embed scripts/*.star
var scripts embed.FS

// stopTimeout is how long torscript has to exit after SIGTERM.
const stopTimeout = 10 * time.Second

// findModuleRoot walks up from the working directory to the directory
// holding go.mod.
func findModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod in the working directory or above it; run from the module or give -bin")
		}
		dir = parent
	}
}

// buildTorscript builds cmd/torscript into dir and returns the binary's path.
func buildTorscript(dir string) (string, error) {
	root, err := findModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "torscript")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/torscript")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/torscript: %v\n%s", err, out)
	}
	return bin, nil
}

// writeScripts copies the embedded scripts to dir.
func writeScripts(dir string) error {
	ents, err := scripts.ReadDir("scripts")
	if err != nil {
		return err
	}
	for _, e := range ents {
		b, err := scripts.ReadFile("scripts/" + e.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// proc is one torscript subprocess. Its standard output and error go to a
// log file.
type proc struct {
	cmd     *exec.Cmd
	logPath string
	started time.Time // just before cmd.Start
	exited  chan struct{}
	waitErr error  // valid after exited is closed
	stopped bool   // we sent SIGTERM
	name    string // what it is, for messages; "" for torscript
}

// what names the process in messages.
func (p *proc) what() string {
	if p.name == "" {
		return "torscript"
	}
	return p.name
}

// startTorscript runs "torscript run --control ADDR --log-level warn
// SCRIPT -- ARGS..." on cpus (nil: any).
func startTorscript(bin, logDir, control string, flags []string, cpus []int, script string, args ...string) (*proc, error) {
	logf, err := os.CreateTemp(logDir, "torscript-*.log")
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	argv := append([]string{"run", "--control", control, "--log-level", "warn"}, flags...)
	argv = append(argv, script)
	if len(args) > 0 {
		argv = append(append(argv, "--"), args...)
	}
	cmd := exec.Command(bin, argv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The run's records (the guardian's journal) stay with the logs.
	cmd.Env = append(cleanEnv(), "TORSCRIPT_STATE_DIR="+filepath.Join(logDir, "state"))
	p := &proc{cmd: cmd, logPath: logf.Name(), exited: make(chan struct{})}
	p.started = time.Now()
	if err := startOn(cmd, cpus); err != nil {
		return nil, fmt.Errorf("starting torscript: %w", err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// cleanEnv is the environment without TORSCRIPT_* variables, so that
// nothing but the command line tells torscript where to connect; but
// TORSCRIPT_CPUPROFILE and TORSCRIPT_MEMPROFILE, which profile the
// measured torscript.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TORSCRIPT_") || strings.HasPrefix(kv, "TORSCRIPT_CPUPROFILE=") || strings.HasPrefix(kv, "TORSCRIPT_MEMPROFILE=") {
			env = append(env, kv)
		}
	}
	return env
}

// Pid is the process id.
func (p *proc) Pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits for torscript to exit. It fails if
// torscript does not exit within stopTimeout (and then kills it).
func (p *proc) stop() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			// It exited on its own and was reaped, but the goroutine
			// that reaped it has not closed exited yet.
			<-p.exited
			return nil
		}
		select {
		case <-p.exited:
			return nil
		default:
			return fmt.Errorf("SIGTERM: %w", err)
		}
	}
	p.stopped = true
	select {
	case <-p.exited:
		return nil
	case <-time.After(stopTimeout):
		p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not exit within %v of SIGTERM; killed", p.what(), stopTimeout)
	}
}

// exitNote describes how torscript exited, or is "" for a clean exit (0,
// or the status a SIGTERM we sent should give).
func (p *proc) exitNote() string {
	err := p.waitErr
	if err == nil {
		return ""
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			if ws.Signaled() {
				return fmt.Sprintf("%s was killed by %v", p.what(), ws.Signal())
			}
			code := ws.ExitStatus()
			if p.stopped && (code == 130 || code == 143) {
				return ""
			}
			when := "on its own"
			if p.stopped {
				when = "after SIGTERM"
			}
			return fmt.Sprintf("%s exited with status %d %s", p.what(), code, when)
		}
	}
	return p.what() + ": " + err.Error()
}

// log is what torscript wrote to its standard output and error.
func (p *proc) log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// tree is pid and its descendants: torscript run is a guardian and its
// interpreter child, and a figure covers both.
func tree(pid int) []int {
	pids := []int{pid}
	for i := 0; i < len(pids); i++ {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pids[i]))
		for _, t := range tasks {
			b, _ := os.ReadFile(t)
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					pids = append(pids, c)
				}
			}
		}
	}
	return pids
}

// memMiB reads a memory figure of pid and its descendants, added up, from
// /proc/PID/status ("VmRSS", resident now; "VmHWM", the peak) or, for
// "Pss", from /proc/PID/smaps_rollup: the proportional set size, which
// counts a page shared by n processes (the binary's, between torscript and
// its guardian) as 1/n in each, so that the sum is what they take together.
func memMiB(pid int, field string) (float64, error) {
	var sum float64
	for _, p := range tree(pid) {
		m, err := memMiB1(p, field)
		if err != nil {
			return 0, err
		}
		sum += m
	}
	return sum, nil
}

func memMiB1(pid int, field string) (float64, error) {
	file := "status"
	if field == "Pss" {
		file = "smaps_rollup"
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			var kb float64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%f kB", &kb); err != nil {
				return 0, fmt.Errorf("%s %q: %w", field, rest, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/PID/%s", field, file)
}

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on every Linux configuration in use).
const clockTick = 10 * time.Millisecond

// cpuTime reads the CPU time pid and its descendants have used, all their
// threads together: from /proc/PID/task/TID/schedstat, to the nanosecond,
// or else in clock ticks from /proc/PID/stat (a figure per attach from
// ticks moves by half a microsecond at 20,000 attaches).
func cpuTime(pid int) (time.Duration, error) {
	var sum time.Duration
	for _, p := range tree(pid) {
		d, err := cpuTime1(p)
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

func cpuTime1(pid int) (time.Duration, error) {
	if d, ok := schedTime(pid); ok {
		return d, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	var ut, st int64
	if _, err := fmt.Sscan(f[11], &ut); err != nil {
		return 0, err
	}
	if _, err := fmt.Sscan(f[12], &st); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * clockTick, nil
}

// schedTime adds up the time on CPU of pid's threads, the first field of
// each one's /proc/PID/task/TID/schedstat, in nanoseconds.
func schedTime(pid int) (time.Duration, bool) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return 0, false
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			if os.IsNotExist(err) {
				continue // the thread ended meanwhile
			}
			return 0, false
		}
		f := strings.Fields(string(b))
		var ns int64
		if len(f) == 0 {
			return 0, false
		}
		if _, err := fmt.Sscan(f[0], &ns); err != nil {
			return 0, false
		}
		sum += time.Duration(ns)
	}
	return sum, true
}

// minorFaults reads how many minor page faults pid has taken (field 10 of
// /proc/PID/stat): each is a page of memory touched for the first time,
// which on some virtual machines costs more than the work done in it.
func minorFaults(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	// f[0] is field 3 (state); minflt is field 10.
	if len(f) < 8 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	return strconv.ParseInt(f[7], 10, 64)
}
