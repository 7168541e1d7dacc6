//go:build unix

package testnet

import "syscall"

// newSysProcAttr puts each tor in its own process group, so that a
// terminal's Ctrl-C (sent to the foreground group) does not reach it.
func newSysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func sendSignal(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }

func pidExists(pid int) bool { return syscall.Kill(pid, 0) == nil }
