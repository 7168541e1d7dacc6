package ctl

import "context"

// SetEvents asks tor to send the named events (control-spec 3.4), e.g.
// "CIRC", "STREAM", "NOTICE"; they arrive on Events. Every event not named
// is turned off, so SetEvents with no names turns them all off. Tor answers
// 552 for a name it does not know and then changes nothing.
func (c *Conn) SetEvents(ctx context.Context, names ...string) error {
	return c.setEvents(ctx, false, names)
}

// SetEventsExtended is SetEvents with the "EXTENDED" flag, which asks tor
// versions before 0.2.2.1-alpha for the extended event format that later
// ones always use (and current tor ignores).
func (c *Conn) SetEventsExtended(ctx context.Context, names ...string) error {
	return c.setEvents(ctx, true, names)
}

func (c *Conn) setEvents(ctx context.Context, extended bool, names []string) error {
	l := newCmdLine("SETEVENTS")
	if extended {
		l.raw("EXTENDED")
	}
	for _, n := range names {
		// EventCode = 1*(ALPHA / "_"); digits are allowed too, for what
		// tor may add.
		l.arg(argChars("SETEVENTS event", n, "_"), n)
	}
	_, err := l.do(ctx, c)
	return err
}
