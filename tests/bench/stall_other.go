//go:build !linux

package main

import "time"

// stallWatch sees no stalls off Linux: it would need to pin a thread to
// each CPU.
type stallWatch struct{}

func watchStalls() *stallWatch   { return &stallWatch{} }
func (*stallWatch) end() []stall { return nil }

// stallWatchEnv names the sleepers' variable, which off Linux nothing
// sets.
const stallWatchEnv = "TORSCRIPT_BENCH_STALL_WATCH"

func stallSleeperMain(string) int { return 2 }

func machineCheck(time.Duration) (lost, longest time.Duration) { return 0, 0 }
