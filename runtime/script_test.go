package runtime

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/torscript/torscript/ctl/ctltest"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarktest"
)

// TestScripts runs testdata/*.star with the runtime's predeclared names
// and starlarktest's assert module, without tor. A failed assertion
// reports its position in the script.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.star")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/*.star")
	}
	assert, err := starlarktest.LoadAssertModule()
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			rt := New(Options{Stdout: &ctltest.SyncBuffer{}, Logger: discardLogger()})
			predeclared := starlark.StringDict{}
			for k, v := range rt.Predeclared() {
				predeclared[k] = v
			}
			predeclared["assert"] = assert["assert"]
			thread := &starlark.Thread{Name: file, Load: rt.loader.load}
			starlarktest.SetReporter(thread, t)
			if _, err := starlark.ExecFileOptions(FileOptions(), thread, file, src, predeclared); err != nil {
				t.Error(FormatError(err))
			}
		})
	}
}
