package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/torscript/torscript/ctl/ctltest"
)

// Transcript tests: a real *Conn talks to the FakeControlPort, which
// checks every byte the client writes against a recorded transcript and
// sends the recorded replies, once with CRLF line ends and once with bare
// LF. The client's Options.Trace must reproduce the transcript.

// lineEnds are the two line ends tor's replies are read with.
var lineEnds = []struct{ name, eol string }{{"CRLF", "\r\n"}, {"LF", "\n"}}

// playTranscript runs testdata/transcripts/name against run, with each line
// end, and checks the bytes written and the trace.
func playTranscript(t *testing.T, name string, run func(t *testing.T, c *Conn, eol string)) {
	tr := LoadTranscript(t, name)
	for _, le := range lineEnds {
		t.Run(le.name, func(t *testing.T) {
			var trace ctltest.SyncBuffer
			f, c := NewFakeControlPort(t, Options{Trace: &trace})
			done := f.Play(tr, le.eol)
			run(t, c, le.eol)
			waitDone(t, done)
			if got, want := f.Written(), tr.Client(); got != want {
				t.Errorf("client wrote\n%q\nwant\n%q", got, want)
			}
			if got, want := trace.String(), tr.Trace(); got != want {
				t.Errorf("trace\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*fakeTimeout)
	t.Cleanup(cancel)
	return ctx
}

// nextEvent returns the next event from c, failing the test after a while.
func nextEvent(t *testing.T, c *Conn) Event {
	t.Helper()
	select {
	case ev, ok := <-c.Events():
		if !ok {
			t.Fatal("event channel closed")
		}
		return ev
	case <-time.After(fakeTimeout):
		t.Fatal("no event")
	}
	return nil
}

func lineTexts(r *Reply) []string {
	var s []string
	for _, l := range r.Lines {
		s = append(s, fmt.Sprintf("%d%c%s", l.Code, l.Sep, l.Text))
	}
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, err error, code int, msg string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want *Error %d", err, err, code)
	}
	if e.Code != code || (msg != "" && e.Msg != msg) {
		t.Errorf("error %d %q, want %d %q", e.Code, e.Msg, code, msg)
	}
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

func TestTranscriptEventsBetweenCommandAndReply(t *testing.T) {
	playTranscript(t, "events_between.txt", func(t *testing.T, c *Conn, eol string) {
		ctx := ctxT(t)
		must(t, c.SetEvents(ctx, "CIRC"))
		conf, err := c.GetConf(ctx, "SOCKSPORT", "ORPORT")
		must(t, err)
		eq(t, "GETCONF", conf, ConfEntries{{Key: "SOCKSPORT", Value: "9050"}, {Key: "ORPORT", Value: "0"}})
		ev := nextEvent(t, c)
		eq(t, "event type", ev.EventType(), "CIRC")
		eq(t, "event raw", ev.Reply().Raw, "650 CIRC 1000 EXTENDED moria1,moria2"+eol)

		conf, err = c.GetConf(ctx, "SOCKSPORT")
		must(t, err)
		eq(t, "GETCONF", conf, ConfEntries{{Key: "SOCKSPORT", Value: "9050"}})
		ev = nextEvent(t, c)
		eq(t, "event type", ev.EventType(), "CIRC")
		eq(t, "event lines", lineTexts(ev.Reply()), []string{
			"650-CIRC 1000 EXTENDED moria1,moria2 0xBEEF", "650-EXTRAMAGIC=99", "650 ANONYMITY=high"})
	})
}

func TestTranscriptDataEvents(t *testing.T) {
	playTranscript(t, "events_data.txt", func(t *testing.T, c *Conn, eol string) {
		must(t, c.SetEvents(ctxT(t), "NS", "WARN", "AUTHDIR_NEWDESCS", "CLIENTS_SEEN", "CONF_CHANGED"))
		type want struct {
			typ   string
			lines []string
			data  string // of the first line
		}
		for _, w := range []want{
			{"NS", []string{"650+NS", "650 OK"},
				"r moria1 lpXfw1/+uGEym58asExGOXAgzjE 2012-09-10 09:38:20 128.31.0.34 9101 9131\n" +
					"s Authority Fast Running Stable V2Dir Valid\n" +
					".dot-stuffed line"},
			{"WARN", []string{"650+WARN", "650 OK"},
				"first line of a long log message\n\n..after an empty line"},
			{"AUTHDIR_NEWDESCS", []string{"650+AUTHDIR_NEWDESCS", "650 OK"},
				"ACCEPTED\nOK\nrouter moria1 128.31.0.34 9101 0 9131"},
			{"CLIENTS_SEEN", []string{`650-CLIENTS_SEEN TimeStarted="Thu Dec 25 23:50:43 EST 2008"`, "650 CountrySummary=us=16,de=8,uk=8"}, ""},
			{"CONF_CHANGED", []string{"650-CONF_CHANGED", "650-SocksPort=9050", "650-__LeaveStreamsUnattached", "650 OK"}, ""},
		} {
			ev := nextEvent(t, c)
			eq(t, "event type", ev.EventType(), w.typ)
			eq(t, w.typ+" lines", lineTexts(ev.Reply()), w.lines)
			eq(t, w.typ+" data", ev.Reply().Lines[0].Data, w.data)
		}
	})
}

func TestTranscriptEventExamples(t *testing.T) {
	tr := LoadTranscript(t, "events_examples.txt")
	playTranscript(t, "events_examples.txt", func(t *testing.T, c *Conn, eol string) {
		must(t, c.SetEvents(ctxT(t), "CLIENTS_SEEN", "CELL_STATS", "TB_EMPTY"))
		for _, s := range tr.Steps[1 : len(tr.Steps)-1] {
			ev := nextEvent(t, c)
			typ, _, _ := strings.Cut(strings.TrimPrefix(s.text, "650 "), " ")
			eq(t, "event type", ev.EventType(), typ)
			eq(t, "event raw", ev.Reply().Raw, s.text+eol)
		}
	})
}

func TestTranscriptGetInfo(t *testing.T) {
	playTranscript(t, "getinfo.txt", func(t *testing.T, c *Conn, eol string) {
		ctx := ctxT(t)
		m, err := c.GetInfo(ctx, "version", "desc/name/moria1")
		must(t, err)
		// The spec's example answers "desc/name/moria" to a question about
		// moria1; the reply is taken as tor sent it.
		eq(t, "GETINFO", m, map[string]string{
			"desc/name/moria": "[Descriptor for moria]",
			"version":         "Tor 0.1.1.0-alpha-cvs",
		})
		v, err := c.GetInfoOne(ctx, "address-mappings/control")
		must(t, err)
		eq(t, "mappings", v, "1.2.3.4 torproject.org NEVER")
		v, err = c.GetInfoOne(ctx, "address-mappings/control")
		must(t, err)
		eq(t, "mappings", v, "")
		m, err = c.GetInfo(ctx, "config-text", "ns/all")
		must(t, err)
		eq(t, "GETINFO", m, map[string]string{
			"config-text": ".leading dot\n..two leading dots\nSocksPort 9050",
			"ns/all":      "",
		})
	})
}

func TestTranscriptMapAddress(t *testing.T) {
	playTranscript(t, "mapaddress.txt", func(t *testing.T, c *Conn, eol string) {
		ctx := ctxT(t)
		got, err := c.MapAddress(ctx, AddrMap{"1.2.3.4", "torproject.org"})
		must(t, err)
		eq(t, "mapping", got, []AddrMap{{"1.2.3.4", "torproject.org"}})
		got, err = c.MapAddress(ctx, AddrMap{"1.2.3.4", "1.2.3.4"})
		must(t, err)
		eq(t, "unmapping", got, []AddrMap{{"1.2.3.4", "1.2.3.4"}})

		got, err = c.MapAddress(ctx, AddrMap{"xxx", "@@@"}, AddrMap{MapNullIPv4, "bogus1.google.com"})
		eq(t, "mixed reply", got, []AddrMap{{"127.199.80.246", "bogus1.google.com"}})
		wantCode(t, err, 512, "syntax error: invalid address '@@@'")
		if err == nil || !strings.Contains(err.Error(), "MAPADDRESS xxx=@@@: 512 syntax error") {
			t.Errorf("error %v does not name the refused pair", err)
		}

		got, err = c.MapAddress(ctx, AddrMap{"0.0.0.0", "torproject.org"}, AddrMap{"1.2.3.4", "tor.freehaven.net"})
		must(t, err)
		eq(t, "seed example", got, []AddrMap{{"127.192.10.10", "torproject.org"}, {"1.2.3.4", "tor.freehaven.net"}})

		got, err = c.MapAddress(ctx, AddrMap{MapNullHostname, "example.com"}, AddrMap{"::0", "example.org"})
		must(t, err)
		eq(t, "null addresses", got, []AddrMap{{"y2mpoxxr3lk2tmif.virtual", "example.com"}, {"[fe80::7ff2:1f3b:8a44:e1c2]", "example.org"}})

		got, err = c.MapAddress(ctx, AddrMap{"0.0.0.0", "a.example"}, AddrMap{"0.0.0.0", "b.example"})
		eq(t, "exhausted", got, []AddrMap{{"127.200.1.1", "a.example"}})
		wantCode(t, err, 451, "")
		eq(t, "ErrorCode", ErrorCode(err), 451)
	})
}

func TestTranscriptConfig(t *testing.T) {
	playTranscript(t, "config.txt", func(t *testing.T, c *Conn, eol string) {
		ctx := ctxT(t)
		must(t, c.SetConf(ctx,
			ConfEntry{Key: "SocksPort", Value: "9050"},
			ConfEntry{Key: "ContactInfo", Value: "Random Person <nobody AT example dot com>"},
			ConfEntry{Key: "__LeaveStreamsUnattached", Value: "1"}))
		must(t, c.SetConf(ctx,
			ConfEntry{Key: "Nickname", Value: `say "hi"`},
			ConfEntry{Key: "DataDirectory", Value: `C:\tor data`},
			ConfEntry{Key: "ExitPolicy"}))
		must(t, c.ResetConf(ctx,
			ConfEntry{Key: "__LeaveStreamsUnattached"},
			ConfEntry{Key: "SocksPort", Value: "9150"}))

		conf, err := c.GetConf(ctx, "SocksPort", "ControlPort", "Log", "HiddenServiceOptions", "Nickname", "ContactInfo")
		must(t, err)
		eq(t, "GETCONF", conf, ConfEntries{
			{Key: "SocksPort", Value: "9050"},
			{Key: "SocksPort", Value: "127.0.0.1:9150 IsolateDestAddr"},
			{Key: "ControlPort", NoValue: true},
			{Key: "Log", Value: "notice file /var/log/tor/\"notices\".log\tx"},
			{Key: "HiddenServiceDir", Value: "/var/lib/tor/hs"},
			{Key: "HiddenServicePort", Value: "80 127.0.0.1:8080"},
			{Key: "Nickname", Value: ""},
			{Key: "ContactInfo", Value: "Random Person <nobody AT example dot com>"},
		})
		eq(t, "Values(socksport)", conf.Values("socksport"), []string{"9050", "127.0.0.1:9150 IsolateDestAddr"})
		eq(t, "Values(ControlPort)", conf.Values("ControlPort"), []string(nil))
		e, ok := conf.Lookup("controlport")
		eq(t, "Lookup(controlport)", e, ConfEntry{Key: "ControlPort", NoValue: true})
		eq(t, "Lookup(controlport) found", ok, true)
		_, ok = conf.Lookup("ORPort")
		eq(t, "Lookup(ORPort) found", ok, false)

		_, err = c.GetConf(ctx, "Bogus")
		wantCode(t, err, 552, `Unrecognized configuration key "Bogus"`)
		must(t, c.SaveConf(ctx, true))
		wantCode(t, c.SaveConf(ctx, false), 551, "Unable to write configuration to disk.")
		must(t, c.LoadConf(ctx, "SocksPort 9050\n.a line starting with a dot\n\nLog notice stdout\n"))
	})
}

func TestTranscriptOnion(t *testing.T) {
	playTranscript(t, "onion.txt", func(t *testing.T, c *Conn, eol string) {
		ctx := ctxT(t)
		s, err := c.AddOnion(ctx, AddOnionOptions{Flags: []string{"DiscardPK"}, Ports: []OnionPort{{Virt: 80}}})
		must(t, err)
		eq(t, "service", s, &OnionService{ServiceID: "exampleoniont2pqglbny66wpovyvao3ylc23eileodtevc4b75ikpad"})
		s, err = c.AddOnion(ctx, AddOnionOptions{KeyType: "RSA1024", KeyBlob: "MIICXAIBAAKBgQC3",
			Ports: []OnionPort{{Virt: 80, Target: "192.168.1.1:8080"}}})
		must(t, err)
		eq(t, "service", s, &OnionService{ServiceID: "sampleonion12456"})
		s, err = c.AddOnion(ctx, AddOnionOptions{Ports: []OnionPort{{Virt: 22}, {Virt: 80, Target: "8080"}}})
		must(t, err)
		eq(t, "service", s, &OnionService{
			ServiceID:  "sampleonion4t2pqglbny66wpovyvao3ylc23eileodtevc4b75ikpad",
			PrivateKey: "ED25519-V3:[Blob Redacted]"})
		s, err = c.AddOnion(ctx, AddOnionOptions{KeyBlob: "RSA1024", Flags: []string{"DiscardPK", "BasicAuth"},
			Ports:      []OnionPort{{Virt: 22}},
			ClientAuth: []OnionClientAuth{{Name: "alice", Blob: "fMtoFOnDcLkHhSTFS9rV5g"}, {Name: "bob"}}})
		must(t, err)
		eq(t, "service", s, &OnionService{ServiceID: "testonion1234567",
			ClientAuth: []OnionClientAuth{{Name: "bob", Blob: "[Blob Redacted]"}}})
		s, err = c.AddOnion(ctx, AddOnionOptions{KeyType: "NEW", KeyBlob: "ED25519-V3", Ports: []OnionPort{{Virt: 22}},
			ClientAuthV3: []string{"MZXW6YTBOI3DGNBVGY3TQOJQGEZA"}})
		must(t, err)
		eq(t, "service", s, &OnionService{ServiceID: "n35etu3yjxrqjpntmfziom5sjwspoydchmelc4xleoy4jk2u4lziz2yd",
			ClientAuthV3: []string{"[Blob Redacted]"}})
		_, err = c.AddOnion(ctx, AddOnionOptions{Flags: []string{"DiscardPK", "NonAnonymous"}, Ports: []OnionPort{{Virt: 22}}})
		wantCode(t, err, 512, "Tor is in anonymous hidden service mode")

		must(t, c.DelOnion(ctx, "exampleoniont2pqglbny66wpovyvao3ylc23eileodtevc4b75ikpad.onion"))
		wantCode(t, c.DelOnion(ctx, "sampleonion12456"), 552, "Unknown Onion Service id")

		must(t, c.HSFetch(ctx, "v2-gezdgnbvgy3tqolbmjrwizlgm5ugs2tl", "9695DFC35FFEB861329B9F1AB04C46397020CE31"))
		must(t, c.HSFetch(ctx, "ajkhdsfuygaesfaa"))
		must(t, c.HSFetch(ctx, "vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd.onion"))
		must(t, c.HSPost(ctx, "[DESCRIPTOR]", HSPostOptions{Servers: []string{"9695DFC35FFEB861329B9F1AB04C46397020CE31"}}))

		const v3a = "vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd"
		const v3b = "n35etu3yjxrqjpntmfziom5sjwspoydchmelc4xleoy4jk2u4lziz2yd"
		done, err := c.OnionClientAuthAdd(ctx, OnionClientCred{HSAddress: v3a,
			PrivateKey: "aGVsbG8gd29ybGQgdGhpcyBpcyBhIGtleSEhISE=", ClientName: "alice", Flags: []string{"Permanent"}})
		must(t, err)
		eq(t, "ONION_CLIENT_AUTH_ADD", done, Completion{252, "Registered client and decrypted desc"})
		creds, err := c.OnionClientAuthView(ctx, "")
		must(t, err)
		eq(t, "ONION_CLIENT_AUTH_VIEW", creds, []OnionClientCred{
			{HSAddress: v3a, KeyType: "x25519", PrivateKey: "aGVsbG8gd29ybGQgdGhpcyBpcyBhIGtleSEhISE=", ClientName: "alice", Flags: []string{"Permanent"}},
			{HSAddress: v3b, KeyType: "x25519", PrivateKey: "b3RoZXIga2V5IG9mIDMyIGJ5dGVzIGxvbmcgISE=", ClientName: "bob"},
		})
		done, err = c.OnionClientAuthRemove(ctx, v3b)
		must(t, err)
		eq(t, "ONION_CLIENT_AUTH_REMOVE", done, Completion{251, `No credentials for "` + v3b + `"`})
	})
}

func TestTranscriptCircuitsAndStreams(t *testing.T) {
	playTranscript(t, "circuits_streams.txt", func(t *testing.T, c *Conn, eol string) {
		ctx := ctxT(t)
		id, err := c.ExtendCircuit(ctx, "0", nil, "")
		must(t, err)
		eq(t, "circuit", id, "1000")
		id, err = c.ExtendCircuit(ctx, "0", []string{"$9695DFC35FFEB861329B9F1AB04C46397020CE31~moria1", "tor26"}, "controller")
		must(t, err)
		eq(t, "circuit", id, "1001")
		ev := nextEvent(t, c)
		eq(t, "event", ev.Reply().Raw, "650 CIRC 1001 LAUNCHED PURPOSE=CONTROLLER"+eol)
		_, err = c.ExtendCircuit(ctx, "1000", []string{"moria2"}, "")
		wantCode(t, err, 552, `Unknown circuit "1000"`)
		must(t, c.SetCircuitPurpose(ctx, "1001", "general"))
		wantCode(t, c.AttachStream(ctx, "42", "1001", 0), 552, `Unknown stream "42"`)
		must(t, c.AttachStream(ctx, "43", "1001", 2))
		wantCode(t, c.AttachStream(ctx, "44", "0", 0), 555, "Connection is not managed by controller.")
		must(t, c.RedirectStream(ctx, "43", "www.torproject.org", 443))
		must(t, c.CloseStream(ctx, "43", RelayEndExitPolicy))
		must(t, c.Resolve(ctx, []string{"1.2.3.4"}, true))
		must(t, c.CloseCircuit(ctx, "1001", true))
		must(t, c.Signal(ctx, SignalNewNym))
		wantCode(t, c.Signal(ctx, "BOGUS"), 552, `Unrecognized signal code "BOGUS"`)
		must(t, c.UseFeature(ctx, "EXTENDED_EVENTS", "VERBOSE_NAMES"))
		must(t, c.TakeOwnership(ctx))
		must(t, c.DropOwnership(ctx))
		must(t, c.DropGuards(ctx))
		must(t, c.DropTimeouts(ctx))
		ev = nextEvent(t, c)
		eq(t, "event", ev.EventType(), "BUILDTIMEOUT_SET")
		must(t, c.Quit(ctx))
		select {
		case <-c.Done():
		case <-time.After(fakeTimeout):
			t.Fatal("connection still up after QUIT")
		}
		if err := c.DropGuards(ctx); err == nil {
			t.Error("command after QUIT succeeded")
		}
	})
}

// TestTranscriptProtocolInfo parses a PROTOCOLINFO reply with ParseReplies
// alone: no connection.
func TestTranscriptProtocolInfo(t *testing.T) {
	tr := LoadTranscript(t, "protocolinfo.txt")
	for _, le := range lineEnds {
		t.Run(le.name, func(t *testing.T) {
			raw := tr.Server(le.eol)
			rs, err := ParseReplies([]byte(raw), Limits{})
			must(t, err)
			if len(rs) != 1 {
				t.Fatalf("%d replies, want 1", len(rs))
			}
			r := rs[0]
			eq(t, "raw", r.Raw, raw)
			eq(t, "code", r.Code(), 250)
			eq(t, "lines", lineTexts(r), []string{
				"250-PROTOCOLINFO 1",
				`250-AUTH METHODS=COOKIE,SAFECOOKIE,HASHEDPASSWORD COOKIEFILE="/var/run/tor/control.authcookie"`,
				`250-VERSION Tor="0.4.8.9" OPTIONAL-FUTURE=1`,
				"250-FUTUREKEYWORD some text",
				"250 OK",
			})
			_, cookie, _ := strings.Cut(r.Lines[1].Text, "COOKIEFILE=")
			v, rest, err := Unquote(cookie)
			must(t, err)
			eq(t, "cookie file", v, "/var/run/tor/control.authcookie")
			eq(t, "after cookie file", rest, "")
		})
	}
}

// TestReplyLineEndsMixed reads one reply whose lines end in CRLF and bare
// LF, data block included.
func TestReplyLineEndsMixed(t *testing.T) {
	f, c := NewFakeControlPort(t, Options{})
	go func() {
		f.Expect("GETINFO a b\r\n")
		f.Send("250-a=1\n250+b=\r\nx\n..y\r\n.\n250 OK\r\n")
	}()
	m, err := c.GetInfo(ctxT(t), "a", "b")
	must(t, err)
	eq(t, "GETINFO", m, map[string]string{"a": "1", "b": "x\n.y"})
}

// TestPipelining issues many commands from many goroutines at once; the
// fake answers only when all are written, in the order it read them, with
// events in between. Each caller must get its own answer.
func TestPipelining(t *testing.T) {
	const n = 64
	f, c := NewFakeControlPort(t, Options{})
	go func() {
		var cmds []string
		for range n {
			cmd, ok := f.NextCommand()
			if !ok {
				t.Error("fake: client hung up")
				return
			}
			cmds = append(cmds, cmd)
		}
		var b strings.Builder
		for i, cmd := range cmds {
			key := strings.TrimSuffix(strings.TrimPrefix(cmd, "GETCONF "), "\r\n")
			if i%8 == 0 {
				fmt.Fprintf(&b, "650 NOTICE between replies %d\r\n", i)
			}
			fmt.Fprintf(&b, "250-%s=first\r\n250 %s=%s\r\n", key, key, strings.TrimPrefix(key, "Key"))
		}
		f.Send(b.String())
	}()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			key := fmt.Sprintf("Key%d", i)
			conf, err := c.GetConf(ctxT(t), key)
			if err != nil {
				t.Error(err)
				return
			}
			want := ConfEntries{{Key: key, Value: "first"}, {Key: key, Value: fmt.Sprint(i)}}
			if !reflect.DeepEqual(conf, want) {
				t.Errorf("%s got %v, want %v", key, conf, want)
			}
		})
	}
	wg.Wait()
	for i := 0; i < n; i += 8 {
		ev := nextEvent(t, c)
		eq(t, "event", ev.Reply().Text(), fmt.Sprintf("NOTICE between replies %d", i))
	}
}

// TestReadErrorIsSticky: a read error fails every pending command and every
// later one, which writes nothing.
func TestReadErrorIsSticky(t *testing.T) {
	f, c := NewFakeControlPort(t, Options{})
	const n = 5
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- c.SetConf(ctxT(t), ConfEntry{Key: fmt.Sprintf("K%d", i), Value: "1"}) }()
	}
	for range n {
		if _, ok := f.NextCommand(); !ok {
			t.Fatal("fake: client hung up")
		}
	}
	written := f.Written()
	f.FailReads(errInjected)
	for range n {
		if err := <-errs; !errors.Is(err, errInjected) {
			t.Errorf("pending command: %v, want the read error", err)
		}
	}
	<-c.Done()
	if !errors.Is(c.Err(), errInjected) {
		t.Errorf("Err() = %v", c.Err())
	}
	if err := c.SetConf(ctxT(t), ConfEntry{Key: "Later", Value: "1"}); !errors.Is(err, errInjected) {
		t.Errorf("later command: %v, want the read error", err)
	}
	eq(t, "written", f.Written(), written)
	if _, ok := <-c.Events(); ok {
		t.Error("event channel still open")
	}
}

// TestEOFInsideReply: tor hanging up inside a reply is an unexpected EOF
// for the command waiting for it.
func TestEOFInsideReply(t *testing.T) {
	for _, partial := range []string{"250-SocksPort=9050\r\n", "250+config-text=\r\nSocksPort 9050\r\n", "250 SocksPo"} {
		t.Run(partial, func(t *testing.T) {
			f, c := NewFakeControlPort(t, Options{})
			go func() {
				f.Expect("GETCONF SocksPort\r\n")
				f.Send(partial)
				f.Hangup()
			}()
			_, err := c.GetConf(ctxT(t), "SocksPort")
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("got %v, want unexpected EOF", err)
			}
		})
	}
	// Between replies, EOF is tor closing the connection.
	f, c := NewFakeControlPort(t, Options{})
	go func() {
		f.Expect("GETCONF SocksPort\r\n")
		f.Hangup()
	}()
	_, err := c.GetConf(ctxT(t), "SocksPort")
	if !errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("got %v, want EOF", err)
	}
}

// TestCommandDeadline: a command whose context ends returns at once; its
// reply, arriving later, is discarded and later replies still reach the
// right commands.
func TestCommandDeadline(t *testing.T) {
	f, c := NewFakeControlPort(t, Options{})
	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.GetConf(short, "Slow")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > fakeTimeout {
		t.Errorf("deadline took %v", d)
	}
	if !strings.HasPrefix(err.Error(), "GETCONF: ") {
		t.Errorf("error %q does not name the command", err)
	}
	got := make(chan ConfEntries)
	go func() {
		conf, err := c.GetConf(ctxT(t), "Fast")
		if err != nil {
			t.Error(err)
		}
		got <- conf
	}()
	f.Expect("GETCONF Slow\r\nGETCONF Fast\r\n")
	f.Send("250 Slow=1\r\n250 Fast=2\r\n")
	eq(t, "later command", <-got, ConfEntries{{Key: "Fast", Value: "2"}})

	// Options.Timeout bounds a command whose context has no deadline.
	f2, c2 := NewFakeControlPort(t, Options{Timeout: 50 * time.Millisecond})
	if err := c2.DropGuards(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want deadline exceeded", err)
	}
	f2.Expect("DROPGUARDS\r\n")
}

// TestLimits: a line or a reply over the limit is a *ProtocolError for the
// command waiting, and ends the connection.
func TestLimits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lim   Limits
		reply string
	}{
		{"line", Limits{MaxLineBytes: 64}, "250 version=" + strings.Repeat("x", 100) + "\r\n"},
		// Without a line end the limit is seen once the reader's buffer
		// (64 KiB) is full.
		{"line without end", Limits{MaxLineBytes: 64}, "250 version=" + strings.Repeat("x", 70000)},
		{"data line", Limits{MaxLineBytes: 64}, "250+version=\r\n" + strings.Repeat("x", 100) + "\r\n.\r\n250 OK\r\n"},
		{"reply", Limits{MaxReplyBytes: 100}, strings.Repeat("250-version=xxxxxxxxxxxxxxxxxxxx\r\n", 5) + "250 OK\r\n"},
		{"data block", Limits{MaxReplyBytes: 100}, "250+version=\r\n" + strings.Repeat("xxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n", 5) + ".\r\n250 OK\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, c := NewFakeControlPort(t, Options{Limits: tc.lim})
			go func() {
				f.Expect("GETINFO version\r\n")
				f.FakeControlPort.Send([]byte(tc.reply)) // the client may stop reading
			}()
			_, err := c.GetInfo(ctxT(t), "version")
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v (%T), want *ProtocolError", err, err)
			}
			<-c.Done()
			if !errors.As(c.Err(), &pe) {
				t.Errorf("Err() = %v", c.Err())
			}
		})
	}
	// Just under the limits is fine.
	f, c := NewFakeControlPort(t, Options{Limits: Limits{MaxLineBytes: 20, MaxReplyBytes: 40}})
	go func() {
		f.Expect("GETINFO v\r\n")
		f.Send("250-v=123456789012\r\n250 OK\r\n") // 20 + 8 bytes
	}()
	m, err := c.GetInfo(ctxT(t), "v")
	must(t, err)
	eq(t, "value", m["v"], "123456789012")
}

// TestReplyWithNoCommandPending: a reply tor sends unasked is a protocol
// error that ends the connection.
func TestReplyWithNoCommandPending(t *testing.T) {
	f, c := NewFakeControlPort(t, Options{})
	f.Send("650 CIRC 1 LAUNCHED\r\n") // an event is fine
	f.Send("250 OK\r\n")
	select {
	case <-c.Done():
	case <-time.After(fakeTimeout):
		t.Fatal("connection still up")
	}
	var pe *ProtocolError
	if !errors.As(c.Err(), &pe) || pe.Line != "OK" {
		t.Fatalf("Err() = %#v, want the protocol error for %q", c.Err(), "250 OK")
	}
	err := c.DropGuards(ctxT(t))
	if !errors.As(err, &pe) {
		t.Errorf("later command: %v", err)
	}
	eq(t, "written", f.Written(), "")
	ev := nextEvent(t, c)
	eq(t, "event", ev.EventType(), "CIRC")
}

// TestMalformedReplyLine: a line without a status code ends the connection
// with a *ProtocolError, distinct from tor's *Error.
func TestMalformedReplyLine(t *testing.T) {
	for _, bad := range []string{"hello\r\n", "25\r\n", "250\r\n", "250*OK\r\n", "2x0 OK\r\n"} {
		f, c := NewFakeControlPort(t, Options{})
		go func() {
			f.Expect("DROPGUARDS\r\n")
			f.Send(bad)
		}()
		err := c.DropGuards(ctxT(t))
		var pe *ProtocolError
		var te *Error
		if !errors.As(err, &pe) || errors.As(err, &te) {
			t.Errorf("%q: got %v (%T), want only a *ProtocolError", bad, err, err)
		}
	}
}
