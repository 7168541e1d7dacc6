package runtime

import (
	"strings"
	"testing"

	"go.starlark.net/starlark"
)

// TestFormatErrorBounded: the backtrace of a deep recursion through a
// function with a very long name prints in a few KiB, with its outermost
// and innermost frames and the count of those left out.
func TestFormatErrorBounded(t *testing.T) {
	name := "f" + strings.Repeat("x", 10000)
	src := "def " + name + "(k):\n    return " + name + "(k + 1)\n" + name + "(0)\n"
	thread := &starlark.Thread{Name: "t"}
	_, err := starlark.ExecFileOptions(FileOptions(), thread, "rec.star", src, nil)
	if err == nil {
		t.Fatal("no error from an endless recursion")
	}
	got := FormatError(err)
	if len(got) > 8<<10 {
		t.Errorf("FormatError: %d bytes, want at most 8 KiB", len(got))
	}
	for _, want := range []string{"Traceback (most recent call last):", "frames left out", "rec.star:3:", "characters)", "Error: Starlark stack overflow"} {
		if !strings.Contains(got, want) {
			t.Errorf("FormatError has no %q:\n%s", want, got)
		}
	}
	// A short backtrace is printed whole.
	_, err = starlark.ExecFileOptions(FileOptions(), thread, "short.star", "def f():\n    fail(\"boom\")\nf()\n", nil)
	want := "Traceback (most recent call last):\n  short.star:3:2: in <toplevel>\n  short.star:2:9: in f\nError in fail: boom"
	if got := FormatError(err); got != want {
		t.Errorf("FormatError:\n%s\nwant\n%s", got, want)
	}
}
