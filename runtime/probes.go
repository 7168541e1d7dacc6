package runtime

// Probes (tor.fetch, tor.connect): streams the script sends through tor's
// SocksPort over a circuit it chose. One travels like this:
//
//  1. host.Probe checks the grant "net" (nothing is sent without it) and
//     queues the probe; a task on the loop starts it (startProbes): it
//     reads tor's SocksPort once, makes sure a policy engine runs (the
//     script's, or one of the runtime's own that gives every other stream
//     to tor: __LeaveStreamsUnattached must be 1 for the probe's stream to
//     wait for us), and hands the network part to a goroutine.
//  2. The goroutine opens the stream with SOCKS credentials no one else
//     uses (ctl.DialSOCKS); tor announces it in a STREAM NEW event with
//     SOCKS_USERNAME, which dispatch gives to probes.onStream before the
//     policy engine: from then on the stream is the probe's.
//  3. The policy engine asks probeDecision before the script's policy:
//     the probe's stream is attached to its circuit (waiting for it to be
//     built, as any decision does), and closed with tor's reason if the
//     circuit cannot carry it (DETACHED).
//  4. The goroutine posts its result to the loop; finish adds what tor's
//     events said (the circuit, the exit, the end reason) and calls
//     on_done, supervised like a handler.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/torscript/torscript/builtins"
	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

// maxProbes is how many probes run at once; more wait their turn.
const maxProbes = 32

// probeGrace is how long a failed probe's result waits for tor's event
// saying why its stream ended.
const probeGrace = time.Second

type probeSet struct {
	queue    []*probe
	byUser   map[string]*probe // running, by SOCKS username
	byStream map[string]*probe // running, by tor's stream id
	seq      int
	prefix   string // of the usernames: "torscript-PID-RANDOM-"
	socks    string // tor's SocksPort, read once
}

type probe struct {
	p       *builtins.Probe
	user    string
	res     builtins.ProbeResult
	h       handler
	cancel  context.CancelFunc
	netDone bool // the goroutine's result came
	ended   bool // tor said the stream ended (or there was none)
	done    bool // on_done called, or the script ended
}

// Probe is builtins.Host's.
func (h *host) Probe(p *builtins.Probe) error {
	r := h.rt()
	name := "tor." + p.Kind
	if !r.grants.has("net") {
		return fmt.Errorf("refused, nothing sent: %s reaches the network through tor and this script was not allowed to (run it with --allow net)", name)
	}
	if r.opts.DryRun {
		return fmt.Errorf("refused, nothing sent: a dry run attaches no stream, and %s's must ride the circuit asked for", name)
	}
	if _, err := h.Conn(); err != nil {
		return err
	}
	ps := &r.probes
	if ps.byUser == nil {
		ps.byUser, ps.byStream = map[string]*probe{}, map[string]*probe{}
		var b [6]byte
		rand.Read(b[:])
		ps.prefix = "torscript-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:]) + "-"
	}
	ps.seq++
	pr := &probe{p: p, user: ps.prefix + strconv.Itoa(ps.seq)}
	pr.h.fn = p.OnDone
	ps.queue = append(ps.queue, pr)
	r.tasks.post(r.startProbes)
	return nil
}

// probesPending says whether a probe waits or runs.
func (r *Runtime) probesPending() bool {
	return len(r.probes.queue) > 0 || len(r.probes.byUser) > 0
}

// startProbes starts the queued probes that fit.
func (r *Runtime) startProbes() {
	ps := &r.probes
	for len(ps.queue) > 0 && len(ps.byUser) < maxProbes && !r.exiting && r.fatal == nil {
		pr := ps.queue[0]
		ps.queue = ps.queue[1:]
		if err := r.probeReady(); err != nil {
			pr.ended, pr.netDone = true, true
			pr.res = builtins.ProbeResult{Err: err.Error(), Connect: -1, TTFB: -1}
			r.deliverProbe(pr)
			continue
		}
		ps.byUser[pr.user] = pr
		ctx, cancel := context.WithTimeout(r.ctx, pr.p.Timeout)
		pr.cancel = cancel
		socks := ps.socks
		go func() {
			res := runProbe(ctx, pr.p, socks, pr.user)
			cancel()
			r.tasks.post(func() { r.probeNetDone(pr, res) })
		}()
	}
}

// probeReady reads tor's SocksPort and makes sure a policy engine takes
// the probe's stream.
func (r *Runtime) probeReady() error {
	if r.conn == nil {
		return builtins.ErrNotConnected
	}
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	ps := &r.probes
	if ps.socks == "" {
		ls, err := r.conn.SocksListeners(ctx)
		if err != nil {
			return fmt.Errorf("reading tor's SocksPort: %w", err)
		}
		if len(ls) == 0 {
			return errors.New("tor has no SocksPort (net/listeners/socks is empty)")
		}
		ps.socks = ls[0]
	}
	if r.policy == nil {
		// The runtime's own policy: every stream but the probes' goes to
		// tor, as if there were none. It lasts until the script ends.
		if err := r.startPolicy(&builtins.Policy{OnError: builtins.Attach{Circuit: "0"}, Timeout: 30 * time.Second}); err != nil {
			return fmt.Errorf("taking the probe's stream (%s=1): %w", leaveStreams, err)
		}
		r.policy.own = true
		r.log.Info("probes: the runtime attaches streams from now on; streams other than the probes' go to tor")
	}
	if r.policy.dryRun {
		return errors.New("a dry run attaches no stream")
	}
	return nil
}

// onStream follows the STREAM events of the probes' streams; it runs
// before the policy engine's.
func (ps *probeSet) onStream(r *Runtime, ev *ctl.StreamEvent) {
	s := &ev.Stream
	pr := ps.byStream[s.ID]
	if pr == nil {
		if s.SocksUsername == "" || (s.Status != ctl.StreamNew && s.Status != ctl.StreamNewResolve) {
			return
		}
		if pr = ps.byUser[s.SocksUsername]; pr == nil || pr.res.Stream != "" {
			return
		}
		pr.res.Stream = s.ID
		ps.byStream[s.ID] = pr
	}
	switch s.Status {
	case ctl.StreamSentConnect, ctl.StreamSucceeded:
		if s.CircuitID != "" && s.CircuitID != "0" {
			pr.res.Circuit = s.CircuitID
			if c := r.state.circs.Get(s.CircuitID); c != nil && len(c.Path) > 0 {
				last := c.Path[len(c.Path)-1]
				pr.res.ExitFP, pr.res.ExitNick = strings.TrimPrefix(last.Fingerprint, "$"), last.Nickname
			}
			if pr.netDone && pr.res.Err == "" {
				r.deliverProbe(pr) // its success waited for this
			}
		}
	case ctl.StreamDetached:
		pr.res.Reason = streamReason(s)
	case ctl.StreamFailed, ctl.StreamClosed:
		if pr.res.Reason == "" && s.Reason != "DONE" {
			pr.res.Reason = streamReason(s)
		}
		pr.ended = true
		delete(ps.byStream, s.ID)
		if pr.netDone {
			r.deliverProbe(pr)
		}
	}
}

// streamReason is tor's reason for a stream's end: the exit's when it
// gave one (REMOTE_REASON), else tor's own.
func streamReason(s *ctl.Stream) string {
	if s.RemoteReason != "" {
		return s.RemoteReason
	}
	return s.Reason
}

// probeDecision is the decision about a probe's stream, or false when
// the stream is not a probe's.
func (r *Runtime) probeDecision(s *ctl.Stream, failed []string) (builtins.Decision, bool) {
	pr := r.probes.byStream[s.ID]
	if pr == nil {
		return nil, false
	}
	if len(failed) > 0 {
		// Its circuit could not carry it: the probe fails, with tor's
		// reason, which the SOCKS reply carries to the client too.
		reason := ctl.RelayEndMisc
		if pr.res.Reason != "" {
			if n, err := ctl.ParseRelayEndReason(pr.res.Reason); err == nil {
				reason = n
			}
		}
		return builtins.Close{Reason: reason}, true
	}
	return builtins.Attach{Circuit: pr.p.Circuit}, true
}

// probeNetDone takes the goroutine's result. It is delivered now when the
// events have said what they have to say: for a success, the circuit that
// carried the stream; for a failure, why tor ended the stream, or that
// there was none. Else once they do (the goroutine's result can come
// before tor's events are handled, which are read on another connection),
// at most probeGrace later.
func (r *Runtime) probeNetDone(pr *probe, res builtins.ProbeResult) {
	if pr.done {
		return
	}
	// What the events said stays.
	res.Stream, res.Circuit, res.ExitFP, res.ExitNick, res.Reason = pr.res.Stream, pr.res.Circuit, pr.res.ExitFP, pr.res.ExitNick, pr.res.Reason
	pr.res, pr.netDone = res, true
	if pr.res.Stream == "" && res.Err != "" {
		pr.ended = true // failed before tor had a stream for it
	}
	if pr.ended || res.Err == "" && pr.res.Circuit != "" {
		r.deliverProbe(pr)
		return
	}
	time.AfterFunc(probeGrace, func() { r.tasks.post(func() { r.deliverProbe(pr) }) })
}

// deliverProbe calls the probe's on_done, once.
func (r *Runtime) deliverProbe(pr *probe) {
	if pr.done {
		return
	}
	pr.done = true
	ps := &r.probes
	delete(ps.byUser, pr.user)
	if ps.byStream[pr.res.Stream] == pr {
		delete(ps.byStream, pr.res.Stream)
	}
	if pr.cancel != nil {
		pr.cancel()
	}
	if len(ps.queue) > 0 {
		r.tasks.post(r.startProbes) // after this one's on_done
	}
	if r.exiting || r.fatal != nil {
		return
	}
	if pr.res.Err == "" {
		pr.res.Reason = "" // DONE, or the exit's END after the answer
	}
	_, err := r.call(pr.h.fn, starlark.Tuple{pr.res.Value(pr.p)})
	r.handlerResult(&pr.h, "tor."+pr.p.Kind+" on_done", err)
}

// stopProbes ends the probes when the script ends: their streams close.
func (r *Runtime) stopProbes() {
	ps := &r.probes
	for _, pr := range ps.byUser {
		pr.done = true
		if pr.cancel != nil {
			pr.cancel()
		}
	}
	clear(ps.byUser)
	clear(ps.byStream)
	ps.queue = nil
}

// runProbe is a probe's network part, on a goroutine of its own.
func runProbe(ctx context.Context, p *builtins.Probe, socks, user string) builtins.ProbeResult {
	start := time.Now()
	res := builtins.ProbeResult{Connect: -1, TTFB: -1}
	dial := func(ctx context.Context) (net.Conn, error) {
		c, err := ctl.DialSOCKS(ctx, socks, user, "x", p.Host, p.Port)
		if err == nil {
			res.Connect = time.Since(start)
		}
		return c, err
	}
	var err error
	if p.Kind == "fetch" {
		err = fetch(ctx, p, dial, &res, start)
	} else {
		err = exchange(ctx, p, dial, &res)
	}
	res.Elapsed = time.Since(start)
	if err != nil {
		res.Err = probeError(ctx, err)
	}
	return res
}

// probeError says what went wrong in words a script can print.
func probeError(ctx context.Context, err error) string {
	var se *ctl.SOCKSError
	switch {
	case errors.As(err, &se):
		return "tor refused the stream: " + se.Error()
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	}
	return err.Error()
}

func fetch(ctx context.Context, p *builtins.Probe, dial func(context.Context) (net.Conn, error), res *builtins.ProbeResult, start time.Time) error {
	tr := &http.Transport{
		DialContext:            func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 1 << 20,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		// A redirect would be another stream; the script sees it and
		// may fetch Location itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { res.TTFB = time.Since(start) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, p.URL.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "torscript")
	for _, kv := range p.Header {
		req.Header.Set(kv[0], kv[1])
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			err = ue.Unwrap() // the url.Error's cause: the SOCKS refusal
		}
		return err
	}
	defer resp.Body.Close()
	res.Status = resp.StatusCode
	for k, vs := range resp.Header {
		for _, v := range vs {
			res.Header = append(res.Header, [2]string{k, v})
		}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(p.MaxBody)))
	res.Body = body
	n, err2 := io.Copy(io.Discard, resp.Body)
	res.Size = int64(len(body)) + n
	if err == nil {
		err = err2
	}
	if err != nil {
		return fmt.Errorf("reading the body: %w", err)
	}
	return nil
}

func exchange(ctx context.Context, p *builtins.Probe, dial func(context.Context) (net.Conn, error), res *builtins.ProbeResult) error {
	c, err := dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if len(p.Send) > 0 {
		n, err := c.Write(p.Send)
		res.Sent = n
		if err != nil {
			return fmt.Errorf("writing: %w", err)
		}
	}
	buf := make([]byte, 0, min(p.MaxBody, 64<<10))
	for len(buf) < p.MaxBody {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):min(cap(buf), p.MaxBody)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if err == io.EOF || ctx.Err() != nil {
				break // the far end closed, or the time is up: what came is the answer
			}
			res.Body = buf
			return fmt.Errorf("reading: %w", err)
		}
	}
	res.Body = buf
	return nil
}
