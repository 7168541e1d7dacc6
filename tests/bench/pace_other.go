//go:build !linux

package main

import (
	"errors"
	"time"
)

// pacer waits until a given time: it sleeps until spin before it and spins
// the rest.
type pacer struct{ spin time.Duration }

func newPacer(spin time.Duration) *pacer { return &pacer{spin: spin} }

func (p *pacer) waitUntil(t time.Time) {
	if d := time.Until(t) - p.spin; d > 0 {
		time.Sleep(d)
	}
	for p.spin > 0 && time.Now().Before(t) {
	}
}

func (p *pacer) close() {}

// pageFaultCost is not measured on this system.
func pageFaultCost() (time.Duration, error) {
	return 0, errors.New("not measured on this system")
}
