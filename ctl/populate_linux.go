package ctl

import (
	"os"
	"runtime"
	"syscall"
	"unsafe"
)

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14), which the
// syscall package predates. An older kernel answers EINVAL, and the pages
// are faulted in one at a time as before.
const madvPopulateWrite = 23

var pageSize = uintptr(os.Getpagesize())

// populate has the kernel map the whole pages among the n bytes at p now,
// writable, in one system call, instead of one page fault at a time as
// they are first written. A reply or table of megabytes lands in fresh
// memory, and on some virtual machines a page fault costs 10 µs or more,
// more than the parsing (this project's CI among them, whose hypervisor
// shadows the page tables): populating costs a twentieth of that, and the
// first write to a populated page there about half. It changes no byte: a
// page already mapped stays as it is, a new one is zero, as it would be.
func populate(p unsafe.Pointer, n uintptr) {
	start := uintptr(p)
	lo, hi := alignUp(start, pageSize), alignDown(start+n, pageSize)
	if hi > lo {
		// Advice is only advice: an error leaves the memory as it was.
		syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, madvPopulateWrite)
	}
	runtime.KeepAlive(p)
}

func alignUp(x, a uintptr) uintptr   { return (x + a - 1) &^ (a - 1) }
func alignDown(x, a uintptr) uintptr { return x &^ (a - 1) }
