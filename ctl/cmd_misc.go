package ctl

import (
	"context"
	"errors"
	"io"
)

// This file holds the commands of control-spec section 3 that fit no other
// group: QUIT, USEFEATURE, POSTDESCRIPTOR, ownership, guards and timeouts.

// Completion is a positive reply that may say more than "250 OK": tor
// answers 251 when it declined an unnecessary operation (a descriptor it did
// not add, client credentials it replaced) and 252 for
// ONION_CLIENT_AUTH_ADD when it also decrypted a cached descriptor.
type Completion struct {
	Code int    // 250, 251, 252, ...
	Msg  string // the text after the code, e.g. "OK" or "Descriptor not added"
}

func completionOf(r *Reply) Completion { return Completion{Code: r.Code(), Msg: r.Text()} }

// simple sends a command without arguments and expects a 2yz reply.
func (c *Conn) simple(ctx context.Context, keyword string) error {
	_, err := newCmdLine(keyword).do(ctx, c)
	return err
}

// Quit asks tor to hang up (control-spec 3.18), then closes the connection.
// Tor answers before it closes; a connection that ends without an answer
// counts as done.
func (c *Conn) Quit(ctx context.Context) error {
	err := c.simple(ctx, "QUIT")
	if errors.Is(err, io.EOF) {
		err = nil
	}
	c.Close()
	return err
}

// UseFeature enables control-protocol features for this connection
// (control-spec 3.19), e.g. "EXTENDED_EVENTS" or "VERBOSE_NAMES" (both
// always on in current tor, which accepts and ignores them).
func (c *Conn) UseFeature(ctx context.Context, features ...string) error {
	l := newCmdLine("USEFEATURE")
	for _, f := range features {
		l.arg(argChars("USEFEATURE feature", f, "_-"), f)
	}
	_, err := l.do(ctx, c)
	return err
}

// PostDescriptorOptions are the optional parts of POSTDESCRIPTOR.
type PostDescriptorOptions struct {
	// Purpose is "general" (tor's default when empty), "controller" or
	// "bridge".
	Purpose string
	// Cache is "yes" or "no"; empty lets tor decide.
	Cache string
}

// PostDescriptor gives tor a router descriptor (control-spec 3.14). A
// well-formed descriptor that tor chose not to add is answered with code 251
// and tor's reason; an added one with 250. A malformed one is an *Error 554.
func (c *Conn) PostDescriptor(ctx context.Context, descriptor string, opts PostDescriptorOptions) (Completion, error) {
	l := newCmdLine("POSTDESCRIPTOR")
	if opts.Purpose != "" {
		l.arg(argName("POSTDESCRIPTOR purpose", opts.Purpose), "purpose="+opts.Purpose)
	}
	if opts.Cache != "" {
		l.arg(argName("POSTDESCRIPTOR cache", opts.Cache), "cache="+opts.Cache)
	}
	l.check(argData("POSTDESCRIPTOR", descriptor))
	r, err := l.doData(ctx, c, descriptor)
	if err != nil {
		return Completion{}, err
	}
	return completionOf(r), nil
}

// TakeOwnership makes tor exit when this connection closes (control-spec
// 3.23).
func (c *Conn) TakeOwnership(ctx context.Context) error { return c.simple(ctx, "TAKEOWNERSHIP") }

// DropOwnership undoes TakeOwnership (control-spec 3.33).
func (c *Conn) DropOwnership(ctx context.Context) error { return c.simple(ctx, "DROPOWNERSHIP") }

// DropGuards makes tor forget its entry guards (control-spec 3.25).
func (c *Conn) DropGuards(ctx context.Context) error { return c.simple(ctx, "DROPGUARDS") }

// DropTimeouts makes tor forget its circuit build times (control-spec
// 3.34). Tor follows the reply with a BUILDTIMEOUT_SET RESET event.
func (c *Conn) DropTimeouts(ctx context.Context) error { return c.simple(ctx, "DROPTIMEOUTS") }
