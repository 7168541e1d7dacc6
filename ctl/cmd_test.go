package ctl

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// exchange runs call against a fresh FakeControlPort that expects the
// client to write want and then answers reply.
func exchange(t *testing.T, want, reply string, call func(ctx context.Context, c *Conn) error) error {
	t.Helper()
	f, c := NewFakeControlPort(t, Options{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if f.Expect(want) {
			f.Send(reply)
		} else {
			f.Hangup()
		}
	}()
	err := call(ctxT(t), c)
	waitDone(t, done)
	if got := f.Written(); got != want {
		t.Errorf("client wrote %q, want %q", got, want)
	}
	return err
}

// TestCommandBytes checks the exact bytes of every typed command.
func TestCommandBytes(t *testing.T) {
	for _, tc := range []struct {
		want string
		call func(ctx context.Context, c *Conn) error
	}{
		{"SETCONF SocksPort=9050\r\n", func(ctx context.Context, c *Conn) error {
			return c.SetConf(ctx, ConfEntry{Key: "SocksPort", Value: "9050"})
		}},
		{`SETCONF ContactInfo="with \"quotes\" and \\ backslash" Log="notice stdout" Nickname X="a=b" Y="#c" Z="it's" T="tab` + "\t" + `" U="caf` + "\xc3\xa9" + `" V="vt` + "\v" + `x" ORPort` + "\r\n",
			func(ctx context.Context, c *Conn) error {
				return c.SetConf(ctx,
					ConfEntry{Key: "ContactInfo", Value: `with "quotes" and \ backslash`},
					ConfEntry{Key: "Log", Value: "notice stdout"},
					ConfEntry{Key: "Nickname"}, // an empty value is sent as the bare key
					ConfEntry{Key: "X", Value: "a=b"},
					ConfEntry{Key: "Y", Value: "#c"},
					ConfEntry{Key: "Z", Value: "it's"},
					ConfEntry{Key: "T", Value: "tab\t"},
					ConfEntry{Key: "U", Value: "café"},
					ConfEntry{Key: "V", Value: "vt\vx"},
					ConfEntry{Key: "ORPort", NoValue: true})
			}},
		{"RESETCONF __OwningControllerProcess\r\n", func(ctx context.Context, c *Conn) error {
			return c.ResetConf(ctx, ConfEntry{Key: "__OwningControllerProcess"})
		}},
		{"SAVECONF\r\n", func(ctx context.Context, c *Conn) error { return c.SaveConf(ctx, false) }},
		{"SAVECONF FORCE\r\n", func(ctx context.Context, c *Conn) error { return c.SaveConf(ctx, true) }},
		{"+LOADCONF\r\nSocksPort 0\r\n..\r\n...\r\n.\r\n", func(ctx context.Context, c *Conn) error {
			return c.LoadConf(ctx, "SocksPort 0\r\n.\n..")
		}},
		{"+LOADCONF\r\n.\r\n", func(ctx context.Context, c *Conn) error { return c.LoadConf(ctx, "") }},
		{"SETEVENTS\r\n", func(ctx context.Context, c *Conn) error { return c.SetEvents(ctx) }},
		{"SETEVENTS STREAM CIRC STATUS_CLIENT\r\n", func(ctx context.Context, c *Conn) error {
			return c.SetEvents(ctx, "STREAM", "CIRC", "STATUS_CLIENT")
		}},
		{"SETEVENTS EXTENDED CIRC\r\n", func(ctx context.Context, c *Conn) error { return c.SetEventsExtended(ctx, "CIRC") }},
		{"SIGNAL CLEARDNSCACHE\r\n", func(ctx context.Context, c *Conn) error { return c.Signal(ctx, SignalClearDNSCache) }},
		{"SIGNAL USR1\r\n", func(ctx context.Context, c *Conn) error { return c.Signal(ctx, SignalUsr1) }},
		{"MAPADDRESS 0.0.0.0=a.example ::=b.example .=c.example\r\n", func(ctx context.Context, c *Conn) error {
			_, err := c.MapAddress(ctx, AddrMap{"0.0.0.0", "a.example"}, AddrMap{"::0", "b.example"}, AddrMap{".", "c.example"})
			return err
		}},
		{"EXTENDCIRCUIT 12 $9695DFC35FFEB861329B9F1AB04C46397020CE31=moria1,$7BE683E65D48141321C5ED92F075C55364AC7123\r\n", func(ctx context.Context, c *Conn) error {
			_, err := c.ExtendCircuit(ctx, "12", []string{"$9695DFC35FFEB861329B9F1AB04C46397020CE31=moria1", "$7BE683E65D48141321C5ED92F075C55364AC7123"}, "")
			return err
		}},
		{"EXTENDCIRCUIT 0 purpose=controller\r\n", func(ctx context.Context, c *Conn) error {
			_, err := c.ExtendCircuit(ctx, "0", nil, "controller")
			return err
		}},
		{"SETROUTERPURPOSE moria1 bridge\r\n", func(ctx context.Context, c *Conn) error {
			return c.SetRouterPurpose(ctx, "moria1", "bridge")
		}},
		{"CLOSECIRCUIT 5\r\n", func(ctx context.Context, c *Conn) error { return c.CloseCircuit(ctx, "5", false) }},
		{"ATTACHSTREAM 9 0\r\n", func(ctx context.Context, c *Conn) error { return c.AttachStream(ctx, "9", "0", 0) }},
		{"REDIRECTSTREAM 9 [2001:db8::1]\r\n", func(ctx context.Context, c *Conn) error {
			return c.RedirectStream(ctx, "9", "[2001:db8::1]", 0)
		}},
		{"CLOSESTREAM 9 200 SomeFlag\r\n", func(ctx context.Context, c *Conn) error {
			return c.CloseStream(ctx, "9", RelayEndReason(200), "SomeFlag")
		}},
		{"CLOSESTREAM 9 14\r\n", func(ctx context.Context, c *Conn) error { return c.CloseStream(ctx, "9", RelayEndNotDirectory) }},
		{"RESOLVE www.torproject.org example.com\r\n", func(ctx context.Context, c *Conn) error {
			return c.Resolve(ctx, []string{"www.torproject.org", "example.com"}, false)
		}},
		{"USEFEATURE\r\n", func(ctx context.Context, c *Conn) error { return c.UseFeature(ctx) }},
		{"+POSTDESCRIPTOR purpose=bridge cache=no\r\nrouter x 1.2.3.4 9001 0 0\r\n..sig\r\n.\r\n", func(ctx context.Context, c *Conn) error {
			_, err := c.PostDescriptor(ctx, "router x 1.2.3.4 9001 0 0\n.sig\n", PostDescriptorOptions{Purpose: "bridge", Cache: "no"})
			return err
		}},
		{"+POSTDESCRIPTOR\r\nrouter x\r\n.\r\n", func(ctx context.Context, c *Conn) error {
			_, err := c.PostDescriptor(ctx, "router x", PostDescriptorOptions{})
			return err
		}},
		{"+HSPOST SERVER=$9695DFC35FFEB861329B9F1AB04C46397020CE31 SERVER=$7BE683E65D48141321C5ED92F075C55364AC7123 HSADDRESS=vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd\r\nhs-descriptor 3\r\n.\r\n",
			func(ctx context.Context, c *Conn) error {
				return c.HSPost(ctx, "hs-descriptor 3", HSPostOptions{
					Servers:   []string{"$9695DFC35FFEB861329B9F1AB04C46397020CE31", "$7BE683E65D48141321C5ED92F075C55364AC7123"},
					HSAddress: "vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd.onion"})
			}},
		{"ADD_ONION ED25519-V3:Zm9vYmFy+/= Flags=Detach,MaxStreamsCloseCircuit MaxStreams=10 Port=443,unix:/run/web.sock\r\n", func(ctx context.Context, c *Conn) error {
			_, err := c.AddOnion(ctx, AddOnionOptions{KeyType: "ED25519-V3", KeyBlob: "Zm9vYmFy+/=",
				Flags: []string{"Detach", "MaxStreamsCloseCircuit"}, MaxStreams: 10,
				Ports: []OnionPort{{Virt: 443, Target: "unix:/run/web.sock"}}})
			return err
		}},
		{"ONION_CLIENT_AUTH_VIEW vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd\r\n", func(ctx context.Context, c *Conn) error {
			_, err := c.OnionClientAuthView(ctx, "vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd")
			return err
		}},
		{"ONION_CLIENT_AUTH_ADD vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd x25519:a2V5\r\n", func(ctx context.Context, c *Conn) error {
			_, err := c.OnionClientAuthAdd(ctx, OnionClientCred{HSAddress: "vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd", PrivateKey: "a2V5"})
			return err
		}},
	} {
		name, _, _ := strings.Cut(strings.TrimPrefix(tc.want, "+"), " ")
		t.Run(strings.TrimSpace(name), func(t *testing.T) {
			reply := "250 OK\r\n"
			if strings.HasPrefix(tc.want, "MAPADDRESS") {
				reply = "250-127.0.0.2=a.example\r\n250-[::2]=b.example\r\n250 x.virtual=c.example\r\n"
			}
			if strings.HasPrefix(tc.want, "EXTENDCIRCUIT") {
				reply = "250 EXTENDED 12\r\n"
			}
			if strings.HasPrefix(tc.want, "ADD_ONION") {
				reply = "250-ServiceID=abc\r\n250 OK\r\n"
			}
			if err := exchange(t, tc.want, reply, tc.call); err != nil {
				t.Errorf("error %v", err)
			}
		})
	}
}

// TestCommandErrorsFromTor: tor's refusals are *Error with tor's code and
// text, unchanged.
func TestCommandErrorsFromTor(t *testing.T) {
	err := exchange(t, "ATTACHSTREAM 42 7\r\n", "552 Unknown stream \"42\"\r\n", func(ctx context.Context, c *Conn) error {
		return c.AttachStream(ctx, "42", "7", 0)
	})
	wantCode(t, err, 552, `Unknown stream "42"`)
	eq(t, "message", err.Error(), `552 Unknown stream "42"`)

	err = exchange(t, "SETCONF Bogus=1\r\n", "552 Unrecognized option: Unknown option 'Bogus'.  Failing.\r\n", func(ctx context.Context, c *Conn) error {
		return c.SetConf(ctx, ConfEntry{Key: "Bogus", Value: "1"})
	})
	wantCode(t, err, 552, "Unrecognized option: Unknown option 'Bogus'.  Failing.")

	err = exchange(t, "+POSTDESCRIPTOR\r\nbad\r\n.\r\n", "554 Could not parse descriptor\r\n", func(ctx context.Context, c *Conn) error {
		_, err := c.PostDescriptor(ctx, "bad", PostDescriptorOptions{})
		return err
	})
	wantCode(t, err, 554, "Could not parse descriptor")

	// 251 is not an error: tor declined, and says why.
	var got Completion
	err = exchange(t, "+POSTDESCRIPTOR\r\nold\r\n.\r\n", "251 Not replacing router descriptor; no information has changed since the last one with this identity.\r\n", func(ctx context.Context, c *Conn) (err error) {
		got, err = c.PostDescriptor(ctx, "old", PostDescriptorOptions{})
		return err
	})
	must(t, err)
	eq(t, "completion", got, Completion{251, "Not replacing router descriptor; no information has changed since the last one with this identity."})

	// A multi-line error keeps every line.
	err = exchange(t, "GETCONF A B\r\n", "552-Unrecognized configuration key \"A\"\r\n552 Unrecognized configuration key \"B\"\r\n", func(ctx context.Context, c *Conn) error {
		_, err := c.GetConf(ctx, "A", "B")
		return err
	})
	wantCode(t, err, 552, `Unrecognized configuration key "A"; Unrecognized configuration key "B"`)
}

// TestMalformedReplies: a well-framed reply that does not say what the
// command's reply must say is a *ProtocolError, never an *Error.
func TestMalformedReplies(t *testing.T) {
	for _, tc := range []struct {
		name, want, reply string
		call              func(ctx context.Context, c *Conn) error
	}{
		{"status code 300", "DROPGUARDS\r\n", "300 what\r\n", func(ctx context.Context, c *Conn) error { return c.DropGuards(ctx) }},
		{"status code 100 to SAVECONF", "SAVECONF\r\n", "100 hmm\r\n", func(ctx context.Context, c *Conn) error { return c.SaveConf(ctx, false) }},
		{"EXTENDCIRCUIT WHATEVER", "EXTENDCIRCUIT 0\r\n", "250 WHATEVER\r\n", func(ctx context.Context, c *Conn) error {
			_, err := c.ExtendCircuit(ctx, "0", nil, "")
			return err
		}},
		{"EXTENDCIRCUIT no id", "EXTENDCIRCUIT 0\r\n", "250 EXTENDED\r\n", func(ctx context.Context, c *Conn) error {
			_, err := c.ExtendCircuit(ctx, "0", nil, "")
			return err
		}},
		{"EXTENDCIRCUIT bad id", "EXTENDCIRCUIT 0\r\n", "250 EXTENDED 12-3\r\n", func(ctx context.Context, c *Conn) error {
			_, err := c.ExtendCircuit(ctx, "0", nil, "")
			return err
		}},
		{"GETCONF bad quote", "GETCONF Log\r\n", "250 Log=\"notice stdout\r\n", func(ctx context.Context, c *Conn) error {
			_, err := c.GetConf(ctx, "Log")
			return err
		}},
		{"GETCONF text after quote", "GETCONF Log\r\n", "250 Log=\"notice\" stdout\r\n", func(ctx context.Context, c *Conn) error {
			_, err := c.GetConf(ctx, "Log")
			return err
		}},
		{"GETCONF no key", "GETCONF Log\r\n", "250 =x\r\n", func(ctx context.Context, c *Conn) error {
			_, err := c.GetConf(ctx, "Log")
			return err
		}},
		{"MAPADDRESS line count", "MAPADDRESS a=b c=d\r\n", "250 a=b\r\n", func(ctx context.Context, c *Conn) error {
			_, err := c.MapAddress(ctx, AddrMap{"a", "b"}, AddrMap{"c", "d"})
			return err
		}},
		{"MAPADDRESS no =", "MAPADDRESS a=b\r\n", "250 OK\r\n", func(ctx context.Context, c *Conn) error {
			_, err := c.MapAddress(ctx, AddrMap{"a", "b"})
			return err
		}},
		{"ADD_ONION no ServiceID", "ADD_ONION NEW:BEST Port=80\r\n", "250 OK\r\n", func(ctx context.Context, c *Conn) error {
			_, err := c.AddOnion(ctx, AddOnionOptions{Ports: []OnionPort{{Virt: 80}}})
			return err
		}},
		{"ONION_CLIENT_AUTH_VIEW short", "ONION_CLIENT_AUTH_VIEW\r\n", "250-ONION_CLIENT_AUTH_VIEW\r\n250-CLIENT abc\r\n250 OK\r\n", func(ctx context.Context, c *Conn) error {
			_, err := c.OnionClientAuthView(ctx, "")
			return err
		}},
		{"ONION_CLIENT_AUTH_VIEW key", "ONION_CLIENT_AUTH_VIEW\r\n", "250-ONION_CLIENT_AUTH_VIEW\r\n250-CLIENT abc key\r\n250 OK\r\n", func(ctx context.Context, c *Conn) error {
			_, err := c.OnionClientAuthView(ctx, "")
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := exchange(t, tc.want, tc.reply, tc.call)
			var pe *ProtocolError
			var te *Error
			if !errors.As(err, &pe) || errors.As(err, &te) {
				t.Errorf("got %v (%T), want a *ProtocolError", err, err)
			}
		})
	}
}

// TestUnsafeArguments: every command refuses a bad argument before it
// writes a byte. After all the refusals one good command is sent, and it
// must be the only thing tor saw.
func TestUnsafeArguments(t *testing.T) {
	const crlf = "x\r\nSIGNAL HALT"
	fp := "$9695DFC35FFEB861329B9F1AB04C46397020CE31"
	for _, tc := range []struct {
		name string
		call func(ctx context.Context, c *Conn) error
	}{
		{"SETCONF value CRLF", func(ctx context.Context, c *Conn) error {
			return c.SetConf(ctx, ConfEntry{Key: "Nickname", Value: crlf})
		}},
		{"SETCONF value LF", func(ctx context.Context, c *Conn) error {
			return c.SetConf(ctx, ConfEntry{Key: "Nickname", Value: "a\nb"})
		}},
		{"SETCONF value NUL", func(ctx context.Context, c *Conn) error {
			return c.SetConf(ctx, ConfEntry{Key: "Nickname", Value: "a\x00b"})
		}},
		{"SETCONF second value CR", func(ctx context.Context, c *Conn) error {
			return c.SetConf(ctx, ConfEntry{Key: "A", Value: "1"}, ConfEntry{Key: "B", Value: "2\r"})
		}},
		{"SETCONF key with =", func(ctx context.Context, c *Conn) error {
			return c.SetConf(ctx, ConfEntry{Key: "A=1 B", Value: "2"})
		}},
		{"SETCONF key with space", func(ctx context.Context, c *Conn) error {
			return c.SetConf(ctx, ConfEntry{Key: "A B", Value: "2"})
		}},
		{"SETCONF key CRLF", func(ctx context.Context, c *Conn) error {
			return c.SetConf(ctx, ConfEntry{Key: crlf, Value: "2"})
		}},
		{"SETCONF empty key", func(ctx context.Context, c *Conn) error { return c.SetConf(ctx, ConfEntry{Value: "2"}) }},
		{"SETCONF nothing", func(ctx context.Context, c *Conn) error { return c.SetConf(ctx) }},
		{"RESETCONF key CRLF", func(ctx context.Context, c *Conn) error { return c.ResetConf(ctx, ConfEntry{Key: crlf}) }},
		{"RESETCONF nothing", func(ctx context.Context, c *Conn) error { return c.ResetConf(ctx) }},
		{"GETCONF key CRLF", func(ctx context.Context, c *Conn) error { _, err := c.GetConf(ctx, "SocksPort", crlf); return err }},
		{"GETCONF key VT", func(ctx context.Context, c *Conn) error { _, err := c.GetConf(ctx, "a\vb"); return err }},
		{"GETCONF nothing", func(ctx context.Context, c *Conn) error { _, err := c.GetConf(ctx); return err }},
		{"LOADCONF NUL", func(ctx context.Context, c *Conn) error { return c.LoadConf(ctx, "SocksPort 0\x00") }},
		{"SETEVENTS CRLF", func(ctx context.Context, c *Conn) error { return c.SetEvents(ctx, "CIRC", crlf) }},
		{"SETEVENTS space", func(ctx context.Context, c *Conn) error { return c.SetEvents(ctx, "CIRC STREAM") }},
		{"SETEVENTS empty", func(ctx context.Context, c *Conn) error { return c.SetEvents(ctx, "") }},
		{"SIGNAL CRLF", func(ctx context.Context, c *Conn) error { return c.Signal(ctx, Signal(crlf)) }},
		{"SIGNAL space", func(ctx context.Context, c *Conn) error { return c.Signal(ctx, "NEWNYM HALT") }},
		{"SIGNAL empty", func(ctx context.Context, c *Conn) error { return c.Signal(ctx, "") }},
		{"MAPADDRESS from CRLF", func(ctx context.Context, c *Conn) error {
			_, err := c.MapAddress(ctx, AddrMap{crlf, "a"})
			return err
		}},
		{"MAPADDRESS to CRLF", func(ctx context.Context, c *Conn) error {
			_, err := c.MapAddress(ctx, AddrMap{"a", crlf})
			return err
		}},
		{"MAPADDRESS to tab", func(ctx context.Context, c *Conn) error {
			_, err := c.MapAddress(ctx, AddrMap{"a", "b\tc=d"})
			return err
		}},
		{"MAPADDRESS from =", func(ctx context.Context, c *Conn) error {
			_, err := c.MapAddress(ctx, AddrMap{"a=b", "c"})
			return err
		}},
		{"MAPADDRESS nothing", func(ctx context.Context, c *Conn) error { _, err := c.MapAddress(ctx); return err }},
		{"EXTENDCIRCUIT id CRLF", func(ctx context.Context, c *Conn) error {
			_, err := c.ExtendCircuit(ctx, crlf, nil, "")
			return err
		}},
		{"EXTENDCIRCUIT id too long", func(ctx context.Context, c *Conn) error {
			_, err := c.ExtendCircuit(ctx, "12345678901234567", nil, "")
			return err
		}},
		{"EXTENDCIRCUIT hop CRLF", func(ctx context.Context, c *Conn) error {
			_, err := c.ExtendCircuit(ctx, "0", []string{"moria1", crlf}, "")
			return err
		}},
		{"EXTENDCIRCUIT hop VT", func(ctx context.Context, c *Conn) error {
			_, err := c.ExtendCircuit(ctx, "0", []string{"moria1\vpurpose=controller"}, "")
			return err
		}},
		{"EXTENDCIRCUIT hop comma", func(ctx context.Context, c *Conn) error {
			_, err := c.ExtendCircuit(ctx, "0", []string{"moria1,moria2"}, "")
			return err
		}},
		{"EXTENDCIRCUIT nickname too long", func(ctx context.Context, c *Conn) error {
			_, err := c.ExtendCircuit(ctx, "0", []string{"abcdefghijklmnopqrst"}, "")
			return err
		}},
		{"EXTENDCIRCUIT short fingerprint", func(ctx context.Context, c *Conn) error {
			_, err := c.ExtendCircuit(ctx, "0", []string{"$9695DFC35FFEB861"}, "")
			return err
		}},
		{"EXTENDCIRCUIT = after nickname", func(ctx context.Context, c *Conn) error {
			_, err := c.ExtendCircuit(ctx, "0", []string{"moria1", fp + "=tor26"}, "")
			return err
		}},
		{"EXTENDCIRCUIT purpose CRLF", func(ctx context.Context, c *Conn) error {
			_, err := c.ExtendCircuit(ctx, "0", nil, crlf)
			return err
		}},
		{"SETCIRCUITPURPOSE purpose CRLF", func(ctx context.Context, c *Conn) error { return c.SetCircuitPurpose(ctx, "1", crlf) }},
		{"SETCIRCUITPURPOSE id CRLF", func(ctx context.Context, c *Conn) error { return c.SetCircuitPurpose(ctx, crlf, "general") }},
		{"SETROUTERPURPOSE CRLF", func(ctx context.Context, c *Conn) error { return c.SetRouterPurpose(ctx, crlf, "general") }},
		{"ATTACHSTREAM stream CRLF", func(ctx context.Context, c *Conn) error { return c.AttachStream(ctx, crlf, "1", 0) }},
		{"ATTACHSTREAM circuit CRLF", func(ctx context.Context, c *Conn) error { return c.AttachStream(ctx, "1", crlf, 0) }},
		{"ATTACHSTREAM id space", func(ctx context.Context, c *Conn) error { return c.AttachStream(ctx, "1 2", "1", 0) }},
		{"ATTACHSTREAM id punctuation", func(ctx context.Context, c *Conn) error { return c.AttachStream(ctx, "1;2", "1", 0) }},
		{"ATTACHSTREAM empty id", func(ctx context.Context, c *Conn) error { return c.AttachStream(ctx, "", "1", 0) }},
		{"ATTACHSTREAM negative hop", func(ctx context.Context, c *Conn) error { return c.AttachStream(ctx, "1", "1", -1) }},
		{"REDIRECTSTREAM address CRLF", func(ctx context.Context, c *Conn) error { return c.RedirectStream(ctx, "1", crlf, 0) }},
		{"REDIRECTSTREAM address space", func(ctx context.Context, c *Conn) error { return c.RedirectStream(ctx, "1", "a b", 0) }},
		{"REDIRECTSTREAM port", func(ctx context.Context, c *Conn) error { return c.RedirectStream(ctx, "1", "a", 65536) }},
		{"CLOSESTREAM id CRLF", func(ctx context.Context, c *Conn) error { return c.CloseStream(ctx, crlf, RelayEndMisc) }},
		{"CLOSESTREAM flag CRLF", func(ctx context.Context, c *Conn) error { return c.CloseStream(ctx, "1", RelayEndMisc, crlf) }},
		{"CLOSECIRCUIT CRLF", func(ctx context.Context, c *Conn) error { return c.CloseCircuit(ctx, crlf, true) }},
		{"RESOLVE CRLF", func(ctx context.Context, c *Conn) error { return c.Resolve(ctx, []string{"a", crlf}, false) }},
		{"RESOLVE option smuggled", func(ctx context.Context, c *Conn) error { return c.Resolve(ctx, []string{"mode=reverse"}, false) }},
		{"RESOLVE nothing", func(ctx context.Context, c *Conn) error { return c.Resolve(ctx, nil, false) }},
		{"USEFEATURE CRLF", func(ctx context.Context, c *Conn) error { return c.UseFeature(ctx, crlf) }},
		{"POSTDESCRIPTOR purpose CRLF", func(ctx context.Context, c *Conn) error {
			_, err := c.PostDescriptor(ctx, "d", PostDescriptorOptions{Purpose: crlf})
			return err
		}},
		{"POSTDESCRIPTOR cache space", func(ctx context.Context, c *Conn) error {
			_, err := c.PostDescriptor(ctx, "d", PostDescriptorOptions{Cache: "no purpose=bridge"})
			return err
		}},
		{"POSTDESCRIPTOR data NUL", func(ctx context.Context, c *Conn) error {
			_, err := c.PostDescriptor(ctx, "d\x00", PostDescriptorOptions{})
			return err
		}},
		{"HSFETCH address CRLF", func(ctx context.Context, c *Conn) error { return c.HSFetch(ctx, crlf) }},
		{"HSFETCH server CRLF", func(ctx context.Context, c *Conn) error { return c.HSFetch(ctx, "abc", crlf) }},
		{"HSPOST server CRLF", func(ctx context.Context, c *Conn) error {
			return c.HSPost(ctx, "d", HSPostOptions{Servers: []string{crlf}})
		}},
		{"HSPOST data NUL", func(ctx context.Context, c *Conn) error { return c.HSPost(ctx, "d\x00", HSPostOptions{}) }},
		{"HSPOST address CRLF", func(ctx context.Context, c *Conn) error { return c.HSPost(ctx, "d", HSPostOptions{HSAddress: crlf}) }},
		{"ADD_ONION key type CRLF", func(ctx context.Context, c *Conn) error {
			_, err := c.AddOnion(ctx, AddOnionOptions{KeyType: crlf, Ports: []OnionPort{{Virt: 80}}})
			return err
		}},
		{"ADD_ONION key blob CRLF", func(ctx context.Context, c *Conn) error {
			_, err := c.AddOnion(ctx, AddOnionOptions{KeyType: "ED25519-V3", KeyBlob: crlf, Ports: []OnionPort{{Virt: 80}}})
			return err
		}},
		{"ADD_ONION flag CRLF", func(ctx context.Context, c *Conn) error {
			_, err := c.AddOnion(ctx, AddOnionOptions{Flags: []string{crlf}, Ports: []OnionPort{{Virt: 80}}})
			return err
		}},
		{"ADD_ONION flag comma", func(ctx context.Context, c *Conn) error {
			_, err := c.AddOnion(ctx, AddOnionOptions{Flags: []string{"Detach,DiscardPK"}, Ports: []OnionPort{{Virt: 80}}})
			return err
		}},
		{"ADD_ONION target CRLF", func(ctx context.Context, c *Conn) error {
			_, err := c.AddOnion(ctx, AddOnionOptions{Ports: []OnionPort{{Virt: 80, Target: crlf}}})
			return err
		}},
		{"ADD_ONION target space", func(ctx context.Context, c *Conn) error {
			_, err := c.AddOnion(ctx, AddOnionOptions{Ports: []OnionPort{{Virt: 80, Target: "unix:/a b"}}})
			return err
		}},
		{"ADD_ONION no port", func(ctx context.Context, c *Conn) error { _, err := c.AddOnion(ctx, AddOnionOptions{}); return err }},
		{"ADD_ONION port 0", func(ctx context.Context, c *Conn) error {
			_, err := c.AddOnion(ctx, AddOnionOptions{Ports: []OnionPort{{Virt: 0}}})
			return err
		}},
		{"ADD_ONION MaxStreams", func(ctx context.Context, c *Conn) error {
			_, err := c.AddOnion(ctx, AddOnionOptions{MaxStreams: 70000, Ports: []OnionPort{{Virt: 80}}})
			return err
		}},
		{"ADD_ONION ClientAuth CRLF", func(ctx context.Context, c *Conn) error {
			_, err := c.AddOnion(ctx, AddOnionOptions{Ports: []OnionPort{{Virt: 80}}, ClientAuth: []OnionClientAuth{{Name: "a", Blob: crlf}}})
			return err
		}},
		{"ADD_ONION ClientAuthV3 CRLF", func(ctx context.Context, c *Conn) error {
			_, err := c.AddOnion(ctx, AddOnionOptions{Ports: []OnionPort{{Virt: 80}}, ClientAuthV3: []string{crlf}})
			return err
		}},
		{"DEL_ONION CRLF", func(ctx context.Context, c *Conn) error { return c.DelOnion(ctx, crlf) }},
		{"ONION_CLIENT_AUTH_ADD address CRLF", func(ctx context.Context, c *Conn) error {
			_, err := c.OnionClientAuthAdd(ctx, OnionClientCred{HSAddress: crlf, PrivateKey: "k"})
			return err
		}},
		{"ONION_CLIENT_AUTH_ADD key CRLF", func(ctx context.Context, c *Conn) error {
			_, err := c.OnionClientAuthAdd(ctx, OnionClientCred{HSAddress: "abc", PrivateKey: crlf})
			return err
		}},
		{"ONION_CLIENT_AUTH_ADD name CRLF", func(ctx context.Context, c *Conn) error {
			_, err := c.OnionClientAuthAdd(ctx, OnionClientCred{HSAddress: "abc", PrivateKey: "k", ClientName: crlf})
			return err
		}},
		{"ONION_CLIENT_AUTH_REMOVE CRLF", func(ctx context.Context, c *Conn) error {
			_, err := c.OnionClientAuthRemove(ctx, crlf)
			return err
		}},
		{"ONION_CLIENT_AUTH_VIEW CRLF", func(ctx context.Context, c *Conn) error {
			_, err := c.OnionClientAuthView(ctx, crlf)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, c := NewFakeControlPort(t, Options{})
			err := tc.call(ctxT(t), c)
			if !errors.Is(err, ErrUnsafeArgument) {
				t.Fatalf("got %v, want an error wrapping ErrUnsafeArgument", err)
			}
			cmd, _, _ := strings.Cut(tc.name, " ")
			if !strings.HasPrefix(err.Error(), cmd) {
				t.Errorf("error %q does not start with the command %s", err, cmd)
			}
			// Prove that nothing was written: the next command's bytes
			// must be the first tor sees.
			done := f.Serve(1, func(string) string { return "250 OK\r\n" })
			must(t, c.DropGuards(ctxT(t)))
			waitDone(t, done)
			eq(t, "written", f.Written(), "DROPGUARDS\r\n")
		})
	}
}

func TestRelayEndReason(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want RelayEndReason
	}{
		{"EXITPOLICY", RelayEndExitPolicy}, {"REASON_EXITPOLICY", RelayEndExitPolicy},
		{"exitpolicy", RelayEndExitPolicy}, {"reason_exitpolicy", RelayEndExitPolicy},
		{"4", RelayEndExitPolicy}, {"004", RelayEndExitPolicy},
		{"MISC", RelayEndMisc}, {"RESOLVEFAILED", RelayEndResolveFailed}, {"CONNECTREFUSED", RelayEndConnectRefused},
		{"DESTROY", RelayEndDestroy}, {"DONE", RelayEndDone}, {"TIMEOUT", RelayEndTimeout}, {"NOROUTE", RelayEndNoRoute},
		{"HIBERNATING", RelayEndHibernating}, {"INTERNAL", RelayEndInternal}, {"RESOURCELIMIT", RelayEndResourceLimit},
		{"CONNRESET", RelayEndConnReset}, {"TORPROTOCOL", RelayEndTorProtocol}, {"REASON_NOTDIRECTORY", RelayEndNotDirectory},
		{"0", 0}, {"200", 200}, {"255", 255},
	} {
		got, err := ParseRelayEndReason(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRelayEndReason(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "256", "-1", "+4", "4x", "0x4", "EXIT POLICY", "REASON_", "END", "REASON_REASON_MISC", " 4"} {
		if got, err := ParseRelayEndReason(bad); err == nil {
			t.Errorf("ParseRelayEndReason(%q) = %d, want an error", bad, got)
		}
	}
	for r := RelayEndReason(0); ; r++ {
		back, err := ParseRelayEndReason(r.String())
		if err != nil || back != r {
			t.Errorf("%d: String %q parses back as %d, %v", r, r.String(), back, err)
		}
		if r == 255 {
			break
		}
	}
	eq(t, "String(4)", RelayEndExitPolicy.String(), "EXITPOLICY")
	eq(t, "String(14)", RelayEndNotDirectory.String(), "NOTDIRECTORY")
	eq(t, "String(15)", RelayEndReason(15).String(), "15")
	eq(t, "String(0)", RelayEndReason(0).String(), "0")
}

// TestSignalThatEndsTor: tor may close the connection instead of answering
// SHUTDOWN or HALT; for other signals that is an error.
func TestSignalThatEndsTor(t *testing.T) {
	for _, tc := range []struct {
		sig     Signal
		wantErr bool
	}{{SignalHalt, false}, {SignalShutdown, false}, {SignalTerm, false}, {SignalInt, false}, {SignalNewNym, true}, {SignalReload, true}} {
		f, c := NewFakeControlPort(t, Options{})
		go func() {
			f.Expect("SIGNAL " + string(tc.sig) + "\r\n")
			f.Hangup()
		}()
		err := c.Signal(ctxT(t), tc.sig)
		if (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, io.EOF)) {
			t.Errorf("%s: %v", tc.sig, err)
		}
	}
	// Every signal of the current spec's grammar, in its order.
	var names []string
	for _, s := range Signals() {
		names = append(names, string(s))
	}
	eq(t, "signals", strings.Join(names, " "), "RELOAD SHUTDOWN DUMP DEBUG HALT HUP INT USR1 USR2 TERM NEWNYM CLEARDNSCACHE HEARTBEAT ACTIVE DORMANT")
}

// TestQuit: QUIT waits for tor's answer and closes the connection.
func TestQuit(t *testing.T) {
	f, c := NewFakeControlPort(t, Options{})
	go func() {
		f.Expect("QUIT\r\n")
		f.Send("250 closing connection\r\n")
	}()
	must(t, c.Quit(ctxT(t)))
	select {
	case <-c.Done():
	case <-time.After(fakeTimeout):
		t.Fatal("connection still up")
	}
	if err := c.Signal(ctxT(t), SignalNewNym); err == nil {
		t.Error("command after QUIT succeeded")
	}
	eq(t, "written", f.Written(), "QUIT\r\n")
}

// TestParseConfReplyData: a data line in a GETCONF reply holds the value.
func TestParseConfReplyData(t *testing.T) {
	rs, err := ParseReplies([]byte("250+HiddenServiceOptions=\r\nHiddenServiceDir /a\r\n.\r\n250 SocksPort=9050\r\n"), Limits{})
	must(t, err)
	conf, err := ParseConfReply(rs[0])
	must(t, err)
	eq(t, "entries", conf, ConfEntries{{Key: "HiddenServiceOptions", Value: "HiddenServiceDir /a"}, {Key: "SocksPort", Value: "9050"}})
}

// TestConfValueQuoting: a SETCONF value is written bare only when tor would
// read it back as the same single word.
func TestConfValueQuoting(t *testing.T) {
	for in, want := range map[string]string{
		"9050":                   "9050",
		"127.0.0.1:9050":         "127.0.0.1:9050",
		"accept *:80,reject *:*": `"accept *:80,reject *:*"`,
		"":                       `""`,
		`a"b`:                    `"a\"b"`,
		`a\b`:                    `"a\\b"`,
		"a\tb":                   "\"a\tb\"",
		"a\vb":                   "\"a\vb\"",
		"a\fb":                   "\"a\fb\"",
		"a\x7fb":                 "\"a\x7fb\"",
		"é":                      `"é"`,
	} {
		eq(t, "confValue("+in+")", confValue(in), want)
		if want[0] == '"' {
			v, rest, err := Unquote(want)
			if err != nil || v != in || rest != "" {
				t.Errorf("%q does not unquote to %q: %q, %q, %v", want, in, v, rest, err)
			}
		}
	}
}

// TestArgServerSpec pins the ServerSpec grammar of control-spec 2.4.
func TestArgServerSpec(t *testing.T) {
	fp := "9695DFC35FFEB861329B9F1AB04C46397020CE31"
	for _, ok := range []string{"$" + fp, fp, "$" + strings.ToLower(fp), "$" + fp + "~moria1", "$" + fp + "=moria1", "moria1", "a", "abcdefghijklmnopqrs"} {
		if err := argServerSpec("hop", ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "$", "$" + fp[:39], "$" + fp + "0", "$" + fp + "~", "$" + fp + "~bad-nick", "$" + fp[:39] + "g",
		"abcdefghijklmnopqrst", "moria~1", "$moria1", "mo ria", "moria1\v", "moria1,moria2"} {
		if err := argServerSpec("hop", bad); !errors.Is(err, ErrUnsafeArgument) {
			t.Errorf("%q accepted", bad)
		}
	}
}

// torKVLine reads a SETCONF body as tor does: kvline_parse with KV_QUOTED
// and KV_OMIT_VALS (lib/encoding/kvline.c), quoted values read with C
// escapes (unescape_string). ok is false where tor would refuse the line.
func torKVLine(s string) (kvs [][2]string, ok bool) {
	const space = " \t\r\v\n"
	for {
		s = strings.TrimLeft(s, space)
		if s == "" {
			return kvs, true
		}
		var key string
		if s[0] != '"' {
			i := strings.IndexAny(s, space+"=")
			if i < 0 {
				i = len(s)
			}
			key, s = s[:i], s[i:]
			if s == "" || s[0] != '=' {
				kvs = append(kvs, [2]string{key, ""})
				continue
			}
			s = s[1:]
		}
		if key == "" {
			return nil, false // keyless values are not allowed
		}
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			for ; ; i++ {
				if i >= len(s) || s[i] == 0 || s[i] == '\n' {
					return nil, false
				}
				if s[i] == '"' {
					break
				}
				if s[i] != '\\' {
					b.WriteByte(s[i])
					continue
				}
				if i+1 >= len(s) {
					return nil, false
				}
				switch e := s[i+1]; e {
				case 'n', 'r', 't', '"', '\\', '\'':
					b.WriteByte(map[byte]byte{'n': '\n', 'r': '\r', 't': '\t', '"': '"', '\\': '\\', '\'': '\''}[e])
					i++
				default:
					return nil, false // octal and \x escapes: Quote never writes them
				}
			}
			val, s = b.String(), s[i+1:]
			if strings.IndexByte(val, 0) >= 0 {
				return nil, false
			}
		} else {
			i := strings.IndexAny(s, space)
			if i < 0 {
				i = len(s)
			}
			val, s = s[:i], s[i:]
		}
		kvs = append(kvs, [2]string{key, val})
	}
}

// FuzzSetConfValue: whatever the value, SETCONF either refuses it or
// writes one line that tor reads back as exactly that one key and value.
func FuzzSetConfValue(f *testing.F) {
	for _, v := range []string{"9050", "a b", `a"b`, `a\b`, "a\vb", "x=y z=w", "\"", "\\", "a\tb", "é", "'", "a\x01b", "#c", "", "a\r\nSIGNAL HALT", "\x00"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		line, err := setConfLine("SETCONF", []ConfEntry{{Key: "Nickname", Value: v}, {Key: "SocksPort", Value: "9050"}}).String()
		if err != nil {
			if !errors.Is(err, ErrUnsafeArgument) || !strings.ContainsAny(v, "\r\n\x00") {
				t.Fatalf("%q refused: %v", v, err)
			}
			return
		}
		if strings.ContainsAny(line, "\r\n\x00") {
			t.Fatalf("line %q holds CR, LF or NUL", line)
		}
		body, ok := strings.CutPrefix(line, "SETCONF ")
		if !ok {
			t.Fatalf("line %q", line)
		}
		kvs, ok := torKVLine(body)
		want := [][2]string{{"Nickname", v}, {"SocksPort", "9050"}}
		if !ok || !reflect.DeepEqual(kvs, want) {
			t.Fatalf("SETCONF %q: tor reads %q (ok %v), want %q", body, kvs, ok, want)
		}
	})
}

// FuzzReplyParsers: the reply parsers of the typed commands never panic,
// and what they accept is consistent.
func FuzzReplyParsers(f *testing.F) {
	for _, s := range []string{
		"250 EXTENDED 12\r\n", "250 WHATEVER\r\n",
		"250-SocksPort=9050\r\n250-Log=\"a\\\"b\"\r\n250 ControlPort\r\n",
		"250+HiddenServiceOptions=\r\nx\r\n.\r\n250 OK\r\n",
		"512-syntax error\r\n250 127.0.0.1=a.example\r\n",
		"250-ServiceID=abc\r\n250-PrivateKey=ED25519-V3:k\r\n250-ClientAuth=bob:x\r\n250 OK\r\n",
		"250-ONION_CLIENT_AUTH_VIEW\r\n250-CLIENT a x25519:k Flags=Permanent ClientName=n\r\n250 OK\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseReplies([]byte(s), Limits{MaxLineBytes: 1 << 12, MaxReplyBytes: 1 << 14})
		if err != nil || len(rs) == 0 {
			return
		}
		r := rs[0]
		if id, err := ParseExtendedReply(r); err == nil && argID("id", id) != nil {
			t.Fatalf("EXTENDED id %q accepted", id)
		}
		if conf, err := ParseConfReply(r); err == nil && len(conf) != len(r.Lines) {
			t.Fatalf("%d entries from %d lines", len(conf), len(r.Lines))
		}
		if m, err := ParseMapAddressReply(r, nil); err == nil && len(m) != len(r.Lines) {
			t.Fatalf("%d mappings from %d lines without an error", len(m), len(r.Lines))
		}
		if s, err := ParseAddOnionReply(r); err == nil && s.ServiceID == "" {
			t.Fatal("ADD_ONION reply without ServiceID accepted")
		}
		ParseOnionClientAuthView(r)
		ParseRelayEndReason(r.Text())
	})
}
