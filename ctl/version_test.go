package ctl

import "testing"

// TestTorVersion: tor_version_parse's forms and tor_version_compare's
// order, quirks included.
func TestTorVersion(t *testing.T) {
	order := []string{"0.2.9", "0.3.5.7", "0.4.8", "0.4.8.1", "0.4.8.1-alpha", "0.4.8.10", "Tor 0.4.9.11 (git-abcdef0123456789)", "0.4.10.1", "1.0"}
	for i := range order {
		for j := range order {
			a, err := ParseTorVersion(order[i])
			if err != nil {
				t.Fatal(err)
			}
			b, _ := ParseTorVersion(order[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("%q vs %q: %d, want %d", order[i], order[j], got, want)
			}
		}
	}
	for _, tc := range []struct {
		s, a, b string
	}{
		{"0.1.2.3pre4", "0.1.2.3pre4", "0.1.2.3rc1"}, // pre < rc < release, before the patch level
		{"0.1.2rc9", "0.1.2rc9", "0.1.2.1"},
	} {
		a, err1 := ParseTorVersion(tc.a)
		b, err2 := ParseTorVersion(tc.b)
		if err1 != nil || err2 != nil || a.Compare(b) >= 0 {
			t.Errorf("%q should sort before %q (%v, %v)", tc.a, tc.b, err1, err2)
		}
	}
	v, err := ParseTorVersion("Tor 0.4.9.11-dev (git-ABCDEF)")
	if err != nil || v.Major != 0 || v.Minor != 4 || v.Micro != 9 || v.Patch != 11 || v.Tag != "dev" || v.Git != "abcdef" {
		t.Errorf("ParseTorVersion = %+v, %v", v, err)
	}
	for _, bad := range []string{"", "tor", "0", "0.x", "0.4.9.x", "0.4.9x1", "0.4.9.1 (git-zz)", "0.4.9.1 (git-ab"} {
		if _, err := ParseTorVersion(bad); err == nil {
			t.Errorf("ParseTorVersion(%q): no error", bad)
		}
	}
}

// FuzzTorVersion: any text parses or fails without panicking, and the
// order of versions that parse is antisymmetric.
func FuzzTorVersion(f *testing.F) {
	f.Add("Tor 0.4.9.11 (git-abcdef)", "0.4.8.1-alpha")
	f.Add("0.1.2.3pre4", "0.1.2rc9")
	f.Fuzz(func(t *testing.T, a, b string) {
		va, err1 := ParseTorVersion(a)
		vb, err2 := ParseTorVersion(b)
		if err1 != nil || err2 != nil {
			return
		}
		if va.Compare(vb) != -vb.Compare(va) {
			t.Fatalf("%q vs %q: %d and %d", a, b, va.Compare(vb), vb.Compare(va))
		}
	})
}
