//go:build linux

package main

import (
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// stallWatch has a sleeper on each CPU that wakes every stallNap and
// notes when it woke stallMin or more late: the machine itself stopped
// (a virtual machine's CPU the host did not run), which no figure of
// torscript's should be blamed for. It costs each CPU a wake-up every
// stallNap.
type stallWatch struct {
	base   time.Time
	stop   atomic.Bool
	wg     sync.WaitGroup
	mu     sync.Mutex
	stalls []stall
}

func watchStalls() *stallWatch {
	w := &stallWatch{base: time.Now()}
	for cpu := range runtime.NumCPU() {
		w.wg.Add(1)
		go w.sleeper(cpu)
	}
	return w
}

// sleeper holds its thread to the end, so the thread, pinned to cpu,
// exits with it rather than go back to the runtime's pool.
func (w *stallWatch) sleeper(cpu int) {
	defer w.wg.Done()
	runtime.LockOSThread()
	m := maskOf([]int{cpu})
	if setAffinity(syscall.Gettid(), &m) != nil {
		return
	}
	ts := syscall.NsecToTimespec(int64(stallNap))
	for !w.stop.Load() {
		t0 := time.Now()
		syscall.Nanosleep(&ts, nil)
		if late := time.Since(t0) - stallNap; late >= stallMin {
			w.mu.Lock()
			w.stalls = append(w.stalls, stall{cpu: cpu, at: t0.Sub(w.base), late: late})
			w.mu.Unlock()
		}
	}
}

// end stops the sleepers and returns the stalls they saw.
func (w *stallWatch) end() []stall {
	w.stop.Store(true)
	w.wg.Wait()
	return w.stalls
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
