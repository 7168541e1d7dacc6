package sim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReplayNotATranscript: sim.replay given a file that is not a
// transcript (a control_auth_cookie, a key) says so, and never prints its
// bytes.
func TestReplayNotATranscript(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"control_auth_cookie":   "\x8fSECRETcookieBYTES\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d",
		"hs_ed25519_secret_key": "== ed25519v1-secret: type0 ==\x00\x00\x00SECRETkeyBYTES",
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := parseTrace(path)
		if err == nil {
			t.Errorf("%s: read as a transcript", name)
			continue
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: the error repeats the file's bytes: %v", name, err)
		}
		if !strings.Contains(err.Error(), "transcript") {
			t.Errorf("%s: the error does not say what is wrong: %v", name, err)
		}
	}
}
