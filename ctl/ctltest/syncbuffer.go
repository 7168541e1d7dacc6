// Package ctltest holds helpers for tests of torscript's packages. It does
// not import ctl, so ctl's own tests can use it.
package ctltest

import (
	"bytes"
	"sync"
)

// SyncBuffer is a bytes.Buffer that a test reads while other goroutines
// (a runtime, a process's output copier) write to it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
