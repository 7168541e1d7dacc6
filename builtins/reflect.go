package builtins

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/torscript/torscript/ctl"
	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
)

// Struct shows a ctl struct (an event, a router status, an OR connection,
// ...) to Starlark: each exported field is an attribute named in
// snake_case (CircuitID is circuit_id), and fields of embedded structs are
// promoted. Events also have .type (tor's keyword, "BW") and .raw (the
// event's text).
type Struct struct {
	name string
	v    reflect.Value // a struct
	info *structInfo
	ev   ctl.Event // for events, else nil
}

var _ starlark.HasAttrs = (*Struct)(nil)

type structInfo struct {
	names  []string         // sorted, including type and raw for events
	fields map[string][]int // attribute → field index path
}

// structInfos caches the attribute table of each struct type. It is filled
// on first use of a type and never changes after.
var structInfos, eventInfos sync.Map // reflect.Type → *structInfo, of values and of events

// NewStruct wraps a struct or a pointer to one; name is its Starlark type
// ("tor.router"). A nil pointer is None.
func NewStruct(name string, x any) starlark.Value {
	v := reflect.ValueOf(x)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return starlark.None
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		panic(fmt.Sprintf("builtins.NewStruct(%T): not a struct", x))
	}
	return &Struct{name: name, v: v, info: infoOf(v.Type(), false)}
}

// NewEvent wraps an event that has no value type of its own. A
// *ctl.Deferred is its own value (eventShell), parsed on its first read.
func NewEvent(ev ctl.Event) starlark.Value {
	if d, ok := ev.(*ctl.Deferred); ok {
		return (*eventShell)(d)
	}
	s := eventStruct(ev)
	return &s
}

// eventStruct is NewEvent's Struct of ev.
func eventStruct(ev ctl.Event) Struct {
	v := reflect.ValueOf(ev)
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return Struct{name: "tor.event", v: reflect.ValueOf(struct{}{}), info: infoOf(reflect.TypeOf(struct{}{}), true), ev: ev}
	}
	return Struct{name: "tor.event", v: v, info: infoOf(v.Type(), true), ev: ev}
}

// eventShell is a deferred event of a type with no value of its own (BW,
// ORCONN, ...) as handlers receive it: the *ctl.Deferred itself under
// another type, so that handing an event to a handler allocates nothing
// (a handler that only counts events reads none of it). A read parses it
// (once: Deferred.Event) and reads it as NewEvent's Struct of it.
type eventShell ctl.Deferred

var _ starlark.HasAttrs = (*eventShell)(nil)

func (e *eventShell) view() Struct { return eventStruct((*ctl.Deferred)(e).Event()) }

func (e *eventShell) String() string       { s := e.view(); return s.String() }
func (e *eventShell) Type() string         { return "tor.event" }
func (e *eventShell) Freeze()              {}
func (e *eventShell) Truth() starlark.Bool { return true }
func (e *eventShell) Hash() (uint32, error) {
	return 0, fmt.Errorf("unhashable type: tor.event")
}
func (e *eventShell) AttrNames() []string { s := e.view(); return s.info.names }
func (e *eventShell) Attr(name string) (starlark.Value, error) {
	s := e.view()
	return s.Attr(name)
}

func infoOf(t reflect.Type, event bool) *structInfo {
	infos := &structInfos
	if event {
		infos = &eventInfos
	}
	if i, ok := infos.Load(t); ok {
		return i.(*structInfo)
	}
	info := &structInfo{fields: map[string][]int{}}
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() || f.Type == reflect.TypeOf(ctl.Base{}) {
				continue
			}
			path := append(append([]int(nil), index...), i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type, path)
				continue
			}
			if !convertible(f.Type) {
				continue
			}
			name := snake(f.Name)
			if _, dup := info.fields[name]; dup {
				continue // the outer field wins, as in Go
			}
			info.fields[name] = path
		}
	}
	walk(t, nil)
	for n := range info.fields {
		info.names = append(info.names, n)
	}
	if event {
		info.names = append(info.names, "type", "raw")
	}
	sort.Strings(info.names)
	actual, _ := infos.LoadOrStore(t, info)
	return actual.(*structInfo)
}

func (s *Struct) String() string {
	var b strings.Builder
	b.WriteString(s.name)
	b.WriteByte('(')
	first := true
	for _, n := range s.info.names {
		if n == "raw" || n == "unknown" {
			continue
		}
		v, err := s.Attr(n)
		if err != nil || v == nil {
			continue
		}
		if !first {
			b.WriteString(", ")
		}
		first = false
		fmt.Fprintf(&b, "%s = %s", n, v.String())
	}
	b.WriteByte(')')
	return b.String()
}

func (s *Struct) Type() string         { return s.name }
func (s *Struct) Freeze()              {}
func (s *Struct) Truth() starlark.Bool { return true }
func (s *Struct) Hash() (uint32, error) {
	return 0, fmt.Errorf("unhashable type: %s", s.name)
}
func (s *Struct) AttrNames() []string { return s.info.names }

func (s *Struct) Attr(name string) (starlark.Value, error) {
	if s.ev != nil {
		switch name {
		case "type":
			return starlark.String(s.ev.EventType()), nil
		case "raw":
			return rawText(s.ev.Reply()), nil
		}
	}
	path, ok := s.info.fields[name]
	if !ok {
		return nil, nil
	}
	return toValue(s.v.FieldByIndex(path)), nil
}

var (
	timeType     = reflect.TypeOf(time.Time{})
	durationType = reflect.TypeOf(time.Duration(0))
	hopType      = reflect.TypeOf(ctl.PathHop{})
	kvType       = reflect.TypeOf(ctl.KeyValue{})
	stringerType = reflect.TypeOf((*fmt.Stringer)(nil)).Elem()
	errorType    = reflect.TypeOf((*error)(nil)).Elem()
)

// structNames names nested ctl structs in Starlark; others are "tor." plus
// their Go name in snake_case.
var structNames = map[reflect.Type]string{
	reflect.TypeOf(ctl.RouterStatus{}): "tor.router",
	reflect.TypeOf(ctl.ORConn{}):       "tor.orconn",
}

// convertible reports whether toValue shows fields of type t.
func convertible(t reflect.Type) bool {
	switch t {
	case timeType, durationType, hopType, kvType:
		return true
	}
	if t.Implements(errorType) || t.Implements(stringerType) {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64, reflect.Struct:
		return true
	case reflect.Slice, reflect.Pointer:
		return convertible(t.Elem())
	case reflect.Map:
		return t.Key().Kind() == reflect.String && convertible(t.Elem())
	}
	return false
}

func timeValue(t time.Time) starlark.Value {
	if t.IsZero() {
		return starlark.None
	}
	return startime.Time(t)
}

func toValue(v reflect.Value) starlark.Value {
	switch v.Type() {
	case timeType:
		return timeValue(v.Interface().(time.Time))
	case durationType:
		return startime.Duration(v.Interface().(time.Duration))
	case hopType:
		return Hop{v.Interface().(ctl.PathHop)}
	case kvType:
		return unknownTuple([]ctl.KeyValue{v.Interface().(ctl.KeyValue)})[0]
	}
	if v.Type().Implements(errorType) {
		if v.IsNil() {
			return starlark.None
		}
		return starlark.String(v.Interface().(error).Error())
	}
	if v.Kind() != reflect.String && v.Type().Implements(stringerType) {
		return starlark.String(v.Interface().(fmt.Stringer).String())
	}
	switch v.Kind() {
	case reflect.String:
		return starlark.String(v.String())
	case reflect.Bool:
		return starlark.Bool(v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return starlark.MakeInt64(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return starlark.MakeUint64(v.Uint())
	case reflect.Float32, reflect.Float64:
		return starlark.Float(v.Float())
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return starlark.Bytes(v.Bytes())
		}
		t := make(starlark.Tuple, v.Len())
		for i := range t {
			t[i] = toValue(v.Index(i))
		}
		return t
	case reflect.Map:
		d := starlark.NewDict(v.Len())
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			d.SetKey(starlark.String(k.String()), toValue(v.MapIndex(k)))
		}
		d.Freeze()
		return d
	case reflect.Pointer:
		if v.IsNil() {
			return starlark.None
		}
		return toValue(v.Elem())
	case reflect.Struct:
		name, ok := structNames[v.Type()]
		if !ok {
			name = "tor." + snake(v.Type().Name())
		}
		return &Struct{name: name, v: v, info: infoOf(v.Type(), false)}
	}
	return starlark.None
}

// snakeExceptions are Go names the word splitter gets wrong.
var snakeExceptions = map[string]string{
	"HSPoWType":   "hs_pow_type",
	"HSPoWEffort": "hs_pow_effort",
	"ORPort":      "or_port",
	"DirPort":     "dir_port",
	// Keywords of Starlark cannot follow a dot.
	"From": "from_",
}

// snake turns a Go name into snake_case: CircuitID → circuit_id,
// ORAddresses → or_addresses.
func snake(name string) string {
	if s, ok := snakeExceptions[name]; ok {
		return s
	}
	r := []rune(name)
	var b strings.Builder
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 {
			prevLower := unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1])
			nextLower := i+1 < len(r) && unicode.IsLower(r[i+1])
			if prevLower || (unicode.IsUpper(r[i-1]) && nextLower) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}
