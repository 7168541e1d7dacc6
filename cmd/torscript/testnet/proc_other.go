//go:build !linux

package testnet

import "syscall"

// setPdeathsig is a no-op where the kernel has no parent-death signal.
func setPdeathsig(*syscall.SysProcAttr) {}
