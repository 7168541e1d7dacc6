package ctl

import (
	"context"
	"errors"
	"io"
)

// Signal is a signal for SIGNAL (control-spec 3.7).
type Signal string

// The signals of control-spec 3.7. HUP, INT, USR1, USR2 and TERM are the
// POSIX names of RELOAD, SHUTDOWN, DUMP, DEBUG and HALT.
const (
	SignalReload        Signal = "RELOAD"        // reload the configuration
	SignalShutdown      Signal = "SHUTDOWN"      // clean shutdown; a relay waits ShutdownWaitLength
	SignalDump          Signal = "DUMP"          // log open connections and circuits
	SignalDebug         Signal = "DEBUG"         // switch all logs to debug level
	SignalHalt          Signal = "HALT"          // exit now
	SignalHup           Signal = "HUP"           // RELOAD
	SignalInt           Signal = "INT"           // SHUTDOWN
	SignalUsr1          Signal = "USR1"          // DUMP
	SignalUsr2          Signal = "USR2"          // DEBUG
	SignalTerm          Signal = "TERM"          // HALT
	SignalNewNym        Signal = "NEWNYM"        // use new circuits for new requests; clears the DNS cache
	SignalClearDNSCache Signal = "CLEARDNSCACHE" // forget cached DNS answers
	SignalHeartbeat     Signal = "HEARTBEAT"     // log a heartbeat message now
	SignalActive        Signal = "ACTIVE"        // stop being dormant
	SignalDormant       Signal = "DORMANT"       // become dormant
)

// Signals returns the signals of control-spec 3.7, in its order.
func Signals() []Signal {
	return []Signal{
		SignalReload, SignalShutdown, SignalDump, SignalDebug, SignalHalt,
		SignalHup, SignalInt, SignalUsr1, SignalUsr2, SignalTerm,
		SignalNewNym, SignalClearDNSCache, SignalHeartbeat, SignalActive, SignalDormant,
	}
}

// exits reports whether tor may close the connection instead of answering.
func (s Signal) exits() bool {
	switch s {
	case SignalShutdown, SignalHalt, SignalInt, SignalTerm:
		return true
	}
	return false
}

// Signal sends a signal to tor (control-spec 3.7). Tor answers 552 for a
// signal it does not know. For SHUTDOWN, HALT, INT and TERM tor may close
// the connection without answering: that counts as done.
func (c *Conn) Signal(ctx context.Context, sig Signal) error {
	_, err := newCmdLine("SIGNAL").arg(argChars("SIGNAL name", string(sig), "_"), string(sig)).do(ctx, c)
	if err != nil && sig.exits() && errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
