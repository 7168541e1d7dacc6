package ctl

import (
	"slices"
	"testing"
)

func TestParseBootstrapPhase(t *testing.T) {
	b, err := ParseBootstrapPhase(`WARN BOOTSTRAP PROGRESS=14 TAG=handshake SUMMARY="Handshaking with a relay" WARNING="Connection refused" REASON=CONNECTREFUSED COUNT=3 RECOMMENDATION=ignore`)
	if err != nil || b != (Bootstrap{Severity: "WARN", Progress: 14, Tag: "handshake", Summary: "Handshaking with a relay", Warning: "Connection refused"}) {
		t.Errorf("ParseBootstrapPhase = %+v, %v", b, err)
	}
	for _, bad := range []string{"", "NOTICE CIRCUIT_ESTABLISHED", "NOTICE BOOTSTRAP PROGRESS=x"} {
		if _, err := ParseBootstrapPhase(bad); err == nil {
			t.Errorf("ParseBootstrapPhase(%q): no error", bad)
		}
	}
	got, err := unquoteList(`"127.0.0.1:9050" "unix:/run/tor/socks with space" [::1]:9050`)
	if err != nil || !slices.Equal(got, []string{"127.0.0.1:9050", "unix:/run/tor/socks with space", "[::1]:9050"}) {
		t.Errorf("unquoteList = %q, %v", got, err)
	}
}
