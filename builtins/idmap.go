package builtins

import (
	"iter"
	"strconv"
	"strings"
)

// IDMap maps tor's circuit and stream IDs to values. Tor's IDs are decimal
// numbers (control-spec allows up to 16 letters and digits), and a map keyed
// by the number finds one without following a pointer to the key's text,
// which on the event path is not in the cache: other IDs go to a map keyed
// by their text. The zero IDMap is empty and ready to use.
type IDMap[V any] struct {
	num map[uint64]V
	str map[string]V
}

// numID is id as a number, if it is one written the one way: digits only,
// no leading zero, at most 19 of them (any such fits in a uint64).
func numID(id string) (uint64, bool) {
	if id == "" || len(id) > 19 || id[0] == '0' && len(id) > 1 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(id); i++ {
		c := id[i] - '0'
		if c > 9 {
			return 0, false
		}
		n = n*10 + uint64(c)
	}
	return n, true
}

// Get is id's value.
func (m *IDMap[V]) Get(id string) (V, bool) {
	if n, ok := numID(id); ok {
		v, ok := m.num[n]
		return v, ok
	}
	v, ok := m.str[id]
	return v, ok
}

// Set sets id's value; the map keeps a copy of id, not id's text.
func (m *IDMap[V]) Set(id string, v V) {
	if n, ok := numID(id); ok {
		if m.num == nil {
			m.num = map[uint64]V{}
		}
		m.num[n] = v
		return
	}
	if m.str == nil {
		m.str = map[string]V{}
	}
	if _, ok := m.str[id]; ok {
		m.str[id] = v
		return
	}
	m.str[strings.Clone(id)] = v
}

// Delete removes id.
func (m *IDMap[V]) Delete(id string) {
	if n, ok := numID(id); ok {
		delete(m.num, n)
		return
	}
	delete(m.str, id)
}

// Len is the number of IDs in m.
func (m *IDMap[V]) Len() int { return len(m.num) + len(m.str) }

// Clear empties m.
func (m *IDMap[V]) Clear() {
	clear(m.num)
	clear(m.str)
}

// All is every ID in m and its value, in no order.
func (m *IDMap[V]) All() iter.Seq2[string, V] {
	return func(yield func(string, V) bool) {
		for n, v := range m.num {
			if !yield(strconv.FormatUint(n, 10), v) {
				return
			}
		}
		for id, v := range m.str {
			if !yield(id, v) {
				return
			}
		}
	}
}
