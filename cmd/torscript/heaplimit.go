package main

import (
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// The soft memory limit. torscript collects garbage rarely (GOGC=400):
// events are short-lived garbage and the live heap is small. When the
// live heap grows (a flood of events with commands in flight), that
// target would let the process grow to five times it; a soft limit keeps
// the heap near softHeap instead. A script that really holds more (a deep
// recursion, all of ns/all as values) must not be slowed down by a
// collector running without pause, so the limit follows what it holds: it
// is the larger of softHeap and 1.5 times the live heap plus three times the
// goroutine stacks (a deep recursion is mostly stack, and a stack grows by
// doubling), under the ceiling --max-memory sets. GOMEMLIMIT replaces all
// of this.

// softHeap is the least soft memory limit.
const softHeap = 40 << 20

// heapCeiling is the highest soft limit (from --max-memory); 0 for none.
var heapCeiling atomic.Int64

// followHeap keeps the soft memory limit at max(softHeap, 1.5 × live heap +
// 3 × stacks), at most heapCeiling, checking every 100 ms.
func followHeap() {
	debug.SetMemoryLimit(softHeap)
	go func() {
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
		cur := int64(softHeap)
		for range time.Tick(100 * time.Millisecond) {
			metrics.Read(sample)
			if sample[0].Value.Kind() != metrics.KindUint64 || sample[1].Value.Kind() != metrics.KindUint64 {
				return
			}
			live := int64(sample[0].Value.Uint64())
			held := live + live/2 + 3*int64(sample[1].Value.Uint64())
			want := heapLimit(held, heapCeiling.Load())
			if want != cur {
				debug.SetMemoryLimit(want)
				cur = want
			}
		}
	}()
}

// heapLimit is the soft limit when the process holds held bytes (as
// followHeap counts them), under ceiling (0: none), in steps of
// softHeap/8 so that it does not move all the time.
func heapLimit(held, ceiling int64) int64 {
	want := int64(softHeap)
	if held > want {
		step := want / 8
		want = (held + step - 1) / step * step
	}
	if ceiling > 0 && want > ceiling {
		want = ceiling
	}
	return want
}
