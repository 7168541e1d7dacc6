package builtins

import (
	"reflect"
	"testing"
)

// TestTable checks that the tor module and the table agree: every member
// has an entry, every entry a docstring, a grant (or an explicit none) and
// a completion, and an alias has its target's value, grant and completion.
func TestTable(t *testing.T) {
	tor := NewTor(nil)
	for name := range tor.Module.Members {
		if _, ok := Lookup(name); !ok {
			t.Errorf("tor.%s has no entry in the table", name)
		}
	}
	seen := map[string]bool{}
	for i, e := range Entries() {
		if seen[e.Name] {
			t.Errorf("tor.%s: two entries", e.Name)
		}
		seen[e.Name] = true
		if _, ok := tor.Module.Members[e.Name]; !ok {
			t.Errorf("tor.%s: an entry but no member", e.Name)
		}
		if e.Doc == "" {
			t.Errorf("tor.%s: no docstring", e.Name)
		}
		if e.Grant.Kind == grantUnset || (e.Grant.Kind == GrantCommand) != (e.Grant.Command != "") {
			t.Errorf("tor.%s: grant %+v; want a kind (GrantNone for none), and a command exactly for GrantCommand", e.Name, e.Grant)
		}
		if !completionSet(e.Complete) {
			t.Errorf("tor.%s: completion %+v has an unset part (ArgNone for none)", e.Name, e.Complete)
		}
		if (e.fn == nil) == (e.value == nil) {
			t.Errorf("tor.%s: want a method or a value", e.Name)
		}
		raw := table[i]
		if raw.AliasOf == "" {
			if raw.Doc == "" || raw.Grant != e.Grant {
				t.Errorf("tor.%s: Entries changed an entry that is not an alias", e.Name)
			}
			continue
		}
		if raw.Doc != "" || raw.Grant != (Grant{}) || !reflect.DeepEqual(raw.Complete, Completion{}) || raw.fn != nil || raw.value != nil {
			t.Errorf("tor.%s: an alias says only what it is an alias of", e.Name)
		}
		target, ok := Lookup(e.AliasOf)
		if !ok || target.AliasOf != "" || !seen[target.Name] {
			t.Errorf("tor.%s: alias of %q, which is not an earlier entry of its own", e.Name, e.AliasOf)
			continue
		}
		if e.Grant != target.Grant || !reflect.DeepEqual(e.Complete, target.Complete) {
			t.Errorf("tor.%s: grant %+v, completion %+v; its target tor.%s %+v, %+v", e.Name, e.Grant, e.Complete, target.Name, target.Grant, target.Complete)
		}
		if tor.Module.Members[e.Name] != tor.Module.Members[target.Name] {
			t.Errorf("tor.%s is not the same value as tor.%s", e.Name, target.Name)
		}
	}
}

func completionSet(c Completion) bool {
	for _, a := range c.Args {
		if a == argUnset {
			return false
		}
	}
	return c.Rest != argUnset && c.Keywords != argUnset
}

// TestAliasCompletion: the aliases complete as their targets do, which
// the REPL once forgot for resetconf.
func TestAliasCompletion(t *testing.T) {
	for alias, want := range map[string]Arg{"getinfo": ArgInfoKey, "getconf": ArgConfigKey, "setconf": ArgConfigKey, "resetconf": ArgConfigKey} {
		e, ok := Lookup(alias)
		if !ok || e.Complete.Arg(0) != want {
			t.Errorf("tor.%s: first argument completes as %v, want %v", alias, e.Complete.Arg(0), want)
		}
	}
	if e, _ := Lookup("resetconf"); e.Complete.Keywords != ArgConfigKey || e.Complete.Arg(3) != ArgConfigKey {
		t.Errorf("tor.resetconf: %+v, want config keys for every argument and keyword", e.Complete)
	}
}
