package ctl

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl/ctltest"
)

// benchFP returns a deterministic upper-case hex fingerprint.
func benchFP(r *rand.Rand) string {
	const digits = "0123456789ABCDEF"
	var b [40]byte
	for i := range b {
		b[i] = digits[r.IntN(16)]
	}
	return string(b[:])
}

// mixedEvents returns a realistic stream of events as tor 0.4.9 writes
// them: the lifecycles of circuits and streams with bandwidth reports, a
// log line and address mappings. It returns the bytes and the number of
// events.
func mixedEvents(sessions int) ([]byte, int) {
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	n := 0
	ev := func(format string, args ...any) {
		fmt.Fprintf(&b, "650 "+format+"\r\n", args...)
		n++
	}
	hosts := []string{"www.example.com", "check.torproject.org", "duckduckgo.com", "93.184.216.34", "[2606:2800:220:1::]"}
	t0 := time.Date(2026, 11, 22, 4, 15, 38, 0, time.UTC)
	for s := 0; s < sessions; s++ {
		circ, stream := 100+s, 1000+s
		var hops [3]string
		for i := range hops {
			hops[i] = fmt.Sprintf("$%s~relay%d", benchFP(r), r.IntN(10000))
		}
		created := t0.Add(time.Duration(s) * 1234567 * time.Microsecond).Format("2006-01-02T15:04:05.000000")
		now := t0.Add(time.Duration(s) * 1500 * time.Millisecond).Format("2006-01-02T15:04:05.000000")
		host := hosts[s%len(hosts)]
		ev("CIRC %d LAUNCHED BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL TIME_CREATED=%s", circ, created)
		ev("ORCONN %s LAUNCHED ID=%d", hops[0], 40+s)
		ev("ORCONN %s CONNECTED ID=%d", hops[0], 40+s)
		ev("CIRC %d EXTENDED %s BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL TIME_CREATED=%s", circ, hops[0], created)
		ev("CIRC %d EXTENDED %s,%s BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL TIME_CREATED=%s", circ, hops[0], hops[1], created)
		ev("CIRC %d BUILT %s,%s,%s BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL TIME_CREATED=%s", circ, hops[0], hops[1], hops[2], created)
		ev("STREAM %d NEW 0 %s:443 SOURCE_ADDR=127.0.0.1:%d PURPOSE=USER CLIENT_PROTOCOL=SOCKS5 NYM_EPOCH=0 SESSION_GROUP=-2 ISO_FIELDS=SOCKS_USERNAME,SOCKS_PASSWORD,CLIENTADDR,SESSION_GROUP,NYM_EPOCH", stream, host, 40000+s%20000)
		ev("STREAM %d SENTCONNECT %d %s:443", stream, circ, host)
		ev("ADDRMAP %s 93.184.216.34 \"2026-11-22 05:00:00\" EXPIRES=\"2026-11-22 05:00:00\" CACHED=\"NO\" STREAMID=%d", host, stream)
		ev("STREAM %d REMAP %d 93.184.216.34:443 SOURCE=EXIT", stream, circ)
		ev("STREAM %d SUCCEEDED %d 93.184.216.34:443", stream, circ)
		for i := 0; i < 3; i++ {
			ev("BW %d %d", r.IntN(1<<20), r.IntN(1<<16))
			ev("STREAM_BW %d %d %d %s", stream, r.IntN(4096), r.IntN(1<<18), now)
			ev("CIRC_BW ID=%d READ=%d WRITTEN=%d TIME=%s DELIVERED_READ=%d OVERHEAD_READ=%d DELIVERED_WRITTEN=%d OVERHEAD_WRITTEN=%d SS=0 CWND=124 RTT=85 MIN_RTT=60",
				circ, r.IntN(1<<18), r.IntN(4096), now, r.IntN(1<<18), r.IntN(4096), r.IntN(4096), r.IntN(512))
		}
		ev("NOTICE Have tried resolving or connecting to address '[scrubbed]' at 3 different places. Giving up.")
		ev("STREAM %d CLOSED %d 93.184.216.34:443 REASON=DONE", stream, circ)
		ev("ORCONN %s CLOSED REASON=DONE NCIRCS=1 ID=%d", hops[0], 40+s)
	}
	return b.Bytes(), n
}

func BenchmarkMixedEvents(b *testing.B) {
	data, perPass := mixedEvents(2000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var unknown int
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		rr := NewReplyReader(bytes.NewReader(data), Limits{})
		for {
			r, err := rr.ReadReply()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if _, ok := ParseEvent(r).(*UnknownEvent); ok {
				unknown++
			}
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if unknown > 0 {
		b.Fatalf("%d events did not parse", unknown)
	}
	n := float64(b.N) * float64(perPass)
	b.ReportMetric(n/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/n, "ns/event")
}

// nsAll returns an ns/all answer for n relays as tor 0.4.9 writes it.
func nsAll(n int) string { return ctltest.NsAll(n) }

func BenchmarkNsAll8000(b *testing.B) {
	doc := nsAll(8000)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		rs, err := ParseRouterStatuses(doc)
		if err != nil || len(rs) != 8000 {
			b.Fatalf("%d entries, %v", len(rs), err)
		}
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(elapsed.Nanoseconds())/1e6/float64(b.N), "ms/parse")
}

// BenchmarkReadReplies is the ReplyReader's share of BenchmarkMixedEvents.
func BenchmarkReadReplies(b *testing.B) {
	data, perPass := mixedEvents(2000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		rr := NewReplyReader(bytes.NewReader(data), Limits{})
		for {
			if _, err := rr.ReadReply(); err != nil {
				break
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(perPass), "ns/event")
}

// BenchmarkParseEvent is ParseEvent's share of BenchmarkMixedEvents.
func BenchmarkParseEvent(b *testing.B) {
	data, _ := mixedEvents(2000)
	replies, err := ParseReplies(data, Limits{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range replies {
			ParseEvent(r)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(replies)), "ns/event")
}
