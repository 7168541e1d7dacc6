package main

import (
	"os/exec"
	"runtime/debug"
	"syscall"
)

// guardSupported: the guardian needs flock, descriptors handed down and
// sessions.
const guardSupported = true

// setGuardianAttrs puts the guardian in a session of its own: a Ctrl-C,
// a closed terminal or a kill of the interpreter's process group does not
// reach it.
func setGuardianAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
}

// limitMemory makes the kernel refuse the interpreter's memory past n
// bytes (RLIMIT_DATA counts the Go heap's mappings): the Go runtime then
// dies with "out of memory" and the guardian takes over. Below that the
// collector works harder as the heap nears n.
func limitMemory(n int64) error {
	if n <= 0 {
		return nil
	}
	heapCeiling.Store(n / 10 * 9)
	if lim := n / 10 * 9; lim < debug.SetMemoryLimit(-1) {
		debug.SetMemoryLimit(lim)
	}
	return syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: uint64(n), Max: uint64(n)})
}
