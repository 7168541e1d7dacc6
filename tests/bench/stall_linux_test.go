//go:build linux

package main

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// stopSelf has a shell stop this process for d (SIGSTOP, then SIGCONT),
// after a moment, as a host stops a virtual machine's CPUs.
func stopSelf(t *testing.T, d time.Duration) *exec.Cmd {
	t.Helper()
	pid := strconv.Itoa(os.Getpid())
	cmd := exec.Command("sh", "-c", "sleep 0.1; kill -STOP "+pid+"; sleep "+strconv.FormatFloat(d.Seconds(), 'f', 3, 64)+"; kill -CONT "+pid)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// TestStallWatchSeesAStop stops the sleepers for 80 ms, as a host stops
// a virtual machine's CPUs, and checks that they saw it.
func TestStallWatchSeesAStop(t *testing.T) {
	w := watchStalls()
	if len(w.procs) != runtime.NumCPU() {
		t.Fatalf("%d sleepers for %d CPUs", len(w.procs), runtime.NumCPU())
	}
	time.Sleep(100 * time.Millisecond)
	for _, p := range w.procs {
		p.Process.Signal(syscall.SIGSTOP)
	}
	time.Sleep(80 * time.Millisecond)
	for _, p := range w.procs {
		p.Process.Signal(syscall.SIGCONT)
	}
	time.Sleep(20 * time.Millisecond)
	stalls := w.end()
	// The machine may stall on its own as well.
	seen := map[int]bool{}
	for _, s := range stalls {
		if s.late >= 50*time.Millisecond && s.late < time.Second && s.at >= 50*time.Millisecond {
			seen[s.cpu] = true
		}
	}
	if len(seen) != runtime.NumCPU() {
		t.Errorf("stalls: %s; want one of about 80 ms on each CPU, after the first 100 ms", stallList(stalls))
	}
}

// TestMachineCheckSeesAStop stops the test process for 80 ms while
// machineCheck keeps the CPUs busy.
func TestMachineCheckSeesAStop(t *testing.T) {
	cmd := stopSelf(t, 80*time.Millisecond)
	lost, longest := machineCheck(400 * time.Millisecond)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if longest < 50*time.Millisecond || lost < longest {
		t.Errorf("lost %v, longest stop %v: want a stop of about 80 ms on each CPU", lost, longest)
	}
}
