package ctl

import (
	"errors"
)

// Severity is the severity of a log or status event.
type Severity string

const (
	SeverityDebug  Severity = "DEBUG"
	SeverityInfo   Severity = "INFO"
	SeverityNotice Severity = "NOTICE"
	SeverityWarn   Severity = "WARN"
	SeverityErr    Severity = "ERR"
)

// LogEvent is a DEBUG, INFO, NOTICE, WARN or ERR event: a log message
// (control-spec 4.1.5), sent on one line ("650 NOTICE text") or as data
// ("650+NOTICE", the message, ".", "650 OK").
type LogEvent struct {
	Base
	Severity Severity
	// Message is the text of the message; lines of a data message are
	// joined with "\n".
	Message string
	Unknown []KeyValue
}

func parseLogEvent(b Base, rest string) (Event, error) {
	first := &b.Raw.Lines[0]
	ev := &LogEvent{Base: b, Severity: Severity(b.Type), Message: rest}
	if first.Sep == '+' {
		ev.Message = first.Data
		if rest != "" {
			ev.Unknown = append(ev.Unknown, KeyValue{Key: rest})
		}
	}
	for _, l := range extraLines(b.Raw) {
		ev.Unknown = append(ev.Unknown, lineKeyValue(&l))
	}
	return ev, nil
}

// StatusEvent is a STATUS_GENERAL, STATUS_CLIENT or STATUS_SERVER event
// (control-spec 4.1.10), such as
//
//	650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"
//
// EventType is the type tor sent; tor before 0.2.0.22-rc spelled
// STATUS_SERVER as "STATUS_SEVER".
type StatusEvent struct {
	Base
	Severity Severity // NOTICE, WARN or ERR
	Action   string   // BOOTSTRAP, CIRCUIT_ESTABLISHED, EXTERNAL_ADDRESS, ...
	// Args holds every argument after the action, and every additional
	// line, in order.
	Args []KeyValue
}

// Arg returns the value of the first argument named key, such as
// "PROGRESS".
func (e *StatusEvent) Arg(key string) (string, bool) { return Lookup(e.Args, key) }

func parseStatusEvent(b Base, a *Args) (Event, error) {
	ev := &StatusEvent{Base: b}
	sev, ok := a.Word()
	if !ok || !isKeyword(sev) {
		return nil, errors.New("missing or bad severity")
	}
	action, ok := a.Word()
	if !ok || !isKeyword(action) {
		return nil, errors.New("missing or bad action")
	}
	ev.Severity, ev.Action = Severity(sev), action
	if err := keywords(a, extraLines(b.Raw), noKeywords, &ev.Args); err != nil {
		return nil, err
	}
	return ev, nil
}

// PTLogEvent is a PT_LOG event: a log message from a pluggable transport
// (control-spec 4.1.28).
type PTLogEvent struct {
	Base
	Program  string // PT: the transport's program
	Severity string // SEVERITY as the transport sent it: error, warning, notice, info, debug
	Message  string
	Unknown  []KeyValue
}

func (e *PTLogEvent) set(kv KeyValue) bool {
	if !kv.HasValue {
		return false
	}
	switch kv.Key {
	case "PT":
		e.Program = kv.Value
	case "SEVERITY":
		e.Severity = kv.Value
	case "MESSAGE":
		e.Message = kv.Value
	default:
		return false
	}
	return true
}

func parsePTLogEvent(b Base, a *Args) (Event, error) {
	ev := &PTLogEvent{Base: b}
	return keywordEvent(ev, a, ev.set, &ev.Unknown)
}

// PTStatusEvent is a PT_STATUS event: a status message from a pluggable
// transport (control-spec 4.1.29).
type PTStatusEvent struct {
	Base
	Program   string // PT: the transport's program
	Transport string
	// Args holds the status message's other arguments, such as
	// CONNECT=Success, in order.
	Args []KeyValue
}

// Arg returns the value of the first argument named key.
func (e *PTStatusEvent) Arg(key string) (string, bool) { return Lookup(e.Args, key) }

func (e *PTStatusEvent) set(kv KeyValue) bool {
	if !kv.HasValue {
		return false
	}
	switch kv.Key {
	case "PT":
		e.Program = kv.Value
	case "TRANSPORT":
		e.Transport = kv.Value
	default:
		return false
	}
	return true
}

func parsePTStatusEvent(b Base, a *Args) (Event, error) {
	ev := &PTStatusEvent{Base: b}
	if err := keywords(a, extraLines(b.Raw), ev.set, &ev.Args); err != nil {
		return nil, err
	}
	return ev, nil
}
