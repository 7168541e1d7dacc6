package sim

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/torscript/torscript/runtime/simtor"
)

// decisionKeywords are the commands a replay compares: what a policy
// decides, and the circuits it asks for.
var decisionKeywords = []string{"ATTACHSTREAM", "REDIRECTSTREAM", "CLOSESTREAM", "EXTENDCIRCUIT"}

func isDecision(line string) bool {
	kw, _, _ := strings.Cut(line, " ")
	for _, k := range decisionKeywords {
		if strings.EqualFold(kw, k) {
			return true
		}
	}
	return false
}

// traceCmd is a command of a transcript with tor's reply to it.
type traceCmd struct {
	line  string
	reply string // raw, CRLF line ends
	at    int    // its line in the transcript
}

// parseTrace reads a transcript written by --trace ("C: " and "S: "
// lines) into its commands, each with its reply, and its events (raw).
func parseTrace(path string) (cmds []*traceCmd, events []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var unanswered []*traceCmd
	var reply strings.Builder
	inData := false  // in the data of a reply
	cmdData := false // in the data of a multi-line command
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "C: "):
			text := line[3:]
			if cmdData {
				cmdData = text != "."
				continue
			}
			cmdData = strings.HasPrefix(text, "+")
			c := &traceCmd{line: strings.TrimPrefix(text, "+"), at: n}
			cmds = append(cmds, c)
			unanswered = append(unanswered, c)
		case strings.HasPrefix(line, "S: "):
			text := line[3:]
			reply.WriteString(text + "\r\n")
			if inData {
				inData = text != "."
				continue
			}
			if len(text) < 4 {
				return nil, nil, fmt.Errorf("%s:%d: not a reply line (want a three-digit status); is it a transcript written by --trace?", path, n)
			}
			switch text[3] {
			case '+':
				inData = true
				continue
			case '-':
				continue
			}
			raw := reply.String()
			reply.Reset()
			if strings.HasPrefix(text, "6") {
				events = append(events, raw)
				continue
			}
			if len(unanswered) == 0 {
				return nil, nil, fmt.Errorf("%s:%d: a reply with no command", path, n)
			}
			unanswered[0].reply = raw
			unanswered = unanswered[1:]
		default:
			// The line is not repeated: a file given by mistake may be a
			// cookie or a key.
			return nil, nil, fmt.Errorf("%s:%d: not a transcript line (want \"C: \" or \"S: \"); is it a transcript written by --trace?", path, n)
		}
	}
	return cmds, events, sc.Err()
}

// traceDecisions returns a transcript's decision commands and, for each
// keyword, the replies tor gave them in order.
func traceDecisions(cmds []*traceCmd) (want []*traceCmd, replies map[string][]string) {
	replies = map[string][]string{}
	for _, c := range cmds {
		if isDecision(c.line) {
			want = append(want, c)
			kw, _, _ := strings.Cut(c.line, " ")
			replies[strings.ToUpper(kw)] = append(replies[strings.ToUpper(kw)], c.reply)
		}
	}
	return want, replies
}

// sameDecision compares a command the script sent with the transcript's.
// An EXTENDCIRCUIT is the same when it extends the same circuit (0: a new
// one) for the same purpose: the relays of a path are drawn at random
// (circuits.pool), so they differ from run to run; the circuit id tor
// answered comes from the transcript either way.
func sameDecision(got, want string) bool {
	if got == want {
		return true
	}
	g, w := strings.Fields(got), strings.Fields(want)
	if len(g) < 2 || len(w) < 2 || !strings.EqualFold(g[0], "EXTENDCIRCUIT") || !strings.EqualFold(w[0], "EXTENDCIRCUIT") {
		return false
	}
	purpose := func(f []string) string {
		for _, x := range f[2:] {
			if k, v, ok := strings.Cut(x, "="); ok && strings.EqualFold(k, "purpose") {
				return strings.ToLower(v)
			}
		}
		return ""
	}
	return g[1] == w[1] && purpose(g) == purpose(w)
}

// traceSkipped are the GETINFO and GETCONF keys a replay does not answer
// from the transcript: where the simulated tor's own answer is the right
// one (its SocksPort, the state the script changes).
var traceSkipped = []string{"net/listeners/socks", "process/pid", "circuit-status", "stream-status",
	"__leavestreamsunattached", "datadirectory"}

// useTrace makes the simulated tor answer as the traced one did, before
// the script starts (sim.run(..., trace=)): each GETINFO and GETCONF the
// transcript has (the consensus, descriptors, entry guards, version,
// EnforceDistinctSubnets, ExcludeNodes) with the first reply recorded for
// it, and the decision commands with the recorded
// replies in order, so that circuit ids agree with the transcript's
// events. sim.replay() then feeds the events and compares.
func (sm *simModule) useTrace(path string) error {
	cmds, events, err := parseTrace(path)
	if err != nil {
		return err
	}
	sm.traceCmds, sm.traceEvs = cmds, events
	done := map[string]bool{}
	for _, c := range cmds {
		kw, rest, _ := strings.Cut(c.line, " ")
		if !strings.EqualFold(kw, "GETINFO") && !strings.EqualFold(kw, "GETCONF") || done[c.line] || !strings.HasPrefix(c.reply, "250") {
			continue
		}
		done[c.line] = true
		skip := false
		for _, k := range strings.Fields(rest) {
			skip = skip || slices.Contains(traceSkipped, strings.ToLower(k))
		}
		if !skip {
			sm.tor.ReplyLine(c.line, strings.TrimRight(strings.ReplaceAll(c.reply, "\r\n", "\n"), "\n"))
		}
	}
	_, replies := traceDecisions(cmds)
	sm.trace = path
	sm.traceFrom = sm.tor.StartReplay(replies)
	return nil
}

// replay feeds a transcript's events to the script, one at a time, answers
// the script's decision commands with the replies the transcript recorded
// (so circuit ids agree with its events), and checks that the script sent
// the transcript's decision commands, in order. It returns how many it
// compared.
func replay(sm *simModule, path string) (int, error) {
	var from int
	cmds, events := sm.traceCmds, sm.traceEvs
	if path == sm.trace {
		// sim.run(..., trace=) answered from the transcript from the
		// start: what the script sent at its top level counts.
		from = sm.traceFrom
	} else {
		var err error
		if cmds, events, err = parseTrace(path); err != nil {
			return 0, err
		}
		_, replies := traceDecisions(cmds)
		from = sm.tor.StartReplay(replies)
	}
	want, _ := traceDecisions(cmds)
	defer sm.tor.EndReplay()
	sm.settle()
	for _, ev := range events {
		sm.tor.SendEvent(ev)
		sm.settle()
	}
	var got []simtor.Command
	for _, c := range sm.tor.Since(from) {
		if isDecision(c.Line) {
			got = append(got, c)
		}
	}
	for i, w := range want {
		if i >= len(got) {
			return i, fmt.Errorf("the script sent %d decision commands; the transcript has %d, next %q (line %d)", len(got), len(want), w.line, w.at)
		}
		if !sameDecision(got[i].Line, w.line) {
			return i, fmt.Errorf("decision %d: the script sent %q, the transcript has %q (line %d)", i+1, got[i].Line, w.line, w.at)
		}
		sm.tor.Use(got[i])
	}
	if len(got) > len(want) {
		return len(want), fmt.Errorf("the script sent %d decision commands, the transcript %d; the first extra: %q", len(got), len(want), got[len(want)].Line)
	}
	return len(want), nil
}
