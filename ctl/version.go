package ctl

import (
	"fmt"
	"strconv"
	"strings"
)

// TorVersion is a tor version as tor's tor_version_parse reads it
// (src/core/or/versions.c): "Tor "? MAJOR.MINOR[.MICRO[(.|pre|rc)PATCH]][-TAG]
// [ (git-HEX)], such as "0.4.9.11" or "0.4.8.1-alpha".
type TorVersion struct {
	Major, Minor, Micro, Patch int
	// Status orders the old "pre" and "rc" forms before a release; every
	// current version is a release.
	Status int // 0 pre, 1 rc, 2 release
	Tag    string
	Git    string // the hex of "(git-HEX)", or ""
	text   string
}

const (
	versionPre = iota
	versionRC
	versionRelease
)

// ParseTorVersion reads s as tor does.
func ParseTorVersion(s string) (TorVersion, error) {
	v := TorVersion{Status: versionRelease, text: strings.TrimSpace(s)}
	cp := s
	if len(cp) >= 4 && strings.EqualFold(cp[:4], "Tor ") {
		cp = cp[4:]
	}
	bad := func() (TorVersion, error) { return TorVersion{}, fmt.Errorf("tor version %q: malformed", s) }
	number := func(out *int) bool {
		i := 0
		for i < len(cp) && cp[i] >= '0' && cp[i] <= '9' {
			i++
		}
		if i == 0 {
			return false
		}
		n, err := strconv.ParseInt(cp[:i], 10, 32)
		if err != nil {
			return false
		}
		*out, cp = int(n), cp[i:]
		return true
	}
	dot := func() bool {
		if !strings.HasPrefix(cp, ".") {
			return false
		}
		cp = cp[1:]
		return true
	}
	if !number(&v.Major) || !dot() || !number(&v.Minor) {
		return bad()
	}
	switch {
	case cp == "":
		return v, nil
	case strings.HasPrefix(cp, "-"):
		return v.tag(cp, s)
	}
	if !dot() || !number(&v.Micro) {
		return bad()
	}
	switch {
	case cp == "":
		return v, nil
	case strings.HasPrefix(cp, "."):
		cp = cp[1:]
	case strings.HasPrefix(cp, "-"):
		return v.tag(cp, s)
	case strings.HasPrefix(cp, "pre"):
		v.Status, cp = versionPre, cp[3:]
	case strings.HasPrefix(cp, "rc"):
		v.Status, cp = versionRC, cp[2:]
	default:
		return bad()
	}
	if !number(&v.Patch) {
		return bad()
	}
	return v.tag(cp, s)
}

// tag reads what follows the numbers: [-|.]TAG, then " (git-HEX)".
func (v TorVersion) tag(cp, s string) (TorVersion, error) {
	if strings.HasPrefix(cp, "-") || strings.HasPrefix(cp, ".") {
		cp = cp[1:]
	}
	end := strings.IndexAny(cp, " \t\r\n")
	if end < 0 {
		end = len(cp)
	}
	v.Tag, cp = cp[:end], strings.TrimLeft(cp[end:], " \t\r\n")
	if rest, ok := strings.CutPrefix(cp, "(git-"); ok {
		hex, _, ok := strings.Cut(rest, ")")
		if !ok || len(hex) > 40 || !isHex(hex) {
			return TorVersion{}, fmt.Errorf("tor version %q: malformed git tag", s)
		}
		v.Git = strings.ToLower(hex)
	}
	return v, nil
}

// String is the version as it was read.
func (v TorVersion) String() string {
	if v.text != "" {
		return v.text
	}
	return fmt.Sprintf("%d.%d.%d.%d", v.Major, v.Minor, v.Micro, v.Patch)
}

// Compare orders versions as tor_version_compare does: major, minor,
// micro, status, patch level, then the tag as text (so "0.4.8.1-alpha"
// sorts after "0.4.8.1", as in tor), then the git tag.
func (v TorVersion) Compare(w TorVersion) int {
	for _, d := range [][2]int{{v.Major, w.Major}, {v.Minor, w.Minor}, {v.Micro, w.Micro}, {v.Status, w.Status}, {v.Patch, w.Patch}} {
		if d[0] != d[1] {
			if d[0] < d[1] {
				return -1
			}
			return 1
		}
	}
	if c := strings.Compare(v.Tag, w.Tag); c != 0 {
		return c
	}
	return strings.Compare(v.Git, w.Git)
}
