package ctl

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// Microdescriptor is what a relay's microdescriptor says (dir-spec 3.3):
// what a client that fetches microdescriptors (tor's default) knows of a
// relay beyond its consensus entry. Keys are left out.
type Microdescriptor struct {
	// Digest is the base64 SHA-256 of the text, without padding: what
	// the "m" line of the microdescriptor consensus names.
	Digest     string
	Family     []string      // "family": "$FP" entries or nicknames
	FamilyIDs  []string      // "family-ids" (happy families, tor 0.4.9)
	Policy     PolicySummary // "p": the IPv4 summary; none when it rejects all
	IPv6Policy PolicySummary // "p6"
	Ed25519    string        // "id ed25519"
	Unknown    []string
}

// ParseMicrodescriptors reads microdescriptors as GETINFO md/all gives
// them: one after another, each starting with its "onion-key" line (or
// its "ntor-onion-key" line when it has no onion-key, as later tors may
// write them), and computes each one's digest from its text.
func ParseMicrodescriptors(text string) ([]Microdescriptor, error) {
	var out []Microdescriptor
	var firstErr error
	var body strings.Builder
	var cur *Microdescriptor
	hasNtor, inObject := false, false
	finish := func() {
		if cur == nil {
			return
		}
		sum := sha256.Sum256([]byte(body.String()))
		cur.Digest = base64.RawStdEncoding.EncodeToString(sum[:])
		out = append(out, *cur)
		cur, hasNtor = nil, false
		body.Reset()
	}
	for _, line := range strings.SplitAfter(text, "\n") {
		if line == "" {
			continue
		}
		if !strings.HasSuffix(line, "\n") {
			line += "\n" // the last line, as tor stores it
		}
		content := strings.TrimRight(line, "\r\n")
		kw, rest, _ := strings.Cut(content, " ")
		if !inObject && (kw == "onion-key" || kw == "ntor-onion-key" && (cur == nil || hasNtor)) {
			finish()
			cur = &Microdescriptor{}
		}
		if cur == nil {
			if content != "" && firstErr == nil {
				firstErr = fmt.Errorf("microdescriptors: %q before the first onion-key", content)
			}
			continue
		}
		body.WriteString(line)
		switch {
		case inObject:
			if strings.HasPrefix(content, "-----END ") {
				inObject = false
			}
			continue
		case strings.HasPrefix(content, "-----BEGIN "):
			inObject = true
			continue
		}
		if err := cur.parseLine(kw, rest, content); err != nil && firstErr == nil {
			firstErr = err
		}
		if kw == "ntor-onion-key" {
			hasNtor = true
		}
	}
	finish()
	return out, firstErr
}

func (m *Microdescriptor) parseLine(kw, rest, line string) error {
	switch kw {
	case "onion-key", "ntor-onion-key", "a":
	case "family":
		m.Family = strings.Fields(rest)
	case "family-ids":
		m.FamilyIDs = strings.Fields(rest)
	case "p", "p6":
		p, err := ParsePolicySummary(rest)
		if err != nil {
			return fmt.Errorf("microdescriptor line %q: %w", line, err)
		}
		if kw == "p" {
			m.Policy = p
		} else {
			m.IPv6Policy = p
		}
	case "id":
		if typ, key, _ := strings.Cut(rest, " "); typ == "ed25519" {
			m.Ed25519 = key
		}
	default:
		m.Unknown = append(m.Unknown, line)
	}
	return nil
}
