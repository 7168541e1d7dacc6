package ctl

import (
	"errors"
	"fmt"
	"strconv"
)

// Error is an error reply from tor: a 4yz or 5yz status code and its text,
// e.g. `552 Unknown stream "42"`.
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return strconv.Itoa(e.Code) + " " + e.Msg }

// Status codes of control-spec section 4.
const (
	CodeOK                = 250
	CodeUnnecessary       = 251
	CodeResourceExhausted = 451
	CodeSyntaxProtocol    = 500
	CodeUnrecognizedCmd   = 510
	CodeUnimplementedCmd  = 511
	CodeSyntaxArgument    = 512
	CodeUnrecognizedArg   = 513
	CodeAuthRequired      = 514
	CodeBadAuth           = 515
	CodeUnspecified       = 550
	CodeInternal          = 551
	CodeUnrecognized      = 552
	CodeInvalidConfig     = 553
	CodeInvalidDescriptor = 554
	CodeUnmanaged         = 555
	CodeEvent             = 650
)

// ErrorCode returns the tor status code carried by err (an *Error anywhere in
// its chain), or 0.
func ErrorCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// ProtocolError means tor sent something that does not follow the control
// protocol, as opposed to an *Error, which is a well-formed refusal.
type ProtocolError struct {
	Msg  string
	Line string // the offending text, if any
}

func (e *ProtocolError) Error() string {
	if e.Line == "" {
		return "control protocol: " + e.Msg
	}
	return fmt.Sprintf("control protocol: %s: %q", e.Msg, e.Line)
}

// ErrClosed is returned for commands issued after Close.
var ErrClosed = errors.New("control connection closed")
