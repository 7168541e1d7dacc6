package main

import (
	"runtime"
	"syscall"
	"time"
)

// prSetTimerSlack is prctl's PR_SET_TIMERSLACK.
const prSetTimerSlack = 29

// pacer waits until a given time more precisely than time.Sleep, whose
// wake-ups on Linux come up to a millisecond late: it holds its OS thread,
// asks the kernel for 1 µs of timer slack instead of 50 µs, sleeps with
// nanosleep until spin before the time and spins the rest.
type pacer struct{ spin time.Duration }

func newPacer(spin time.Duration) *pacer {
	runtime.LockOSThread()
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, 1000, 0)
	return &pacer{spin: spin}
}

func (p *pacer) waitUntil(t time.Time) {
	if d := time.Until(t) - p.spin; d > 0 {
		ts := syscall.NsecToTimespec(int64(d))
		syscall.Nanosleep(&ts, nil)
	}
	for p.spin > 0 && time.Now().Before(t) {
	}
}

func (p *pacer) close() {
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, 50000, 0)
	runtime.UnlockOSThread()
}

// pageFaultCost is what touching a page of fresh memory costs this
// machine: 64 MiB mapped and written once a page. On bare metal it is a
// fraction of a microsecond; on a virtual machine it can be 10 µs or more,
// and then the first read of a document of megabytes costs more in faults
// than in parsing.
func pageFaultCost() (time.Duration, error) {
	const n = 64 << 20
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return 0, err
	}
	defer syscall.Munmap(b)
	page := syscall.Getpagesize()
	t0 := time.Now()
	for i := 0; i < n; i += page {
		b[i] = 1
	}
	return time.Since(t0) / time.Duration(n/page), nil
}
