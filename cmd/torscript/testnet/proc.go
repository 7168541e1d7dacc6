package testnet

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Grace is how long Down and Stop wait after SIGTERM before sending SIGKILL.
const Grace = 10 * time.Second

// proc is a tor process started by this process. Its exit is collected by
// a goroutine so that it never lingers as a zombie.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startTor starts tor with the given torrc. stdout and stderr (where tor
// reports errors that happen before its log file is open) go to
// dir/stdout.log, never to our own stdout, so that a detached tor does not
// keep a pipe of the caller open. Each tor runs in its own process group;
// unless detach is set it is also killed when the calling process dies.
func startTor(torPath, torrc, dir string, detach bool) (*proc, error) {
	out, err := os.OpenFile(filepath.Join(dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := exec.Command(torPath, "-f", torrc, "--defaults-torrc", os.DevNull)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MALLOC_ARENA_MAX=1")
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = newSysProcAttr()
	start := cmd.Start
	if !detach {
		setPdeathsig(cmd.SysProcAttr)
		start = func() error { return spawn(cmd) }
	}
	if err := start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", torPath, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// The parent-death signal is sent when the *thread* that forked the child
// exits (golang.org/issue/27505), and the Go runtime ends threads whose
// goroutine exits while locked to them. So processes with a parent-death
// signal are started from one goroutine that stays locked to its thread
// for the life of the process: that thread never exits before we do.
var (
	spawnOnce sync.Once
	spawnCh   chan spawnReq
)

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked
			for r := range spawnCh {
				r.err <- r.cmd.Start()
			}
		}()
	})
	r := spawnReq{cmd: cmd, err: make(chan error, 1)}
	spawnCh <- r
	return <-r.err
}

// haveProc reports whether /proc can be used to inspect processes.
func haveProc() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}

// pidAlive reports whether pid names a live (not zombie) process.
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if !haveProc() {
		return pidExists(pid)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and
	// may itself contain spaces or parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	switch b[i+2] {
	case 'Z', 'X', 'x':
		return false
	}
	return true
}

// pidIsOurs reports whether pid is a tor started with the torrc at path;
// this protects against signalling an unrelated process that reused a pid
// recorded in a stale state file.
func pidIsOurs(pid int, torrc string) bool {
	if !pidAlive(pid) {
		return false
	}
	if !haveProc() {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	for _, arg := range strings.Split(string(b), "\x00") {
		if arg == torrc {
			return true
		}
	}
	return false
}

// rssKB returns VmRSS of pid in kB, or 0.
func rssKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.Atoi(f[0])
				return kb
			}
		}
	}
	return 0
}

type target struct {
	name  string
	pid   int
	torrc string
	proc  *proc // nil if started by another process
}

// alive reports whether the target runs. For a process we started, Wait
// is authoritative (right after fork, /proc/PID/cmdline still shows our own
// command line); otherwise the pid must be a live tor with the target's torrc.
func (t target) alive() bool {
	if t.proc != nil {
		return !t.proc.exited()
	}
	return pidIsOurs(t.pid, t.torrc)
}

// stopAll sends SIGTERM to every target that is still ours, waits up to
// grace, then SIGKILLs the survivors. Only the recorded pids are signalled.
func stopAll(ts []target, grace time.Duration) error {
	var live []target
	for _, t := range ts {
		if t.alive() {
			if err := sendSignal(t.pid, syscall.SIGTERM); err == nil {
				live = append(live, t)
			}
		}
	}
	wait := func(d time.Duration) []target {
		deadline := time.Now().Add(d)
		for {
			var still []target
			for _, t := range live {
				if t.alive() {
					still = append(still, t)
				}
			}
			if len(still) == 0 || time.Now().After(deadline) {
				return still
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	live = wait(grace)
	for _, t := range live {
		_ = sendSignal(t.pid, syscall.SIGKILL)
	}
	live = wait(5 * time.Second)
	if len(live) > 0 {
		var names []string
		for _, t := range live {
			names = append(names, fmt.Sprintf("%s (pid %d)", t.name, t.pid))
		}
		return fmt.Errorf("testnet: could not stop %s", strings.Join(names, ", "))
	}
	// Let our own Wait goroutines reap the children.
	for _, t := range ts {
		if t.proc != nil {
			select {
			case <-t.proc.done:
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. All listeners
// are held until every port is chosen, so the ports are distinct; the
// kernel hands out a port that no one else has bound at that moment.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testnet: pick free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// pickPorts picks the ports of a network (a variable for tests).
var pickPorts = freePorts

// basePorts returns base, base+1, ... after checking each is free.
func basePorts(base, n int) ([]int, error) {
	if base <= 0 || base+n > 65536 {
		return nil, fmt.Errorf("testnet: bad base port %d", base)
	}
	ports := make([]int, n)
	for i := range ports {
		p := base + i
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return nil, fmt.Errorf("testnet: port %d not free: %w", p, err)
		}
		l.Close()
		ports[i] = p
	}
	return ports, nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 16 << 10
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := st.Size() - max
	if off < 0 {
		off = 0
	}
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if off > 0 && len(lines) > 1 {
		lines = lines[1:] // first line is probably partial
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logTail formats the tail of a node's notice log for an error, and of
// its stdout (where tor reports problems that occur before it opens its
// log file, such as bad options or ports in use) if stdout is set or the
// notice log is empty.
func logTail(dir string, stdout bool) string {
	var b strings.Builder
	p := filepath.Join(dir, "notice.log")
	t := tail(p, 25)
	if strings.TrimSpace(t) != "" {
		fmt.Fprintf(&b, "\n--- last lines of %s ---\n%s", p, t)
	} else {
		stdout = true
	}
	if stdout {
		p := filepath.Join(dir, "stdout.log")
		if t := tail(p, 25); strings.TrimSpace(t) != "" {
			fmt.Fprintf(&b, "\n--- last lines of %s ---\n%s", p, t)
		}
	}
	return b.String()
}

// findTor returns the path of tor: path if given, else tor from PATH,
// else the usual install locations (Debian puts tor in /usr/sbin, which
// is often not in a normal user's PATH).
func findTor(path string) (string, error) {
	if path != "" {
		return exec.LookPath(path)
	}
	if p, err := exec.LookPath("tor"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/tor", "/usr/bin/tor", "/usr/local/bin/tor", "/usr/local/sbin/tor"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("tor not found in PATH")
}

// findGencert returns the path of tor-gencert, looking next to tor first.
func findGencert(torPath string) (string, error) {
	cands := []string{filepath.Join(filepath.Dir(torPath), "tor-gencert")}
	if p, err := exec.LookPath("tor-gencert"); err == nil {
		cands = append(cands, p)
	}
	cands = append(cands, "/usr/bin/tor-gencert", "/usr/local/bin/tor-gencert")
	for _, p := range cands {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("tor-gencert not found")
}
