package ctl

import (
	"context"
	"errors"
)

// errEmptyCommand is Start's answer to a zero Command, which no
// constructor returns.
var errEmptyCommand = errors.New("ctl: empty command")

// A Command is one command line, built once by a constructor that checked
// every argument (AttachStreamCommand, RedirectStreamCommand,
// CloseStreamCommand), ready to be sent without waiting by Conn.Start. Its
// line is not split or checked again on the way out, except by the check
// installed with SetCheck, which reads the final line on every path (typed
// commands, Start, Do and Raw alike).
type Command struct {
	line string
}

// String is the command line, without CRLF.
func (c Command) String() string { return c.line }

// command finishes the line when every argument passed.
func (l *cmdLine) command() (Command, error) {
	if l.err != nil {
		return Command{}, l.err
	}
	return Command{line: l.b.String()}, nil
}

// AttachStreamCommand is the command AttachStream sends, for Start.
func AttachStreamCommand(stream, circuit string, hop int) (Command, error) {
	return attachStreamLine(stream, circuit, hop).command()
}

// RedirectStreamCommand is the command RedirectStream sends, for Start.
func RedirectStreamCommand(stream, addr string, port int) (Command, error) {
	return redirectStreamLine(stream, addr, port).command()
}

// CloseStreamCommand is the command CloseStream sends, for Start.
func CloseStreamCommand(stream string, reason RelayEndReason, flags ...string) (Command, error) {
	return closeStreamLine(stream, reason, flags).command()
}

// Start writes cmd and returns without waiting for its reply: done is
// called with the reply (and an *Error for a 4yz or 5yz reply) from the
// connection's reader goroutine, or with the error that ended the
// connection. done must not block. If Start returns an error, done is
// never called. ctx bounds only the wait to write (and Options.Timeout the
// write itself when ctx has no deadline). The reply may be behind
// events the reader holds back while the consumer does not take them (see
// Options.EventBytes): a program that waits for done must go on taking
// events meanwhile, or wait with Do instead.
func (c *Conn) Start(ctx context.Context, cmd Command, done func(*Reply, error)) error {
	if cmd.line == "" {
		return errEmptyCommand
	}
	// No context of its own: write bounds the write by Options.Timeout
	// when ctx has no deadline (a timer for each command was a tenth of
	// a policy's cost under a flood).
	return c.write(ctx, cmd.line, "", false, &pending{cb: done})
}

// StartGuarded is Start for a caller that guards what a corked connection
// holds itself: the command, held, arms no timer, and goes out at Flush,
// or corkDelay after the caller's next Guard. A loop that corks a batch of
// events and decides about them in Go between its script's calls (the
// runtime's policy) saves a timer's start and stop at each batch.
func (c *Conn) StartGuarded(ctx context.Context, cmd Command, done func(*Reply, error)) error {
	if cmd.line == "" {
		return errEmptyCommand
	}
	return c.write(ctx, cmd.line, "", false, &pending{cb: done, guarded: true})
}
