package ctl

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

// The madvise advice the syscall package predates: MADV_POPULATE_WRITE
// came with Linux 5.14. An older kernel answers EINVAL, and the pages are
// faulted in one at a time as before.
const (
	madvHugePage      = 14
	madvNoHugePage    = 15
	madvPopulateWrite = 23
)

var (
	pageSize = uintptr(os.Getpagesize())
	// hugePageSize is the size of a transparent huge page when the kernel
	// gives them only where asked ("madvise", Debian's default), else 0:
	// where it gives them always, populating maps them anyway; where
	// never, it cannot.
	hugePageSize = sync.OnceValue(func() uintptr {
		mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
		if err != nil || !strings.Contains(string(mode), "[madvise]") {
			return 0
		}
		b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
		if err != nil {
			return 0
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n == 0 || n&(n-1) != 0 {
			return 0
		}
		return uintptr(n)
	})
)

// populate has the kernel map the whole pages among the n bytes at p now,
// writable, in one system call, instead of one page fault at a time as
// they are first written; the huge pages the range holds whole, it maps
// as huge pages where the kernel has them free. A reply or table of
// megabytes lands in fresh memory, and on some virtual machines a page
// fault costs 10 µs or more, more than the parsing (this project's CI
// among them, whose hypervisor shadows the page tables): there populating
// costs a twentieth of that, the first write to a populated page about
// half, and to a huge page much less. It changes no byte: a page already
// mapped stays as it is, a new one is zero, as it would be.
//
// The huge-page advice is taken back at once (MADV_NOHUGEPAGE, which in
// "madvise" mode is what the heap had), so that the kernel does not later
// gather memory the Go runtime gave back into huge pages.
func populate(p unsafe.Pointer, n uintptr) {
	start := uintptr(p)
	lo, hi := alignUp(start, pageSize), alignDown(start+n, pageSize)
	if hi <= lo {
		return
	}
	var hlo, hhi uintptr
	if h := hugePageSize(); h != 0 {
		hlo, hhi = alignUp(start, h), alignDown(start+n, h)
	}
	// Advice is only advice: an error leaves the memory as it was.
	if hhi > hlo {
		madvise(hlo, hhi-hlo, madvHugePage)
	}
	madvise(lo, hi-lo, madvPopulateWrite)
	if hhi > hlo {
		madvise(hlo, hhi-hlo, madvNoHugePage)
	}
	runtime.KeepAlive(p)
}

// hugeAlign is the alignment at which populate maps huge pages, or 0.
func hugeAlign() uintptr { return hugePageSize() }

func madvise(addr, n uintptr, advice int) {
	syscall.Syscall(syscall.SYS_MADVISE, addr, n, uintptr(advice))
}
