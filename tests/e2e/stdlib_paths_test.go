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

// TestStdlibPoolNeverSharesAFamily: the private network's last two middle
// relays declare each other in MyFamily. tor.router shows the effective
// family from their descriptors, and a circuits.pool never puts both on
// one circuit; without tor's rules (tor_rules=False) it does. Circuits of
// four hops, and the authorities excluded: their bandwidth is ten times
// the relays', and with them the family pair shared a circuit in fewer
// than one path in a hundred, too few for 300 draws to show it surely.
// Without them a path holds three of the four relays besides its exit.
func TestStdlibPoolNeverSharesAFamily(t *testing.T) {
	n := testnet.Shared(t)
	rel := n.Relays()
	a, b := rel[len(rel)-2].Name, rel[len(rel)-1].Name
	var auths []string
	for _, nd := range n.Authorities() {
		auths = append(auths, nd.Name)
	}
	ctx := testCtx(t, 60*time.Second)
	src := `
load("@stdlib/circuits.star", "circuits")
A, B = "` + a + `", "` + b + `"
ra, rb = tor.router(A), tor.router(B)
print("family", ra.effective_family == (rb.fingerprint,), rb.effective_family == (ra.fingerprint,))
def together(pool):
    n, built = 0, 0
    for _ in range(300):
        p = pool.path()
        if p == None:
            continue
        built += 1
        names = [h.nickname for h in p]
        if A in names and B in names:
            n += 1
    return n, built == 300
exits = [` + quoteNames(stdExitNames(n)) + `]
auths = [` + quoteNames(auths) + `]
print("with rules", together(circuits.pool(size = 1, fingerprints = exits, exclude = auths, path_len = 4)))
n, built = together(circuits.pool(size = 1, fingerprints = exits, exclude = auths, path_len = 4, tor_rules = False))
print("without rules", n > 0, built)
exit(0)
`
	out, err := cli(ctx, t, "eval", src).CombinedOutput()
	if err != nil {
		t.Fatalf("torscript eval: %v\n%s", err, out)
	}
	got := string(out)
	for _, line := range []string{"family True True", "with rules (0, True)", "without rules True True"} {
		if !strings.Contains(got, line) {
			t.Errorf("output lacks %q:\n%s", line, got)
		}
	}
}
