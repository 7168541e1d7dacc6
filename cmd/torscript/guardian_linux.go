package main

import (
	"os/exec"
	"runtime/debug"
	"syscall"
)

// guardSupported: the guardian needs flock, pipes as extra descriptors
// and a parent-death signal.
const guardSupported = true

// setChildAttrs makes the interpreter stop cleanly (SIGTERM) if the
// guardian dies, so that it undoes its changes itself.
func setChildAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// limitMemory makes the kernel refuse the interpreter's memory past n
// bytes (RLIMIT_DATA counts the Go heap's mappings): the Go runtime then
// dies with "out of memory" and the guardian takes over. Below that the
// collector works harder as the heap nears n.
func limitMemory(n int64) error {
	if n <= 0 {
		return nil
	}
	debug.SetMemoryLimit(n / 10 * 9)
	return syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: uint64(n), Max: uint64(n)})
}
