package ctl

import (
	"context"
	"strings"
)

// GetInfo asks for the values of keys (control-spec 3.9). The result maps
// each key tor answered to its value; a multi-line value (a "+" line) is
// its data block with "\n" between lines.
func (c *Conn) GetInfo(ctx context.Context, keys ...string) (map[string]string, error) {
	if len(keys) == 0 {
		return nil, &argError{cmd: "GETINFO", msg: "no keys"}
	}
	var b strings.Builder
	b.WriteString("GETINFO")
	for _, k := range keys {
		if err := CheckToken("GETINFO key", k); err != nil {
			return nil, err
		}
		b.WriteByte(' ')
		b.WriteString(k)
	}
	r, err := c.Do(ctx, b.String())
	if err != nil {
		return nil, err
	}
	return ParseKeyValueReply(r)
}

// GetInfoOne asks for one key and returns its value.
func (c *Conn) GetInfoOne(ctx context.Context, key string) (string, error) {
	m, err := c.GetInfo(ctx, key)
	if err != nil {
		return "", err
	}
	v, ok := m[key]
	if !ok {
		return "", &ProtocolError{Msg: "GETINFO reply lacks the key asked for", Line: key}
	}
	return v, nil
}

// ParseKeyValueReply reads a GETINFO-style reply: each line "key=value" or
// a data line "key=" with the value in its data block; a line without "="
// (the final "OK") is skipped.
func ParseKeyValueReply(r *Reply) (map[string]string, error) {
	m := make(map[string]string, len(r.Lines))
	for i := range r.Lines {
		l := &r.Lines[i]
		k, v, ok := strings.Cut(l.Text, "=")
		if !ok {
			if l.Sep == ' ' {
				continue // "250 OK"
			}
			if l.Sep == '+' {
				return nil, &ProtocolError{Msg: "data line without key=", Line: l.Text}
			}
			continue
		}
		if l.Sep == '+' {
			v = l.Data
		}
		m[k] = v
	}
	return m, nil
}

type argError struct {
	cmd, msg string
}

func (e *argError) Error() string { return e.cmd + ": " + e.msg }

// Unwrap makes a missing or malformed argument an ErrUnsafeArgument, like
// every other refusal before anything is written.
func (e *argError) Unwrap() error { return ErrUnsafeArgument }
