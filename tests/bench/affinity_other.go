//go:build !linux

package main

import (
	"errors"
	"os/exec"
)

func pinThreads(cpus []int) (restore func(), err error) {
	return nil, errors.New("CPU affinity is set on Linux only")
}

func startOn(cmd *exec.Cmd, cpus []int) error { return cmd.Start() }
