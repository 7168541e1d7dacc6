package main

import "testing"

// TestHeapLimit: the soft limit is softHeap for a small process, follows
// what a large one holds (in steps of softHeap/8) and stops at the
// ceiling --max-memory set.
func TestHeapLimit(t *testing.T) {
	const mib = 1 << 20
	step := int64(softHeap / 8)
	for _, tc := range []struct {
		held, ceiling, want int64
	}{
		{0, 0, softHeap},
		{30 * mib, 0, softHeap},
		{softHeap, 0, softHeap},
		{softHeap + 1, 0, softHeap + step},
		{401 * mib, 0, 405 * mib},
		{400 * mib, 300 * mib, 300 * mib},
		{10 * mib, 20 * mib, 20 * mib},
	} {
		if got := heapLimit(tc.held, tc.ceiling); got != tc.want {
			t.Errorf("heapLimit(%d MiB, %d MiB) = %d MiB, want %d MiB", tc.held/mib, tc.ceiling/mib, got/mib, tc.want/mib)
		}
	}
}
