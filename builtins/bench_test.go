package builtins

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl"
	"github.com/torscript/torscript/ctl/ctltest"
	"go.starlark.net/starlark"
)

// BenchmarkNsAll8000 is tor.get_info("ns/all") and tor.routers() for
// 8,000 relays end to end through Starlark: the command on a real
// connection to ctl's fake control port, tor's data reply read and parsed,
// and the Starlark values made (issue target: 20 ms each).
func BenchmarkNsAll8000(b *testing.B) {
	doc := ctltest.NsAll(8000)
	var r strings.Builder
	r.WriteString("250+ns/all=\r\n")
	for _, l := range strings.Split(strings.TrimSuffix(doc, "\n"), "\n") {
		r.WriteString(l + "\r\n")
	}
	r.WriteString(".\r\n250 OK\r\n")
	reply := []byte(r.String())
	p, nc := ctltest.DialScripted(b)
	go func() {
		for {
			if _, ok := p.NextCommand(time.Minute); !ok {
				return
			}
			if p.Send(reply) != nil {
				return
			}
		}
	}()
	c := ctl.NewConn(nc, ctl.Options{})
	b.Cleanup(func() { c.Close() })
	tor := NewTor(newFakeHost(b, c))
	thread := &starlark.Thread{Name: "bench"}
	SetContext(thread, context.Background())
	for _, tc := range []struct {
		name string
		call string
		args starlark.Tuple
	}{
		{"get_info", "get_info", starlark.Tuple{starlark.String("ns/all")}},
		{"routers", "routers", nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			fn := tor.Module.Members[tc.call]
			b.ReportAllocs()
			for b.Loop() {
				v, err := starlark.Call(thread, fn, tc.args, nil)
				if err != nil {
					b.Fatal(err)
				}
				if l, ok := v.(*starlark.List); ok && l.Len() != 8000 {
					b.Fatalf("%d routers", l.Len())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e6/float64(b.N), "ms/call")
		})
	}
}
