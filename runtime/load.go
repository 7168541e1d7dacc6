package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// StdlibPrefix names modules of the standard library in load().
const StdlibPrefix = "@stdlib/"

// FileOptions are the Starlark dialect scripts are written in.
func FileOptions() *syntax.FileOptions {
	return &syntax.FileOptions{Set: true, While: true, TopLevelControl: true, GlobalReassign: true, Recursion: true}
}

// loader resolves and caches load() targets. A module is executed once, by
// resolved path; a module whose load is in progress is a cycle.
type loader struct {
	stdlib fs.FS
	cache  map[string]*loadEntry
	// root is the directory of the script the user ran: load() reads no
	// file outside it (and the stdlib) unless outside is set (--allow
	// load). "" for no limit.
	root    string
	outside bool
	// exec runs a loaded module's source and returns its globals.
	exec func(thread *starlark.Thread, name string, src []byte) (starlark.StringDict, error)
}

type loadEntry struct {
	globals starlark.StringDict
	err     error
	done    bool
}

// resolve turns a load() argument into a resolved name: "@stdlib/x.star"
// stays as it is; another path is taken relative to the directory of the
// file that loads it.
func resolveModule(from, module string) (string, error) {
	if strings.HasPrefix(module, StdlibPrefix) {
		name := path.Clean(strings.TrimPrefix(module, StdlibPrefix))
		if name == "." || strings.HasPrefix(name, "..") || !strings.HasSuffix(name, ".star") {
			return "", fmt.Errorf("load %q: not a standard library module (want %sNAME.star)", module, StdlibPrefix)
		}
		return StdlibPrefix + name, nil
	}
	if strings.HasPrefix(module, "@") {
		return "", fmt.Errorf("load %q: unknown repository (only %s is known)", module, StdlibPrefix)
	}
	if module == "" {
		return "", errors.New("load: empty module name")
	}
	p := module
	if !filepath.IsAbs(p) {
		dir := "."
		if from != "" && !strings.HasPrefix(from, StdlibPrefix) && !strings.HasPrefix(from, "<") {
			dir = filepath.Dir(from)
		} else if strings.HasPrefix(from, StdlibPrefix) {
			return "", fmt.Errorf("load %q: a standard library module can only load other %s modules", module, StdlibPrefix)
		}
		p = filepath.Join(dir, p)
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	return p, nil
}

// read returns the source of a resolved module.
func (l *loader) read(name string) ([]byte, error) {
	if strings.HasPrefix(name, StdlibPrefix) {
		if l.stdlib == nil {
			return nil, fmt.Errorf("no standard library")
		}
		return fs.ReadFile(l.stdlib, strings.TrimPrefix(name, StdlibPrefix))
	}
	if err := l.inside(name); err != nil {
		return nil, err
	}
	return os.ReadFile(name)
}

// inside checks that a file is in the script's directory tree, symbolic
// links followed.
func (l *loader) inside(name string) error {
	if l.root == "" || l.outside {
		return nil
	}
	real, err := filepath.EvalSymlinks(name)
	if err != nil {
		real = name
	}
	root, err := filepath.EvalSymlinks(l.root)
	if err != nil {
		root = l.root
	}
	if rel, err := filepath.Rel(root, real); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		return nil
	}
	return fmt.Errorf("refused: %s is outside the script's directory %s (run with --allow load to let it read there)", name, l.root)
}

// setRoot limits load() to the directory tree of the script at path (a
// file) or dir.
func (l *loader) setRoot(path string, isDir bool) {
	if !isDir {
		path = filepath.Dir(path)
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	l.root = path
}

// load is the Thread.Load function.
func (l *loader) load(thread *starlark.Thread, module string) (starlark.StringDict, error) {
	from := thread.CallFrame(0).Pos.Filename()
	name, err := resolveModule(from, module)
	if err != nil {
		return nil, err
	}
	if e, ok := l.cache[name]; ok {
		if !e.done {
			return nil, fmt.Errorf("load %q: cycle in load graph (%s is still loading)", module, displayName(name))
		}
		return e.globals, e.err
	}
	e := &loadEntry{}
	l.cache[name] = e
	src, err := l.read(name)
	if err != nil {
		e.err = fmt.Errorf("load %q: %w", module, err)
	} else {
		e.globals, e.err = l.exec(thread, name, src)
		if e.err == nil {
			e.globals.Freeze()
		}
	}
	e.done = true
	return e.globals, e.err
}

func displayName(name string) string {
	if strings.HasPrefix(name, StdlibPrefix) {
		return name
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, name); err == nil && !strings.HasPrefix(rel, "..") {
			return rel
		}
	}
	return name
}
