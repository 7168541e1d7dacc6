package ctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultAddrs returns the addresses tried in order when no control
// address is given: tor's default ControlPort, Debian's control socket, and
// Tor Browser's port.
func DefaultAddrs() []string {
	return []string{"127.0.0.1:9051", "unix:/run/tor/control", "127.0.0.1:9151", "unix:" + InstancesGlob}
}

// InstancesGlob matches the control sockets of the tor instances Debian's
// tor-instance-create makes (tor@NAME.service).
const InstancesGlob = "/run/tor-instances/*/control"

// Connect dials addr (or, when addr is empty, the first of DefaultAddrs that
// answers) and authenticates.
func Connect(ctx context.Context, addr string, cred Credentials, opts Options) (*Conn, *ProtocolInfo, error) {
	addrs := []string{addr}
	if addr == "" {
		addrs = nil
		for _, a := range DefaultAddrs() {
			if a != "unix:"+InstancesGlob {
				addrs = append(addrs, a)
				continue
			}
			// The instances' sockets, in name order: the first that
			// answers (run --control-glob drives them all).
			m, _ := filepath.Glob(InstancesGlob)
			for _, p := range m {
				addrs = append(addrs, "unix:"+p)
			}
		}
	}
	var errs []error
	for _, a := range addrs {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := Dial(dctx, a, opts)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pi, err := c.Authenticate(ctx, cred)
		if err != nil {
			c.Close()
			return nil, pi, fmt.Errorf("%s: %w", a, err)
		}
		return c, pi, nil
	}
	if addr == "" {
		return nil, nil, fmt.Errorf("no control port found (tried %s; give one with --control or TORSCRIPT_CONTROL): %w",
			strings.Join(addrs, ", "), errors.Join(errs...))
	}
	return nil, nil, errors.Join(errs...)
}

// PasswordFromFile returns a password source that reads the first line of
// path when tor asks for a password.
func PasswordFromFile(path string) func() (string, error) {
	return func() (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("password file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		return strings.TrimSuffix(line, "\r"), nil
	}
}
