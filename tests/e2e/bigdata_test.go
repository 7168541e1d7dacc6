package e2e

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/torscript/torscript/cmd/torscript/testnet"
	"github.com/torscript/torscript/ctl"
)

// TestBigDataBlocksFromRealTor: tor's multi-line answers (ns/all,
// config-text, info/names, config/defaults, the microdescriptors),
// read on a connection whose every data block takes the path of a big
// one (unstuffed as it is read, no raw text kept), are the same as read
// the ordinary way; their rebuilt text is tor's exact text.
func TestBigDataBlocksFromRealTor(t *testing.T) {
	t.Parallel()
	nd := testnet.Shared(t).Client
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	big, _, err := ctl.Connect(ctx, nd.ControlAddr(), ctl.Credentials{CookieFile: nd.CookiePath()}, ctl.Options{Limits: ctl.Limits{BigData: 8}})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer big.Close()
	plain := dial(t)
	keys := []string{"ns/all", "config-text", "info/names", "config/names", "md/all", "config/defaults", "events/names", "entry-guards", "circuit-status"}
	bigData := 0
	for _, k := range keys {
		want, err := plain.Raw(ctx, "GETINFO "+k)
		if err != nil {
			t.Fatalf("GETINFO %s: %v", k, err)
		}
		got, err := big.Raw(ctx, "GETINFO "+k)
		if err != nil {
			t.Fatalf("GETINFO %s on the big-block connection: %v", k, err)
		}
		if !reflect.DeepEqual(got.Lines, want.Lines) {
			t.Errorf("GETINFO %s: lines differ read as a big block:\n%+v\nwant\n%+v", k, got.Lines, want.Lines)
			continue
		}
		if got.Raw == "" {
			bigData++
			if s := got.String(); s != want.Raw {
				t.Errorf("GETINFO %s: rebuilt text differs from tor's (%d and %d bytes)", k, len(s), len(want.Raw))
			}
		}
	}
	if bigData < 4 {
		t.Errorf("only %d of %d answers took the big path", bigData, len(keys))
	}
}
