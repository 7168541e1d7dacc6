//go:build !linux

package ctl

import "unsafe"

// populate is a no-op where there is no MADV_POPULATE_WRITE.
func populate(p unsafe.Pointer, n uintptr) {}

// hugeAlign is 0: populate maps no huge pages.
func hugeAlign() uintptr { return 0 }
