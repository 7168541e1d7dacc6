package builtins

import (
	"context"
	"fmt"
	"time"

	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Version is a tor.version: tor's own (tor.version, asked of tor when
// first used on a connection) or one parse_version read. Versions compare
// with each other by tor's rules (ctl.TorVersion.Compare). Starlark in Go
// compares values of different types only for equality, so a version
// does not compare with a string: tor.version.at_least("0.4.8") or
// tor.version >= tor.parse_version("0.4.8").
type Version struct {
	h     Host // for tor's own; nil for a parsed one
	fixed ctl.TorVersion

	conn   *ctl.Conn // the connection cached was asked on
	cached ctl.TorVersion
}

// get is the version: parsed, or tor's, asked once a connection.
func (v *Version) get() (ctl.TorVersion, error) {
	if v.h == nil {
		return v.fixed, nil
	}
	c, err := v.h.Conn()
	if err != nil {
		return ctl.TorVersion{}, fmt.Errorf("tor.version: %w", err)
	}
	if c == v.conn {
		return v.cached, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := c.GetInfoOne(ctx, "version")
	if err != nil {
		return ctl.TorVersion{}, fmt.Errorf("tor.version: %w", err)
	}
	tv, err := ctl.ParseTorVersion(s)
	if err != nil {
		return ctl.TorVersion{}, fmt.Errorf("tor.version: %w", err)
	}
	v.conn, v.cached = c, tv
	return tv, nil
}

func (v *Version) String() string {
	tv, err := v.get()
	if err != nil {
		return fmt.Sprintf("tor.version(unknown: %v)", err)
	}
	return tv.String()
}
func (v *Version) Type() string          { return "tor.version" }
func (v *Version) Freeze()               {}
func (v *Version) Truth() starlark.Bool  { return true }
func (v *Version) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: tor.version") }

// CompareSameType orders two versions by tor's rules.
func (v *Version) CompareSameType(op syntax.Token, y starlark.Value, _ int) (bool, error) {
	a, err := v.get()
	if err != nil {
		return false, err
	}
	b, err := y.(*Version).get()
	if err != nil {
		return false, err
	}
	c := a.Compare(b)
	switch op {
	case syntax.EQL:
		return c == 0, nil
	case syntax.NEQ:
		return c != 0, nil
	case syntax.LT:
		return c < 0, nil
	case syntax.LE:
		return c <= 0, nil
	case syntax.GT:
		return c > 0, nil
	case syntax.GE:
		return c >= 0, nil
	}
	return false, fmt.Errorf("%s not supported for tor.version", op)
}

var versionAttrs = []string{"at_least", "major", "micro", "minor", "patch", "tag"}

func (v *Version) AttrNames() []string { return versionAttrs }

func (v *Version) Attr(name string) (starlark.Value, error) {
	if name == "at_least" {
		return starlark.NewBuiltin("at_least", v.atLeast), nil
	}
	tv, err := v.get()
	if err != nil {
		return nil, err
	}
	switch name {
	case "major":
		return starlark.MakeInt(tv.Major), nil
	case "minor":
		return starlark.MakeInt(tv.Minor), nil
	case "micro":
		return starlark.MakeInt(tv.Micro), nil
	case "patch":
		return starlark.MakeInt(tv.Patch), nil
	case "tag":
		return starlark.String(tv.Tag), nil
	}
	return nil, nil
}

// atLeast is v.at_least(version): v >= version by tor's rules; version is
// a string or a tor.version.
func (v *Version) atLeast(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var w starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "version", &w); err != nil {
		return nil, err
	}
	other, err := asVersion(w)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	ok, err := v.CompareSameType(syntax.GE, other, 1)
	if err != nil {
		return nil, err
	}
	return starlark.Bool(ok), nil
}

func asVersion(w starlark.Value) (*Version, error) {
	switch w := w.(type) {
	case *Version:
		return w, nil
	case starlark.String:
		tv, err := ctl.ParseTorVersion(string(w))
		if err != nil {
			return nil, err
		}
		return &Version{fixed: tv}, nil
	}
	return nil, fmt.Errorf("got %s, want a version string or a tor.version", w.Type())
}

const docVersion = `version -> tor.version
Tor's version (GETINFO version, asked when first used on a connection),
compared by tor's own rules: tor.version.at_least("0.4.8") or
tor.version >= tor.parse_version("0.4.8.1-alpha"); .major, .minor, .micro,
.patch, .tag; str(tor.version) is tor's text. (A version does not compare
with a plain string: Starlark compares values of two types only for
equality.)`

const docParseVersion = `parse_version(s) -> tor.version
A version read by tor's rules ("0.4.8", "0.4.8.1-alpha", "Tor 0.4.9.11"),
to compare with tor.version.`

func (t *torMod) parseVersion(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var s string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "s", &s); err != nil {
		return nil, err
	}
	tv, err := ctl.ParseTorVersion(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return &Version{fixed: tv}, nil
}
