//go:build linux

package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stallWatchEnv, set to "CPU/PID", makes the bench binary a stall watch's
// sleeper on that CPU for the bench of that process ID
// (stallSleeperMain).
const stallWatchEnv = "TORSCRIPT_BENCH_STALL_WATCH"

// stallWatch has a sleeper on each CPU that wakes every stallNap and
// notes when it woke stallMin or more late: the machine itself stopped
// (a virtual machine's CPU the host did not run), which no figure of
// torscript's should be blamed for. Each sleeper is a process of its own
// (the bench binary started again), pinned to its CPU, so that it shares
// no Go scheduler with the fake control port. It costs each CPU a
// wake-up every stallNap.
type stallWatch struct {
	base  time.Time
	procs []*exec.Cmd
	outs  []*bufio.Reader
}

// stallReadyTimeout bounds the wait for a sleeper to start sleeping.
const stallReadyTimeout = 5 * time.Second

func watchStalls() *stallWatch {
	w := &stallWatch{base: time.Now()}
	self, err := os.Executable()
	if err != nil {
		return w
	}
	for cpu := range runtime.NumCPU() {
		cmd := exec.Command(self)
		cmd.Env = append(cleanEnv(), fmt.Sprintf("%s=%d/%d", stallWatchEnv, cpu, os.Getpid()))
		out, err := cmd.StdoutPipe()
		if err != nil {
			continue
		}
		if err := startOn(cmd, []int{cpu}); err != nil {
			continue
		}
		w.procs = append(w.procs, cmd)
		w.outs = append(w.outs, bufio.NewReader(out))
	}
	// The watch starts when every sleeper sleeps: each says so first. A
	// sleeper that does not is left out.
	deadline := time.Now().Add(stallReadyTimeout)
	procs, outs := w.procs, w.outs
	w.procs, w.outs = nil, nil
	for i, cmd := range procs {
		ready := make(chan bool, 1)
		go func() {
			line, err := outs[i].ReadString('\n')
			ready <- err == nil && line == "ready\n"
		}()
		ok, answered := false, false
		select {
		case ok = <-ready:
			answered = true
		case <-time.After(time.Until(deadline)):
		}
		if !ok {
			cmd.Process.Kill()
			if !answered {
				<-ready // the read ends with the pipe
			}
			cmd.Wait()
			continue
		}
		w.procs = append(w.procs, cmd)
		w.outs = append(w.outs, outs[i])
	}
	return w
}

// end stops the sleepers and returns the stalls they saw.
func (w *stallWatch) end() []stall {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var stalls []stall
	for i, cmd := range w.procs {
		cmd.Process.Signal(syscall.SIGTERM)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(w.outs[i])
			for sc.Scan() {
				var cpu int
				var at, late int64
				if _, err := fmt.Sscan(sc.Text(), &cpu, &at, &late); err == nil {
					mu.Lock()
					stalls = append(stalls, stall{cpu: cpu, at: time.Unix(0, at).Sub(w.base), late: time.Duration(late)})
					mu.Unlock()
				}
			}
			cmd.Wait()
		}()
	}
	wg.Wait()
	return stalls
}

// stallSleeperMain is the bench binary as a stall watch's sleeper on cpu:
// it sleeps stallNap at a time until SIGTERM, or until the bench that
// started it is gone, and writes a line for each time it woke stallMin or
// more late: the CPU, when it went to sleep (Unix nanoseconds) and how
// late it woke (nanoseconds).
func stallSleeperMain(arg string) int {
	runtime.GOMAXPROCS(1)
	runtime.LockOSThread()
	cpuText, parentText, _ := strings.Cut(arg, "/")
	cpu, err1 := strconv.Atoi(cpuText)
	parent, err2 := strconv.Atoi(parentText)
	if err1 != nil || err2 != nil {
		fmt.Fprintf(os.Stderr, "%s=%q: want CPU/PID\n", stallWatchEnv, arg)
		return 2
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	var out strings.Builder
	os.Stdout.WriteString("ready\n")
	ts := syscall.NsecToTimespec(int64(stallNap))
	for {
		select {
		case <-term:
			return 0
		default:
		}
		if os.Getppid() != parent {
			return 0 // the bench is gone, and did not stop it
		}
		t0 := time.Now()
		syscall.Nanosleep(&ts, nil)
		if late := time.Since(t0) - stallNap; late >= stallMin {
			out.Reset()
			fmt.Fprintf(&out, "%d %d %d\n", cpu, t0.UnixNano(), int64(late))
			os.Stdout.WriteString(out.String())
		}
	}
}

// machineCheck keeps every CPU busy for d, each with a thread that reads
// the clock without pause, and returns how much time the machine took
// from them in stops of 2 ms or more, and the longest stop. A virtual
// machine whose host caps its CPU time loses it in stops of about
// 100 ms (the host scheduler's period) once both CPUs are busy.
func machineCheck(d time.Duration) (lost, longest time.Duration) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for cpu := range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // the pinned thread exits with it
			m := maskOf([]int{cpu})
			if setAffinity(syscall.Gettid(), &m) != nil {
				return
			}
			var sum, max time.Duration
			start := time.Now()
			last := start
			for last.Sub(start) < d {
				t := time.Now()
				if gap := t.Sub(last); gap >= 2*time.Millisecond {
					sum += gap
					max = maxDur(max, gap)
				}
				last = t
			}
			mu.Lock()
			lost += sum
			longest = maxDur(longest, max)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return lost, longest
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}
