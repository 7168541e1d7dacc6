// Package owner records what a torscript run changes on a tor, so that
// whatever happens to the run (a crash, kill -9, running out of memory)
// its changes can be undone: by its guardian, by the next torscript that
// talks to the same tor, or by `torscript repair`. It also makes the
// stream policy of a tor one run's at a time.
//
// Records live in a directory per tor (Dir, keyed by tor's DataDirectory)
// holding:
//
//   - run-PID-N.jsonl: one journal per run, a JSON object a line, appended
//     before each change is made (the original value of
//     __LeaveStreamsUnattached, the addresses the run maps, the original
//     values of config keys it sets, its on_error). The run holds an
//     exclusive flock on it while it lives, so a journal whose lock can be
//     taken belongs to a dead run.
//   - policy.lock: flocked by the run whose stream policy is active, and
//     holding that run's Holder as JSON.
//
// flock locks belong to an open file description, so a guardian that
// opens a file and hands it to its interpreter child keeps the lock after
// the child dies, until it has undone the child's changes.
//
// The package knows the control protocol (through ctl) and nothing of
// Starlark.
package owner

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/torscript/torscript/ctl"
)

const leaveStreams = "__LeaveStreamsUnattached"

// Holder says which torscript a record belongs to.
type Holder struct {
	PID      int       `json:"pid"`                // the process the user started, running the script
	Guardian int       `json:"guardian,omitempty"` // its guardian
	Host     string    `json:"host"`
	Script   string    `json:"script"`
	Control  string    `json:"control,omitempty"`
	Since    time.Time `json:"since"`
}

func (h Holder) String() string {
	s := fmt.Sprintf("torscript pid %d", h.PID)
	if h.Guardian != 0 {
		s += fmt.Sprintf(" (guardian pid %d)", h.Guardian)
	}
	if h.Host != "" {
		s += " on " + h.Host
	}
	if h.Script != "" {
		s += " running " + h.Script
	}
	if !h.Since.IsZero() {
		s += " since " + h.Since.Local().Format(time.DateTime)
	}
	return s
}

// NewHolder describes this process.
func NewHolder(script, control string) Holder {
	host, _ := os.Hostname()
	return Holder{PID: os.Getpid(), Host: host, Script: script, Control: control, Since: time.Now().Truncate(time.Second)}
}

// Entry is one line of a journal.
type Entry struct {
	Op string `json:"op"` // holder, leave, on_error, map, unmap, conf, undone
	// holder
	Holder *Holder `json:"holder,omitempty"`
	// leave: Orig is the value before ("" when tor had none set); conf:
	// the values before, NoValue when the key had none.
	Orig    []string `json:"orig,omitempty"`
	NoValue bool     `json:"no_value,omitempty"`
	// conf
	Key string `json:"key,omitempty"`
	// map, unmap
	Addrs []string `json:"addrs,omitempty"`
	// on_error: the RELAY_END reason streams are closed with; 0 hands
	// them to tor.
	Close uint8 `json:"close,omitempty"`
}

// State is what a journal says is left to undo.
type State struct {
	Holder    *Holder
	Leave     bool               // __LeaveStreamsUnattached was set
	OrigLeave string             // its value before ("" when unset)
	Close     ctl.RelayEndReason // on_error: close with this reason; 0 hands to tor
	Maps      []string
	Confs     []Conf // in the order first set
	Undone    bool   // the run undid everything itself
}

// Conf is a config key a run set and its values before.
type Conf struct {
	Key     string
	Orig    []string
	NoValue bool
}

// Empty says whether there is nothing to undo.
func (s State) Empty() bool {
	return s.Undone || (!s.Leave && len(s.Maps) == 0 && len(s.Confs) == 0)
}

// Summary says what undoing s changes.
func (s State) Summary() string {
	var parts []string
	if s.Leave {
		v := s.OrigLeave
		if v == "" {
			v = "its default"
		}
		parts = append(parts, leaveStreams+" back to "+v)
	}
	if len(s.Maps) > 0 {
		parts = append(parts, fmt.Sprintf("%d address mappings removed", len(s.Maps)))
	}
	if len(s.Confs) > 0 {
		keys := make([]string, len(s.Confs))
		for i, c := range s.Confs {
			keys[i] = c.Key
		}
		parts = append(parts, "config restored: "+strings.Join(keys, ", "))
	}
	if len(parts) == 0 {
		return "nothing to undo"
	}
	return strings.Join(parts, "; ")
}

// parse reads a journal. A torn last line (a write cut by a kill) is
// ignored.
func parse(b []byte) State {
	var s State
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var e Entry
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		switch e.Op {
		case "holder":
			s.Holder = e.Holder
		case "leave":
			if !s.Leave { // the first value is the one before any run
				s.Leave = true
				if len(e.Orig) > 0 {
					s.OrigLeave = e.Orig[0]
				}
			}
		case "leave_restored":
			s.Leave = false
		case "on_error":
			s.Close = ctl.RelayEndReason(e.Close)
		case "map":
			for _, a := range e.Addrs {
				if !slices.Contains(s.Maps, a) {
					s.Maps = append(s.Maps, a)
				}
			}
		case "unmap":
			s.Maps = slices.DeleteFunc(s.Maps, func(a string) bool { return slices.Contains(e.Addrs, a) })
		case "conf":
			if !slices.ContainsFunc(s.Confs, func(c Conf) bool { return strings.EqualFold(c.Key, e.Key) }) {
				s.Confs = append(s.Confs, Conf{Key: e.Key, Orig: e.Orig, NoValue: e.NoValue})
			}
		case "undone":
			s.Undone = true
		}
	}
	return s
}

// Dir is where records are kept: $TORSCRIPT_STATE_DIR, else
// $XDG_STATE_HOME/torscript, else ~/.local/state/torscript.
func Dir() string {
	if d := os.Getenv("TORSCRIPT_STATE_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "torscript")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "torscript")
	}
	return filepath.Join(os.TempDir(), "torscript-state")
}

// Key names a tor: a hash of its DataDirectory (so that its TCP and Unix
// control ports, and a restarted tor, share one key), or of the control
// address when tor does not say.
func Key(ctx context.Context, c *ctl.Conn, control string) string {
	id := "control:" + control
	if conf, err := c.GetConf(ctx, "DataDirectory"); err == nil {
		if e, ok := conf.Lookup("DataDirectory"); ok && e.Value != "" {
			id = "datadir:" + e.Value
		}
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:8])
}

// Tor is the records of one tor.
type Tor struct {
	dir string
}

// OpenTor prepares the record directory of the tor named key.
func OpenTor(dir, key string) (*Tor, error) {
	d := filepath.Join(dir, "tors", key)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return &Tor{dir: d}, nil
}

// Dir is the tor's record directory.
func (t *Tor) Dir() string { return t.dir }

func tryLock(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return false, err
}

// Run is one run's journal.
type Run struct {
	mu   sync.Mutex
	f    *os.File
	path string // "" for a file handed down
}

// NewRun creates this run's journal, locked, with its holder line. It is
// made under a temporary name and renamed once locked, so that nobody
// takes a journal being made for a dead run's.
func (t *Tor) NewRun(h Holder) (*Run, error) {
	tmp, err := os.CreateTemp(t.dir, ".new-run-*")
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(tmp.Name(), os.O_RDWR|os.O_APPEND, 0o600)
	tmp.Close()
	if err != nil {
		os.Remove(tmp.Name())
		return nil, err
	}
	if ok, err := tryLock(f); !ok || err != nil {
		f.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("lock %s: %v", tmp.Name(), err)
	}
	r := &Run{f: f, path: tmp.Name()}
	if err := r.Record(Entry{Op: "holder", Holder: &h}); err != nil {
		r.Remove()
		return nil, err
	}
	for i := 0; ; i++ {
		path := filepath.Join(t.dir, fmt.Sprintf("run-%d-%d.jsonl", h.PID, i))
		if _, err := os.Lstat(path); err == nil {
			continue
		}
		if err := os.Rename(r.path, path); err != nil {
			r.Remove()
			return nil, err
		}
		r.path = path
		return r, nil
	}
}

// RunFromFile is a journal handed down (already locked), as the guardian
// gets it.
func RunFromFile(f *os.File) *Run {
	path, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if !filepath.IsAbs(path) || strings.HasSuffix(path, " (deleted)") {
		path = ""
	}
	return &Run{f: f, path: path}
}

// File is the journal's file, to hand to a child.
func (r *Run) File() *os.File { return r.f }

// Record appends e; it is on disk (in the page cache, which survives the
// process) when Record returns.
func (r *Run) Record(e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err = r.f.Write(append(b, '\n'))
	return err
}

// State reads the journal.
func (r *Run) State() (State, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := readAll(r.f)
	if err != nil {
		return State{}, err
	}
	return parse(b), nil
}

// readAll reads f from its start through its descriptor (a file handed
// down by a guardian has no usable name).
func readAll(f *os.File) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b := make([]byte, fi.Size())
	n, err := f.ReadAt(b, 0)
	if err != nil && n < len(b) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:n], nil
}

// Remove deletes the journal (unless it was handed down) and releases
// its lock.
func (r *Run) Remove() {
	if r.path != "" {
		os.Remove(r.path)
	}
	r.f.Close()
}

// Policy is the lock on a tor's stream policy.
type Policy struct {
	f *os.File
}

// OpenPolicy opens the tor's policy lock file (without locking it).
func (t *Tor) OpenPolicy() (*Policy, error) {
	f, err := os.OpenFile(filepath.Join(t.dir, "policy.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return &Policy{f: f}, nil
}

// PolicyFromFile is a policy lock file handed down by a guardian.
func PolicyFromFile(f *os.File) *Policy { return &Policy{f: f} }

// File is the lock's file, to hand to a child.
func (p *Policy) File() *os.File { return p.f }

// ErrHeld is returned by Acquire when a live run holds the policy.
type ErrHeld struct{ Holder Holder }

func (e *ErrHeld) Error() string {
	return "the stream policy of this tor is held by " + e.Holder.String()
}

// Acquire takes the policy lock for h, or returns *ErrHeld naming the
// live holder.
func (p *Policy) Acquire(h Holder) error {
	ok, err := tryLock(p.f)
	if err != nil {
		return err
	}
	if !ok {
		return &ErrHeld{Holder: p.holder()}
	}
	b, _ := json.Marshal(h)
	if err := p.f.Truncate(0); err != nil {
		return err
	}
	_, err = p.f.WriteAt(append(b, '\n'), 0)
	return err
}

func (p *Policy) holder() Holder {
	var h Holder
	b, _ := readAll(p.f)
	json.Unmarshal(bytes.TrimSpace(b), &h)
	return h
}

// Holder says who holds the policy, if anyone alive does. It takes and
// releases the lock to find out, so it is not for the holder itself.
func (p *Policy) Holder() (Holder, bool) {
	ok, err := tryLock(p.f)
	if err != nil || !ok {
		return p.holder(), true
	}
	syscall.Flock(int(p.f.Fd()), syscall.LOCK_UN)
	return Holder{}, false
}

// Release gives up the policy (and closes the file). The lock is
// released explicitly: a guardian shares the descriptor.
func (p *Policy) Release() {
	p.Unlock()
	p.f.Close()
}

// Unlock gives up the policy, for every process sharing the descriptor.
func (p *Policy) Unlock() {
	p.f.Truncate(0)
	syscall.Flock(int(p.f.Fd()), syscall.LOCK_UN)
}

// Close closes the file; the lock goes with the last descriptor.
func (p *Policy) Close() { p.f.Close() }

// Dead is a journal left by a run that is no longer alive, locked by us.
type Dead struct {
	Path  string
	State State
	f     *os.File
}

// Close releases its lock and keeps it.
func (d *Dead) Close() { d.f.Close() }

// Remove deletes it and releases its lock.
func (d *Dead) Remove() {
	os.Remove(d.Path)
	d.f.Close()
}

// Runs lists the journals of runs that are alive (their holders) and takes
// those of dead ones, whose changes the caller should undo and Remove.
func (t *Tor) Runs() (live []Holder, dead []*Dead, err error) {
	names, err := filepath.Glob(filepath.Join(t.dir, "run-*.jsonl"))
	if err != nil {
		return nil, nil, err
	}
	slices.Sort(names)
	for _, path := range names {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			continue // removed meanwhile
		}
		ok, err := tryLock(f)
		b, _ := os.ReadFile(path)
		st := parse(b)
		if err != nil || !ok {
			f.Close()
			if st.Holder != nil {
				live = append(live, *st.Holder)
			}
			continue
		}
		dead = append(dead, &Dead{Path: path, State: st, f: f})
	}
	return live, dead, nil
}

// Undo restores tor as a journal says: __LeaveStreamsUnattached first (so
// that tor attaches new streams itself from then on), then the streams
// still waiting for a controller go to tor, or are closed when the run's
// on_error said so; then the address mappings are removed and the config
// keys restored. It goes on after a failure and returns the first error.
func Undo(ctx context.Context, c *ctl.Conn, s State) (streams int, err error) {
	if s.Undone {
		return 0, nil
	}
	first := func(e error) {
		if err == nil && e != nil {
			err = e
		}
	}
	if s.Leave {
		if s.OrigLeave == "" {
			first(c.ResetConf(ctx, ctl.ConfEntry{Key: leaveStreams}))
		} else {
			first(c.SetConf(ctx, ctl.ConfEntry{Key: leaveStreams, Value: s.OrigLeave}))
		}
		if s.OrigLeave != "1" {
			n, e := HandBack(ctx, c, s.Close)
			streams += n
			first(e)
		}
	}
	if len(s.Maps) > 0 {
		undo := make([]ctl.AddrMap, len(s.Maps))
		for i, a := range s.Maps {
			undo[i] = ctl.AddrMap{From: a, To: a}
		}
		_, e := c.MapAddress(ctx, undo...)
		first(e)
	}
	for _, cf := range s.Confs {
		if cf.NoValue || len(cf.Orig) == 0 {
			first(c.ResetConf(ctx, ctl.ConfEntry{Key: cf.Key}))
			continue
		}
		entries := make([]ctl.ConfEntry, len(cf.Orig))
		for i, v := range cf.Orig {
			entries[i] = ctl.ConfEntry{Key: cf.Key, Value: v}
		}
		first(c.SetConf(ctx, entries...))
	}
	return streams, err
}

// HandBack gives every stream that waits for a controller to tor
// (ATTACHSTREAM n 0), or closes it with closeReason when that is set.
func HandBack(ctx context.Context, c *ctl.Conn, closeReason ctl.RelayEndReason) (int, error) {
	streams, err := c.Streams(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var first error
	for i := range streams {
		s := &streams[i]
		if !WaitingForController(s) {
			continue
		}
		var e error
		if closeReason != 0 {
			e = c.CloseStream(ctx, s.ID, closeReason)
		} else {
			e = c.AttachStream(ctx, s.ID, "0", 0)
		}
		switch code := ctl.ErrorCode(e); {
		case e == nil:
			n++
		case code == ctl.CodeUnrecognized || code == ctl.CodeUnmanaged:
			// gone, or attached meanwhile
		default:
			if first == nil {
				first = e
			}
		}
	}
	return n, first
}

// WaitingForController reports whether a stream from stream-status waits
// for a controller to attach it. Tor's own directory streams, which tor
// attaches itself, are left alone.
func WaitingForController(s *ctl.Stream) bool {
	if s.CircuitID != "0" && s.CircuitID != "" {
		return false
	}
	switch s.Purpose {
	case "DIR_FETCH", "DIR_UPLOAD", "DIRPORT_TEST":
		return s.Status == ctl.StreamControllerWait
	}
	switch s.Status {
	case ctl.StreamNew, ctl.StreamNewResolve, ctl.StreamControllerWait, ctl.StreamDetached:
		return true
	}
	return false
}

// Repair undoes the changes of every dead run recorded for this tor and
// removes their journals. It returns what it did, a line a run.
func (t *Tor) Repair(ctx context.Context, c *ctl.Conn) (done []string, err error) {
	_, dead, err := t.Runs()
	if err != nil {
		return nil, err
	}
	for _, d := range dead {
		who := "a torscript"
		if d.State.Holder != nil {
			who = d.State.Holder.String()
		}
		if d.State.Empty() {
			d.Remove()
			continue
		}
		n, e := Undo(ctx, c, d.State)
		if e != nil {
			d.f.Close() // keep the journal for another try
			if err == nil {
				err = fmt.Errorf("undoing what %s left: %w", who, e)
			}
			continue
		}
		line := fmt.Sprintf("%s: %s", who, d.State.Summary())
		if n > 0 {
			line += fmt.Sprintf("; %d waiting streams handed to tor", n)
		}
		done = append(done, line)
		d.Remove()
	}
	return done, err
}
