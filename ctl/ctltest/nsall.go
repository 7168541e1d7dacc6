package ctltest

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
)

// NsAll is an ns/all answer (GETINFO ns/all) for n relays as tor 0.4.9
// writes it: r, a, s, v, pr and w lines, the same for the same n.
func NsAll(n int) string {
	r := rand.New(rand.NewPCG(3, 4))
	var b strings.Builder
	flagSets := []string{
		"Fast Running Stable V2Dir Valid",
		"Fast Guard HSDir Running Stable V2Dir Valid",
		"Exit Fast Guard HSDir Running Stable V2Dir Valid",
		"Exit Fast Running V2Dir Valid",
		"Running Valid",
	}
	versions := []string{"Tor 0.4.8.13", "Tor 0.4.8.16", "Tor 0.4.9.1-alpha", "Tor 0.4.9.3"}
	for i := 0; i < n; i++ {
		var id, digest [20]byte
		for j := range id {
			id[j] = byte(r.IntN(256))
			digest[j] = byte(r.IntN(256))
		}
		fmt.Fprintf(&b, "r relay%d %s %s 2026-11-21 %02d:%02d:%02d %d.%d.%d.%d %d %d\n",
			i, base64.RawStdEncoding.EncodeToString(id[:]), base64.RawStdEncoding.EncodeToString(digest[:]),
			r.IntN(24), r.IntN(60), r.IntN(60), 1+r.IntN(223), r.IntN(256), r.IntN(256), 1+r.IntN(254),
			[]int{443, 9001, 9002, 8443}[r.IntN(4)], []int{0, 0, 80, 9030}[r.IntN(4)])
		if r.IntN(2) == 0 {
			fmt.Fprintf(&b, "a [2001:db8:%x::%x]:%d\n", r.IntN(65536), r.IntN(65536), 9001)
		}
		fmt.Fprintf(&b, "s %s\n", flagSets[r.IntN(len(flagSets))])
		fmt.Fprintf(&b, "v %s\n", versions[r.IntN(len(versions))])
		b.WriteString("pr Conflux=1 Cons=1-2 Desc=1-2 DirCache=2 FlowCtrl=1-2 HSDir=2 HSIntro=4-5 HSRend=1-2 Link=1-5 LinkAuth=1,3 Microdesc=1-2 Padding=2 Relay=1-4\n")
		if r.IntN(10) == 0 {
			fmt.Fprintf(&b, "w Bandwidth=%d Unmeasured=1\n", r.IntN(100))
		} else {
			fmt.Fprintf(&b, "w Bandwidth=%d\n", r.IntN(100000))
		}
	}
	return b.String()
}
