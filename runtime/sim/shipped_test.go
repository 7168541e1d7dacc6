package sim

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/torscript/torscript/runtime"
)

// TestShippedStarlarkTests runs the Starlark tests shipped with the
// examples and the stdlib against the simulated tor: every one must pass.
func TestShippedStarlarkTests(t *testing.T) {
	var files []string
	for _, pattern := range []string{"../../examples/*_test.star", "../../stdlib/*_test.star"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no *_test.star files in ../../examples or ../../stdlib")
	}
	for _, path := range files {
		t.Run(strings.TrimPrefix(filepath.ToSlash(path), "../../"), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			results, err := RunTests(context.Background(), path, src, runtime.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, res := range results {
				if !res.Passed() {
					t.Errorf("%s failed:\n%s\noutput:\n%s", res.Name, strings.Join(res.Failures, "\n"), res.Output)
				}
			}
		})
	}
}
