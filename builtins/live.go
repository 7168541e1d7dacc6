package builtins

import (
	"fmt"

	"go.starlark.net/starlark"
)

// Live is tor's live circuits or streams (T is ctl.Circuit or ctl.Stream)
// as the host keeps them from events, in creation order. Adding, changing
// and removing one cost O(1); View costs O(1) too and iterating it O(k)
// for the k items read. The Starlark value of an item is built on its
// first read after a change and then reused. An item's state may be given
// unparsed (SetSource), to be parsed on its first read.
//
// A removed item leaves a hole in the order; the order is compacted into
// a new array once holes make up half of it, so that a view taken earlier
// keeps reading the array it was given. A Live belongs to one goroutine
// (the runtime's loop).
type Live[T any] struct {
	byID  IDMap[*liveItem[T]]
	order []*liveItem[T]
	holes int
	value func(*T) starlark.Value
}

// liveItem is one circuit or stream of a Live.
type liveItem[T any] struct {
	cur *T             // its latest state, when src is nil; nil once it is gone
	src Source[T]      // its latest state, not parsed yet; or nil
	val starlark.Value // the Starlark value of its state, or nil until read
}

// Source is an item's state not parsed yet (a deferred CIRC event).
type Source[T any] interface {
	Parse() *T
}

// gone says whether the item was removed.
func (it *liveItem[T]) gone() bool { return it.cur == nil && it.src == nil }

// state is the item's latest state, parsed now if it was not.
func (it *liveItem[T]) state() *T {
	if it.src != nil {
		it.cur, it.src = it.src.Parse(), nil
	}
	return it.cur
}

// NewLive is an empty Live whose items become Starlark values through
// value.
func NewLive[T any](value func(*T) starlark.Value) *Live[T] {
	return &Live[T]{value: value}
}

// Set records item as the latest state of id, which is added at the end of
// the order if it is new.
func (l *Live[T]) Set(id string, item *T) {
	l.set(id, item, nil)
}

// SetSource is Set with the state given unparsed: it is parsed on the
// item's first read, if any.
func (l *Live[T]) SetSource(id string, src Source[T]) {
	l.set(id, nil, src)
}

// ReplaceSource is SetSource that also returns id's state before, as it
// was given (parsed, cur, or not, prev; neither is parsed now); had is
// false when id is new.
func (l *Live[T]) ReplaceSource(id string, src Source[T]) (cur *T, prev Source[T], had bool) {
	return l.set(id, nil, src)
}

func (l *Live[T]) set(id string, item *T, src Source[T]) (cur *T, prev Source[T], had bool) {
	if it, ok := l.byID.Get(id); ok {
		cur, prev = it.cur, it.src
		it.cur, it.src, it.val = item, src, nil
		return cur, prev, true
	}
	it := &liveItem[T]{cur: item, src: src}
	// The key outlives this item's first state: a copy (IDMap.Set), so
	// that it does not keep the event it was cut from.
	l.byID.Set(id, it)
	l.order = append(l.order, it)
	return nil, nil, false
}

// Delete removes id, if it is there.
func (l *Live[T]) Delete(id string) {
	l.Take(id)
}

// Take is Delete that returns id's state before, as it was given (see
// ReplaceSource).
func (l *Live[T]) Take(id string) (cur *T, prev Source[T], had bool) {
	it, ok := l.byID.Get(id)
	if !ok {
		return nil, nil, false
	}
	cur, prev = it.cur, it.src
	l.byID.Delete(id)
	it.cur, it.src, it.val = nil, nil, nil
	l.holes++
	if l.holes >= 32 && l.holes*2 >= len(l.order) {
		l.compact()
	}
	return cur, prev, true
}

// compact drops the holes into a new array: views taken before keep the
// old one.
func (l *Live[T]) compact() {
	order := make([]*liveItem[T], 0, l.byID.Len()+l.byID.Len()/4)
	for _, it := range l.order {
		if !it.gone() {
			order = append(order, it)
		}
	}
	l.order, l.holes = order, 0
}

// Reset empties l.
func (l *Live[T]) Reset() {
	for _, it := range l.order {
		it.cur, it.src, it.val = nil, nil, nil
	}
	l.byID.Clear()
	l.order, l.holes = nil, 0
}

// Get is id's latest state, or nil.
func (l *Live[T]) Get(id string) *T {
	if it, ok := l.byID.Get(id); ok {
		return it.state()
	}
	return nil
}

// Has says whether id is live, without parsing its state.
func (l *Live[T]) Has(id string) bool {
	_, ok := l.byID.Get(id)
	return ok
}

// Value is id's Starlark value, or nil when there is no such item.
func (l *Live[T]) Value(id string) starlark.Value {
	if it, ok := l.byID.Get(id); ok {
		return l.valueOf(it)
	}
	return nil
}

func (l *Live[T]) valueOf(it *liveItem[T]) starlark.Value {
	if it.val == nil {
		it.val = l.value(it.state())
	}
	return it.val
}

// Len is the number of live items.
func (l *Live[T]) Len() int { return l.byID.Len() }

// All is every live item, oldest first.
func (l *Live[T]) All() []*T {
	out := make([]*T, 0, l.byID.Len())
	for _, it := range l.order {
		if !it.gone() {
			out = append(out, it.state())
		}
	}
	return out
}

// View is what tor.circuits() and tor.streams() return: the items live
// now that keep matching keep (nil: all), oldest first, as a read-only
// Starlark sequence named typ.
func (l *Live[T]) View(typ string, keep func(*T) bool) starlark.Value {
	return &liveView[T]{typ: typ, live: l, order: l.order, keep: keep}
}

// liveView is a Live read from Starlark. It reads the order as it was when
// the view was taken, each item in its latest state; an item that closed
// since (or no longer matches) is skipped, one that opened since is not
// in it. Len and Index read it once into a list, kept for the view.
type liveView[T any] struct {
	typ   string
	live  *Live[T]
	order []*liveItem[T]
	keep  func(*T) bool
	list  []starlark.Value // read by Len or Index
}

var (
	_ starlark.Iterable  = (*liveView[int])(nil)
	_ starlark.Sliceable = (*liveView[int])(nil)
)

func (v *liveView[T]) String() string {
	return starlark.NewList(v.values()).String()
}
func (v *liveView[T]) Type() string          { return v.typ }
func (v *liveView[T]) Freeze()               {}
func (v *liveView[T]) Truth() starlark.Bool  { return v.Len() > 0 }
func (v *liveView[T]) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: %s", v.typ) }

func (v *liveView[T]) Iterate() starlark.Iterator {
	if v.list != nil {
		return &listIterator{l: v.list}
	}
	return &liveIterator[T]{v: v}
}

func (v *liveView[T]) Len() int                   { return len(v.values()) }
func (v *liveView[T]) Index(i int) starlark.Value { return v.values()[i] }

// Slice is a list: v[a:b:c].
func (v *liveView[T]) Slice(start, end, step int) starlark.Value {
	all := v.values()
	var out []starlark.Value
	for i := start; step > 0 && i < end || step < 0 && i > end; i += step {
		out = append(out, all[i])
	}
	return starlark.NewList(out)
}

// values reads the view into a list, once.
func (v *liveView[T]) values() []starlark.Value {
	if v.list == nil {
		list := []starlark.Value{}
		it := &liveIterator[T]{v: v}
		var x starlark.Value
		for it.Next(&x) {
			list = append(list, x)
		}
		v.list = list
	}
	return v.list
}

// liveIterator walks a view's order, skipping the items gone or not kept.
type liveIterator[T any] struct {
	v *liveView[T]
	i int
}

func (it *liveIterator[T]) Next(p *starlark.Value) bool {
	for it.i < len(it.v.order) {
		item := it.v.order[it.i]
		it.i++
		if item.gone() || (it.v.keep != nil && !it.v.keep(item.state())) {
			continue
		}
		*p = it.v.live.valueOf(item)
		return true
	}
	return false
}

func (it *liveIterator[T]) Done() {}

// listIterator walks a list read before.
type listIterator struct {
	l []starlark.Value
	i int
}

func (it *listIterator) Next(p *starlark.Value) bool {
	if it.i >= len(it.l) {
		return false
	}
	*p = it.l[it.i]
	it.i++
	return true
}

func (it *listIterator) Done() {}
