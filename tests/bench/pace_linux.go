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
