//go:build linux

package main

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"
)

// cpuMask is a CPU affinity mask (sched_setaffinity(2)) of up to 1024 CPUs.
type cpuMask [16]uint64

func maskOf(cpus []int) cpuMask {
	var m cpuMask
	for _, c := range cpus {
		m[c/64] |= 1 << (c % 64)
	}
	return m
}

func setAffinity(tid int, m *cpuMask) error {
	_, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, uintptr(tid), unsafe.Sizeof(*m), uintptr(unsafe.Pointer(m)))
	if e != 0 {
		return e
	}
	return nil
}

func getAffinity(tid int, m *cpuMask) error {
	_, _, e := syscall.RawSyscall(syscall.SYS_SCHED_GETAFFINITY, uintptr(tid), unsafe.Sizeof(*m), uintptr(unsafe.Pointer(m)))
	if e != 0 {
		return e
	}
	return nil
}

// pinThreads sets the affinity of every thread of this process to cpus
// (threads started later inherit it from the thread that starts them) and
// returns the function that puts the affinity they had back.
func pinThreads(cpus []int) (restore func(), err error) {
	var old cpuMask
	if err := getAffinity(0, &old); err != nil {
		return nil, err
	}
	m := maskOf(cpus)
	if err := eachThread(func(tid int) error { return setAffinity(tid, &m) }); err != nil {
		return nil, err
	}
	return func() { eachThread(func(tid int) error { return setAffinity(tid, &old) }) }, nil
}

func eachThread(f func(tid int) error) error {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			if err := f(tid); err != nil && err != syscall.ESRCH {
				return err
			}
		}
	}
	return nil
}

// startOn starts cmd on cpus: a child takes the affinity of the thread
// that forks it, so it has it from its first instruction (and so do the
// threads and processes it starts).
func startOn(cmd *exec.Cmd, cpus []int) error {
	if cpus == nil {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := syscall.Gettid()
	var old cpuMask
	if err := getAffinity(tid, &old); err != nil {
		return err
	}
	m := maskOf(cpus)
	if err := setAffinity(tid, &m); err != nil {
		return err
	}
	defer setAffinity(tid, &old)
	return cmd.Start()
}
