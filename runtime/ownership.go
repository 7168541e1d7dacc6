package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/runtime/owner"
)

// Ownership is how a run records what it changes on tor before it changes
// it, so that its guardian, a later run or `torscript repair` can undo it
// whatever happens to this process (see package owner).
type Ownership struct {
	// Run and Policy are the journal and the policy lock a guardian opened
	// and handed down. When Run is nil they are opened on first need, in
	// StateDir, and the runtime removes its journal when it ends.
	Run    *owner.Run
	Policy *owner.Policy
	// StateDir is where records are kept; default owner.Dir().
	StateDir string
	Holder   owner.Holder
	// Control is the control address, naming the tor when it does not
	// say its DataDirectory.
	Control string
	// TakeOver replaces a live run that holds the tor's stream policy
	// (SIGTERM, then SIGKILL) instead of refusing to start.
	TakeOver bool
}

// ownState is the runtime's side of its records.
type ownState struct {
	run    *owner.Run
	policy *owner.Policy
	mine   bool            // opened here, not by a guardian: removed at the end
	held   bool            // the policy lock is ours
	confs  map[string]bool // config keys recorded, upper-cased
	keep   map[string]bool // config keys declared with keep=True: never recorded
}

// journal returns the run's journal, opening it on first need.
func (r *Runtime) journal(ctx context.Context) (*owner.Run, error) {
	o := r.opts.Owner
	if o == nil {
		return nil, nil
	}
	if r.own.run != nil {
		return r.own.run, nil
	}
	if o.Run != nil {
		r.own.run, r.own.policy = o.Run, o.Policy
		return r.own.run, nil
	}
	if r.conn == nil {
		return nil, errString("not connected to tor")
	}
	dir := o.StateDir
	if dir == "" {
		dir = owner.Dir()
	}
	t, err := owner.OpenTor(dir, owner.Key(ctx, r.conn, o.Control))
	if err != nil {
		return nil, err
	}
	// Undo what dead runs left before recording anything of ours.
	done, err := t.Repair(ctx, r.conn)
	for _, d := range done {
		r.log.Warn("undid what a dead torscript left", "what", d)
	}
	if err != nil {
		r.log.Error("could not undo what a dead torscript left", "err", err)
	}
	h := o.Holder
	if h.PID == 0 {
		h = owner.NewHolder(h.Script, o.Control)
	}
	run, err := t.NewRun(h)
	if err != nil {
		return nil, fmt.Errorf("recording this run's changes: %w", err)
	}
	pol, err := t.OpenPolicy()
	if err != nil {
		run.Remove()
		return nil, fmt.Errorf("recording this run's changes: %w", err)
	}
	r.own.run, r.own.policy, r.own.mine = run, pol, true
	return run, nil
}

// record writes e to the journal before the change it describes is made;
// a change that cannot be recorded is not made.
func (r *Runtime) record(ctx context.Context, e owner.Entry) error {
	run, err := r.journal(ctx)
	if err != nil || run == nil {
		return err
	}
	if err := run.Record(e); err != nil {
		return fmt.Errorf("recording a change before making it: %w", err)
	}
	return nil
}

// acquirePolicy takes the tor's policy lock: one policy per tor. A live
// holder makes it fail, naming the holder, unless TakeOver is set; then
// the holder is asked to stop (SIGTERM), and killed if it does not.
func (r *Runtime) acquirePolicy(ctx context.Context) error {
	if _, err := r.journal(ctx); err != nil || r.own.policy == nil {
		return err
	}
	if r.own.held {
		return nil
	}
	h := r.opts.Owner.Holder
	if h.PID == 0 {
		h = owner.NewHolder(h.Script, r.opts.Owner.Control)
	}
	err := r.own.policy.Acquire(h)
	var held *owner.ErrHeld
	if errors.As(err, &held) && r.opts.Owner.TakeOver {
		err = r.takeOverPolicy(ctx, held.Holder, h)
	}
	if errors.As(err, &held) {
		return fmt.Errorf("%w; stop it, or run with --take-over to replace it", err)
	}
	if err != nil {
		return err
	}
	r.own.held = true
	return nil
}

func (r *Runtime) takeOverPolicy(ctx context.Context, old, h owner.Holder) error {
	host, _ := os.Hostname()
	if old.Host != "" && old.Host != host {
		return fmt.Errorf("the stream policy of this tor is held by %s, on another host: stop it there", old)
	}
	r.log.Warn("taking the stream policy over", "from", old.String())
	try := func(d time.Duration) error {
		end := time.Now().Add(d)
		for {
			err := r.own.policy.Acquire(h)
			var held *owner.ErrHeld
			if !errors.As(err, &held) || time.Now().After(end) {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	if old.PID > 0 {
		syscall.Kill(old.PID, syscall.SIGTERM)
	}
	err := try(10 * time.Second)
	var held *owner.ErrHeld
	if errors.As(err, &held) {
		r.log.Warn("the holder did not stop; killing it", "holder", old.String())
		if old.PID > 0 {
			// Its guardian then undoes what it left, and lets go of the
			// policy when it has.
			syscall.Kill(old.PID, syscall.SIGKILL)
		}
		err = try(10 * time.Second)
	}
	if err != nil {
		return err
	}
	// A holder that was killed left its changes (its guardian has undone
	// them, unless it was killed too): undo what is left first.
	r.repairDead(ctx)
	return nil
}

func (r *Runtime) repairDead(ctx context.Context) {
	o := r.opts.Owner
	dir := o.StateDir
	if dir == "" {
		dir = owner.Dir()
	}
	t, err := owner.OpenTor(dir, owner.Key(ctx, r.conn, o.Control))
	if err != nil {
		return
	}
	done, err := t.Repair(ctx, r.conn)
	for _, d := range done {
		r.log.Warn("undid what a dead torscript left", "what", d)
	}
	if err != nil {
		r.log.Error("could not undo what a dead torscript left", "err", err)
	}
}

// recordCommand records what a script's command line is about to change
// (address mappings, config keys with their values before), on the
// connection's check, before the line is written.
func (r *Runtime) recordCommand(ctx context.Context, line string) error {
	if r.conn == nil {
		return nil
	}
	cl, err := ctl.ParseCommandLine(line)
	if err != nil {
		return fmt.Errorf("refused, nothing sent: %v", err)
	}
	switch cl.Keyword {
	case "MAPADDRESS":
		var addrs []string
		for _, pair := range strings.Fields(cl.Args) {
			from, to, ok := strings.Cut(pair, "=")
			if ok && from != to {
				addrs = append(addrs, from)
			}
		}
		if len(addrs) == 0 || r.opts.Owner == nil {
			return nil
		}
		return r.record(ctx, owner.Entry{Op: "map", Addrs: addrs})
	case "SETCONF", "RESETCONF":
		keys, err := cl.ConfKeys()
		if err != nil {
			return fmt.Errorf("refused, nothing sent: %v", err)
		}
		for _, k := range keys {
			if err := r.recordConf(ctx, k); err != nil {
				return err
			}
		}
	}
	return nil
}

// recordConf records a config key's values before the script first sets
// it. It also refuses a key that tor reads as another name (tor takes
// abbreviations: "l" is Log), so that the key a grant or a declaration
// names is the option tor sets.
func (r *Runtime) recordConf(ctx context.Context, key string) error {
	up := strings.ToUpper(key)
	if r.own.confs[up] {
		return nil
	}
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	conf, err := r.conn.GetConf(gctx, key)
	if err != nil {
		if ctl.ErrorCode(err) == ctl.CodeUnrecognized {
			return nil // tor will refuse the SETCONF too
		}
		return fmt.Errorf("refused, nothing sent: could not record %s's value before changing it: %w", key, err)
	}
	if len(conf) > 0 && !strings.EqualFold(conf[0].Key, key) {
		return fmt.Errorf("refused, nothing sent: tor reads the config key %q as %s; write %s (a grant or a declaration names the option itself)", key, conf[0].Key, conf[0].Key)
	}
	if r.own.confs == nil {
		r.own.confs = map[string]bool{}
	}
	if r.opts.Owner == nil || strings.EqualFold(key, leaveStreams) && r.policy != nil || r.own.keep[up] {
		r.own.confs[up] = true // checked; nothing to record
		return nil
	}
	e := owner.Entry{Op: "conf", Key: key}
	for _, c := range conf {
		if c.NoValue {
			e.NoValue = true
			continue
		}
		e.Orig = append(e.Orig, c.Value)
	}
	if err := r.record(ctx, e); err != nil {
		return err
	}
	r.own.confs[up] = true
	return nil
}

// finishOwnership undoes, at a clean end, what only the records know of
// (config keys the script set), then marks the journal done; the journal
// is removed when this runtime opened it (no guardian).
func (r *Runtime) finishOwnership(ctx context.Context) {
	run := r.own.run
	if run == nil {
		return
	}
	st, err := run.State()
	if err == nil && r.conn != nil && r.conn.Err() == nil {
		// What the runtime restored itself is marked; what remains (the
		// config keys, anything it could not restore) is undone here.
		if !st.Empty() {
			if _, err := owner.Undo(ctx, r.conn, st); err != nil {
				r.log.Error("could not undo every change of the script", "err", err)
				return // keep the journal: the guardian or a later run retries
			}
			if len(st.Confs) > 0 {
				keys := make([]string, len(st.Confs))
				for i, c := range st.Confs {
					keys[i] = c.Key
				}
				r.log.Info("config restored", "keys", strings.Join(keys, ","))
			}
		}
		run.Record(owner.Entry{Op: "undone"})
	}
	if r.own.held {
		r.own.policy.Release()
		r.own.held = false
	}
	if r.own.mine {
		if err == nil {
			run.Remove()
		}
		if !r.own.held && r.own.policy != nil {
			r.own.policy.Close()
		}
	}
}

// recordPolicyStart records, before __LeaveStreamsUnattached is set, its
// value before and what on_error does with streams.
func (r *Runtime) recordPolicyStart(ctx context.Context, p *builtins.Policy, oldLeave string) error {
	e := owner.Entry{Op: "on_error"}
	if c, ok := p.OnError.(builtins.Close); ok {
		e.Close = uint8(c.Reason)
	}
	if err := r.record(ctx, e); err != nil {
		return err
	}
	return r.record(ctx, owner.Entry{Op: "leave", Orig: []string{oldLeave}})
}
