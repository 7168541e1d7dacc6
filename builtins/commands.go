package builtins

import (
	"fmt"

	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

// failed prefixes err with the builtin's name. It wraps err, so that
// errors.As still finds a *ctl.Error in it.
func failed(b *starlark.Builtin, err error) error {
	return fmt.Errorf("%s: %w", b.Name(), err)
}

// noKwargs refuses keyword arguments to a builtin that takes *args only.
func noKwargs(b *starlark.Builtin, kwargs []starlark.Tuple) error {
	if len(kwargs) > 0 {
		return fmt.Errorf("%s: unexpected keyword argument %s", b.Name(), kwargs[0][0])
	}
	return nil
}

// stringArgs reads *args that must all be strings; what names one in an
// error ("key 2: got int, want string").
func stringArgs(b *starlark.Builtin, args starlark.Tuple, what string) ([]string, error) {
	ss := make([]string, len(args))
	for i, a := range args {
		s, ok := starlark.AsString(a)
		if !ok {
			return nil, fmt.Errorf("%s: %s %d: got %s, want string", b.Name(), what, i+1, a.Type())
		}
		ss[i] = s
	}
	return ss, nil
}

// stringList unpacks a list or tuple of strings. None (with "name??") and
// an absent argument leave it empty.
type stringList []string

func (l *stringList) Unpack(v starlark.Value) error {
	if s, ok := v.(starlark.String); ok {
		return fmt.Errorf("got string %s, want a list of strings", s)
	}
	it, ok := v.(starlark.Iterable)
	if !ok {
		return fmt.Errorf("got %s, want a list of strings", v.Type())
	}
	return forEach(it, func(i int, x starlark.Value) error {
		s, ok := starlark.AsString(x)
		if !ok {
			return fmt.Errorf("element %d: got %s, want string", i, x.Type())
		}
		*l = append(*l, s)
		return nil
	})
}

// relayList unpacks a list or tuple of relays (see relaySpec).
type relayList []string

func (l *relayList) Unpack(v starlark.Value) error {
	if _, ok := v.(starlark.String); ok {
		return fmt.Errorf("got string, want a list of relays")
	}
	it, ok := v.(starlark.Iterable)
	if !ok {
		return fmt.Errorf("got %s, want a list of relays", v.Type())
	}
	return forEach(it, func(i int, x starlark.Value) error {
		s, err := relaySpec(x)
		if err != nil {
			return fmt.Errorf("element %d: %w", i, err)
		}
		*l = append(*l, s)
		return nil
	})
}

func forEach(it starlark.Iterable, f func(i int, x starlark.Value) error) error {
	iter := it.Iterate()
	defer iter.Done()
	var x starlark.Value
	for i := 0; iter.Next(&x); i++ {
		if err := f(i, x); err != nil {
			return err
		}
	}
	return nil
}

// relaySpec reads a relay as EXTENDCIRCUIT, HSFETCH and HSPOST name it: a
// fingerprint or nickname as a string, a tor.hop ("$FP~nick"), a
// tor.router ("$FP"), or a value with a .relay hop (tor.entry_guard,
// tor.orconn).
func relaySpec(v starlark.Value) (string, error) {
	switch v := v.(type) {
	case starlark.String:
		return string(v), nil
	case Hop:
		return v.H.String(), nil
	case *Router:
		return "$" + v.R.Fingerprint, nil
	case *Struct:
		if fp, _ := v.Attr("fingerprint"); fp != nil {
			if s, ok := fp.(starlark.String); ok && s != "" {
				return "$" + string(s), nil
			}
		}
		if r, _ := v.Attr("relay"); r != nil {
			if h, ok := r.(Hop); ok && h.H != (ctl.PathHop{}) {
				return h.String(), nil
			}
		}
	}
	return "", fmt.Errorf("got %s, want a relay: a fingerprint or nickname, a tor.hop or a tor.router", v.Type())
}

// completion is a positive reply that may say more than OK, as a tuple
// (code, message).
func completion(c ctl.Completion) starlark.Value {
	return starlark.Tuple{starlark.MakeInt(c.Code), starlark.String(c.Msg)}
}

// list makes a Starlark list of n values.
func list[T any](xs []T, f func(*T) starlark.Value) *starlark.List {
	l := make([]starlark.Value, len(xs))
	for i := range xs {
		l[i] = f(&xs[i])
	}
	return starlark.NewList(l)
}
