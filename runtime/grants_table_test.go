package runtime

import (
	"slices"
	"strings"
	"testing"

	"github.com/torscript/torscript/builtins"
)

// TestTableGrants: every grant the builtins' table names is one --allow
// takes, and every builtin that needs one is reported by check.
func TestTableGrants(t *testing.T) {
	for _, e := range builtins.Entries() {
		if e.Grant.Kind == builtins.GrantCommand && !validGrant(e.Grant.Command) {
			t.Errorf("tor.%s needs %q, which is not a grant (%s)", e.Name, e.Grant.Command, grantsHelp)
		}
		f, err := FileOptions().Parse("x.star", "g = tor."+e.Name+"\n", 0)
		if err != nil {
			t.Fatal(err)
		}
		req := ReadRequirements(f)
		if e.Grant.Kind == builtins.GrantNone {
			if len(req.Uses) != 0 {
				t.Errorf("tor.%s needs no grant, check reports %q", e.Name, req.Uses)
			}
			continue
		}
		want := "tor." + e.Name + ": " + e.Grant.String()
		if !slices.Equal(req.Uses, []string{want}) {
			t.Errorf("tor.%s: check reports %q, want %q", e.Name, req.Uses, want)
		}
	}
}

// TestAliasGrants: an alias needs what its target needs, call by call.
func TestAliasGrants(t *testing.T) {
	for _, e := range builtins.Entries() {
		if e.AliasOf == "" {
			continue
		}
		read := func(name string) []string {
			src := "tor." + name + `("ExitNodes")` + "\n"
			f, err := FileOptions().Parse("x.star", src, 0)
			if err != nil {
				t.Fatal(err)
			}
			var uses []string
			for _, u := range ReadRequirements(f).Uses {
				uses = append(uses, strings.TrimPrefix(u, "tor."+name+":"))
			}
			return uses
		}
		if got, want := read(e.Name), read(e.AliasOf); !slices.Equal(got, want) {
			t.Errorf("tor.%s: check reports %q, tor.%s %q", e.Name, got, e.AliasOf, want)
		}
	}
}
