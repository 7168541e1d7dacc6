package main

import "testing"

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"512MiB", 512 << 20}, {"1GiB", 1 << 30}, {"2G", 2 << 30}, {"100M", 100 << 20},
		{"1.5GiB", 3 << 29}, {"4096", 4096}, {"0", 0}, {" 64KiB ", 64 << 10},
	} {
		got, err := parseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "lots", "-1G", "1 GB x"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q): no error", bad)
		}
	}
	if got := formatSize(512 << 20); got != "512MiB" {
		t.Errorf("formatSize = %q", got)
	}
	if got := formatSize(2 << 30); got != "2GiB" {
		t.Errorf("formatSize = %q", got)
	}
}
