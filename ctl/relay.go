package ctl

import (
	"context"
	"slices"
	"strings"
)

// Relay is what tor knows of a relay: its consensus entry and, where tor
// has it, its server descriptor (the full exit policy, platform, uptime,
// declared family).
type Relay struct {
	RouterStatus
	Descriptor *ServerDescriptor // nil when tor has none (it fetches microdescriptors)
	// Micro is the relay's microdescriptor, when tor has no server
	// descriptors (tor's default: it fetches microdescriptors), or nil.
	Micro *Microdescriptor
	// Country is the lower-case country code of Address by tor's GeoIP
	// database (GETINFO ip-to-country), "" when tor does not know it or
	// has no GeoIP data.
	Country string
	// EffectiveFamily is the fingerprints of the relays that declare
	// this one in their family and that it declares in its own: tor puts
	// two relays on one circuit only when they are not (nodes_in_same_family).
	// Empty without descriptors.
	EffectiveFamily []string
}

// CanExitTo reports whether the relay's exit policy lets a connection to
// address (an IP literal or a hostname) and port through: by its full
// policy when tor has its descriptor, by the consensus summary otherwise.
// A summary answers at best "probably" (it does not list the addresses a
// relay refuses), so with strict only a full policy can say yes.
// rejectInternal is the client's ClientRejectInternalAddresses, which tor
// applies to summaries.
func (r *Relay) CanExitTo(address string, port int, strict, rejectInternal bool) (bool, error) {
	res, err := r.ExitPolicyResult(address, port, rejectInternal)
	if err != nil {
		return false, err
	}
	return res.Allows(strict), nil
}

// ExitPolicyResult is what the relay's policy says of address and port;
// see CanExitTo.
func (r *Relay) ExitPolicyResult(address string, port int, rejectInternal bool) (PolicyResult, error) {
	if r.Descriptor != nil {
		return r.Descriptor.ExitPolicyFor(address, port)
	}
	a, known, err := policyAddr(address)
	if err != nil {
		return PolicyRejected, err
	}
	if known && a.Is6() && !a.Is4In6() {
		if r.Micro == nil {
			return PolicyRejected, nil
		}
		return r.Micro.IPv6Policy.Evaluate(a, port, rejectInternal), nil
	}
	return r.ExitPolicy.Evaluate(a.Unmap(), port, rejectInternal), nil
}

// consensusKeys are where tor keeps the consensus it uses, fullest first.
var consensusKeys = []string{"dir/status-vote/current/consensus", "dir/status-vote/current/consensus-microdesc"}

// Relays reads what tor knows of every relay. The entries come from the
// consensus document tor keeps (it has the "v" and "w ... Unmeasured=1"
// lines and the real published times, which ns/all leaves out), or from
// ns/all when tor keeps none; descriptors come from desc/all-recent, when
// tor has them.
func (c *Conn) Relays(ctx context.Context) ([]Relay, error) {
	// The descriptors are asked for first, without waiting, and parsed
	// on a goroutine of their own while the consensus is read and parsed
	// here: tor answers both in one go, and the two parses (megabytes
	// each for thousands of relays) run side by side.
	type parsed struct {
		ds  []ServerDescriptor
		err error
	}
	descDone := make(chan parsed, 1)
	const descKey = "desc/all-recent"
	err := c.Start(ctx, Command{line: "GETINFO " + descKey}, func(r *Reply, err error) {
		go func() { // off the connection's reader
			var ds []ServerDescriptor
			if err == nil {
				var m map[string]string
				if m, err = ParseKeyValueReply(r); err == nil {
					ds, _ = ParseServerDescriptors(m[descKey])
				}
			}
			descDone <- parsed{ds, err}
		}()
	})
	if err != nil {
		return nil, err
	}
	var out []Relay
	var perr error
	found := false
	for _, key := range consensusKeys {
		doc, err := c.GetInfoOne(ctx, key)
		if ErrorCode(err) != 0 || err == nil && doc == "" {
			continue // not kept (551, 552): try the next
		}
		if err != nil {
			<-descDone
			return nil, err
		}
		out, perr = parseConsensusEntries(doc, func(r *Relay) *RouterStatus { return &r.RouterStatus })
		found = true
		break
	}
	if !found {
		// ns/all, read straight into Relays as the consensus is.
		doc, err := c.GetInfoOne(ctx, "ns/all")
		if err != nil {
			<-descDone
			return nil, err
		}
		out, perr = parseRouterStatuses(doc, func(r *Relay) *RouterStatus { return &r.RouterStatus })
	}
	d := <-descDone
	if d.err != nil && ErrorCode(d.err) == 0 {
		return nil, d.err
	}
	descs := make(map[string]*ServerDescriptor, len(d.ds))
	for i := range d.ds {
		descs[d.ds[i].Fingerprint] = &d.ds[i]
	}
	var micro map[string]*Microdescriptor // by digest
	if len(descs) == 0 {
		text, err := c.GetInfoOne(ctx, "md/all")
		if err != nil && ErrorCode(err) == 0 {
			return nil, err
		}
		mds, _ := ParseMicrodescriptors(text)
		micro = make(map[string]*Microdescriptor, len(mds))
		for i := range mds {
			micro[mds[i].Digest] = &mds[i]
		}
	}
	for i := range out {
		r := &out[i]
		r.Descriptor = descs[r.Fingerprint]
		if r.Microdesc != "" {
			r.Micro = micro[r.Microdesc]
		}
		if d := r.Descriptor; d != nil && r.Version == "" && d.Version != "" {
			r.Version = "Tor " + d.Version
		}
	}
	SetEffectiveFamilies(out)
	if err := c.setCountries(ctx, out); err != nil {
		return nil, err
	}
	return out, perr
}

// countryBatch is how many addresses one GETINFO asks the country of.
const countryBatch = 256

// setCountries fills in the relays' Country when tor has GeoIP data.
func (c *Conn) setCountries(ctx context.Context, rs []Relay) error {
	if v, err := c.GetInfoOne(ctx, "ip-to-country/ipv4-available"); err != nil || v != "1" {
		if err != nil && ErrorCode(err) == 0 {
			return err
		}
		return nil
	}
	var addrs []string
	seen := map[string]bool{}
	for i := range rs {
		if a := rs[i].Address; a != "" && !seen[a] {
			seen[a] = true
			addrs = append(addrs, a)
		}
	}
	country := make(map[string]string, len(addrs))
	for len(addrs) > 0 {
		n := min(len(addrs), countryBatch)
		keys := make([]string, n)
		for i, a := range addrs[:n] {
			keys[i] = "ip-to-country/" + a
		}
		addrs = addrs[n:]
		vals, err := c.GetInfo(ctx, keys...)
		if err != nil {
			if ErrorCode(err) == 0 {
				return err
			}
			continue // an address tor will not look up: no country
		}
		for _, k := range keys {
			if cc := strings.ToLower(vals[k]); cc != "??" && cc != "" {
				country[strings.TrimPrefix(k, "ip-to-country/")] = cc
			}
		}
	}
	for i := range rs {
		rs[i].Country = country[rs[i].Address]
	}
	return nil
}

// SetEffectiveFamilies fills in each relay's EffectiveFamily from the
// family lines of its server descriptor or microdescriptor (a family entry
// is "$FP", "$FP=NICK", "$FP~NICK" or a nickname: any relay of the table
// with that nickname; two relays are one family when each names the
// other), and from the family-ids of microdescriptors (relays that list
// one id are one family).
func SetEffectiveFamilies(rs []Relay) {
	var byNick map[string][]string   // made when a family names a nickname
	var declares map[string][]string // made at the first family: none without descriptors
	byID := map[string][]string{}    // family-id -> fingerprints
	for i := range rs {
		var family []string
		switch {
		case rs[i].Descriptor != nil:
			family = rs[i].Descriptor.Family
		case rs[i].Micro != nil:
			family = rs[i].Micro.Family
			for _, id := range rs[i].Micro.FamilyIDs {
				byID[id] = append(byID[id], rs[i].Fingerprint)
			}
		}
		if len(family) == 0 {
			continue
		}
		fps := make([]string, 0, len(family))
		for _, e := range family {
			if fp, ok := strings.CutPrefix(e, "$"); ok {
				if j := strings.IndexAny(fp, "=~"); j >= 0 {
					fp = fp[:j]
				}
				fps = append(fps, strings.ToUpper(fp))
				continue
			}
			if byNick == nil {
				byNick = make(map[string][]string, len(rs))
				for k := range rs {
					byNick[rs[k].Nickname] = append(byNick[rs[k].Nickname], rs[k].Fingerprint)
				}
			}
			fps = append(fps, byNick[e]...)
		}
		if declares == nil {
			declares = make(map[string][]string, len(rs)-i)
		}
		declares[rs[i].Fingerprint] = fps
	}
	for i := range rs {
		me := rs[i].Fingerprint
		var fam []string
		for _, fp := range declares[me] {
			if fp != me && slices.Contains(declares[fp], me) && !slices.Contains(fam, fp) {
				fam = append(fam, fp)
			}
		}
		if m := rs[i].Micro; m != nil {
			// A family-id is certified by every relay that lists it:
			// no need for both sides to name each other.
			for _, id := range m.FamilyIDs {
				for _, fp := range byID[id] {
					if fp != me && !slices.Contains(fam, fp) {
						fam = append(fam, fp)
					}
				}
			}
		}
		slices.Sort(fam)
		rs[i].EffectiveFamily = fam
	}
}

// ParseConsensusEntries reads the router status entries of a consensus
// document (dir-spec 3.4.1), either flavour: what lies between the header
// and "directory-footer".
func ParseConsensusEntries(doc string) ([]RouterStatus, error) {
	return parseConsensusEntries(doc, func(rs *RouterStatus) *RouterStatus { return rs })
}

func parseConsensusEntries[T any](doc string, status func(*T) *RouterStatus) ([]T, error) {
	start := strings.Index(doc, "\nr ")
	if strings.HasPrefix(doc, "r ") {
		start = 0
	} else if start < 0 {
		return nil, nil
	} else {
		start++
	}
	body := doc[start:]
	if end := strings.Index(body, "\ndirectory-footer"); end >= 0 {
		body = body[:end+1]
	}
	return parseRouterStatuses(body, status)
}
