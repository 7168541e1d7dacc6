package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
	"github.com/torscript/torscript/ctl"
)

// TestStdlibPathsReadTorsRules: paths.rules() reads the client's own
// settings (the private network turns EnforceDistinctSubnets off, as
// TestingTorNetwork does, since all its relays are on 127.0.0.1), and a
// circuits.pool never draws a relay ExcludeNodes names, nor an exit
// ExcludeExitNodes names.
func TestStdlibPathsReadTorsRules(t *testing.T) {
	n := testnet.Shared(t)
	c := dial(t)
	ctx := testCtx(t, 60*time.Second)
	rel, ex := n.Relays(), n.Exits()
	excluded, exitExcluded := rel[0].Name, ex[0].Name
	if err := c.SetConf(ctx, ctl.ConfEntry{Key: "ExcludeNodes", Value: excluded}, ctl.ConfEntry{Key: "ExcludeExitNodes", Value: exitExcluded}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.ResetConf(ctx, ctl.ConfEntry{Key: "ExcludeNodes"}, ctl.ConfEntry{Key: "ExcludeExitNodes"}); err != nil {
			t.Errorf("resetting ExcludeNodes: %v", err)
		}
	})
	src := `
load("@stdlib/circuits.star", "circuits")
load("@stdlib/paths.star", "paths")
rules = paths.rules()
print("distinct", rules.distinct_subnets)
print("excluded", rules.excluded(tor.router("` + excluded + `")), rules.excluded(tor.router("` + exitExcluded + `")), rules.excluded(tor.router("` + exitExcluded + `"), exit = True))
p = circuits.pool(size = 1, fingerprints = [` + quoteNames(stdExitNames(n)) + `])
seen = {}
for _ in range(100):
    for i, h in enumerate(p.path()):
        seen[(h.nickname, i == 2)] = True
print("excluded used", ("` + excluded + `", False) in seen or ("` + excluded + `", True) in seen, ("` + exitExcluded + `", True) in seen)
print("exits used", sorted([k[0] for k in seen if k[1]]))
exit(0)  # the pool's timers would keep the script running
`
	out, err := cli(ctx, t, "eval", src).CombinedOutput()
	if err != nil {
		t.Fatalf("torscript eval: %v\n%s", err, out)
	}
	got := string(out)
	for _, line := range []string{
		"distinct False",
		"excluded True False True",
		"excluded used False False",
		`exits used ["` + ex[1].Name + `"]`,
	} {
		if !strings.Contains(got, line) {
			t.Errorf("output lacks %q:\n%s", line, got)
		}
	}
}

func quoteNames(names []string) string {
	q := make([]string, len(names))
	for i, s := range names {
		q[i] = `"` + s + `"`
	}
	return strings.Join(q, ", ")
}
