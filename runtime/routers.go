package runtime

import (
	"context"

	"github.com/torscript/torscript/ctl"
)

// routerTable is tor's relays as the script reads them (tor.routers(),
// tor.exits_to()): read from tor at the first call, kept until tor says it
// changed (NEWCONSENSUS, NS, NEWDESC) or the connection is new, and read
// again at the next call after that.
type routerTable struct {
	tracking       bool // subscribed: a script asked once
	relays         []ctl.Relay
	rejectInternal bool // ClientRejectInternalAddresses
	fresh          bool
}

// routerEvents are the events that make the table stale.
var routerEvents = []string{ctl.EventNewConsensus, ctl.EventNS, ctl.EventNewDesc}

// stale marks the table to be read again.
func (t *routerTable) stale() { t.fresh = false }

// Relays is builtins.Host's: the table, read from tor when it is stale.
func (h *host) Relays(ctx context.Context) ([]ctl.Relay, bool, error) {
	r := h.rt()
	c, err := h.Conn()
	if err != nil {
		return nil, false, err
	}
	t := &r.routers
	if !t.tracking {
		t.tracking = true
		if err := r.subscribe(); err != nil {
			t.tracking = false
			return nil, false, err
		}
	}
	if t.fresh {
		return t.relays, t.rejectInternal, nil
	}
	rs, err := c.Relays(ctx)
	if rs == nil && err != nil {
		return nil, false, err
	}
	// An entry tor writes in a way ctl cannot read is left out, and not
	// worth failing the others for.
	conf, err := c.GetConf(ctx, "ClientRejectInternalAddresses")
	if err != nil {
		return nil, false, err
	}
	e, _ := conf.Lookup("ClientRejectInternalAddresses")
	// "auto" and unset follow TestingTorNetwork, which a private network
	// sets; tor's default is 1.
	t.rejectInternal = e.Value != "0"
	t.relays, t.fresh = rs, true
	return rs, t.rejectInternal, nil
}
