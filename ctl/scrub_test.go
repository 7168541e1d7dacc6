package ctl

import (
	"errors"
	"strings"
	"testing"
)

// TestScrubSecrets: keys and passwords never reach a transcript or an
// error.
func TestScrubSecrets(t *testing.T) {
	const key = "ED25519-V3:OGdRDVeWrTTuhGxYcWEL7+p6ngGDPfdHNJTNWCgk5FQ/Ym+cB7IeBL4CsCKfkUcm8lCa2OsftXb/3f+fY4xvwg=="
	for _, tc := range []struct{ in, secret string }{
		{"ADD_ONION " + key + " Port=80\r\n", "OGdRDVeWrTTu"},
		{"add_onion " + key + " Flags=Detach Port=80,127.0.0.1:8080\r\n", "OGdRDVeWrTTu"},
		{"ONION_CLIENT_AUTH_ADD svc.onion x25519:s3cretKEYblob0123 ClientName=a\r\n", "s3cretKEYblob"},
		{"ADD_ONION NEW:BEST Port=80 ClientAuth=alice:fMtoFOnDcLkHhSTFS9rV5g\r\n", "fMtoFOnDcLk"},
		{"AUTHENTICATE 6d7950617373\r\n", "6d7950617373"},
	} {
		if got := scrub(tc.in); strings.Contains(got, tc.secret) {
			t.Errorf("scrub(%q) = %q: the secret is still there", tc.in, got)
		}
	}
	if got := scrub("ADD_ONION NEW:BEST Port=80,127.0.0.1:8080\r\n"); got != "ADD_ONION NEW:BEST Port=80,127.0.0.1:8080\r\n" {
		t.Errorf("scrub changed a line with no secret: %q", got)
	}
	reply := "250-ServiceID=abc\r\n250-PrivateKey=ED25519-V3:c2VjcmV0c2VjcmV0\r\n250 OK\r\n"
	if got := scrubReply(reply); strings.Contains(got, "c2VjcmV0") || !strings.Contains(got, "PrivateKey=ED25519-V3:[scrubbed]") {
		t.Errorf("scrubReply = %q", got)
	}
	// An argument check never repeats the argument.
	for _, err := range []error{
		CheckArg("password", "hunter2\rhunter2"),
		CheckToken("ADD_ONION key", "ED25519-V3:se\ncret"),
		cmdUnsafeArg("client auth key", "x25519:s3cret", "is bad"),
	} {
		if err == nil || !errors.Is(err, ErrUnsafeArgument) || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "se") && strings.Contains(err.Error(), "cret") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error repeats a secret or is wrong: %v", err)
		}
	}
}
