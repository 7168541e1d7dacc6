//go:build linux

package main

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
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

// TestSleeperEndsWithoutItsBench starts a sleeper from a shell that exits
// at once, as a bench that died would leave it, and checks that the
// sleeper ends on its own.
func TestSleeperEndsWithoutItsBench(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", stallWatchEnv+`="0/$$" "$0" >/dev/null 2>&1 & echo $!`, self)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("pid %q: %v", out, err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		// Gone, or a zombie of whoever adopted it.
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || strings.Contains(string(b), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatal("the sleeper outlived the process that started it by 5 s")
		}
	}
}
