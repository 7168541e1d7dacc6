package ctl

import (
	"context"
	"strconv"
	"strings"
)

// This file holds the onion-service commands: HSFETCH, HSPOST, ADD_ONION,
// DEL_ONION and the ONION_CLIENT_AUTH_* commands.

// HSFetch asks tor to fetch the descriptor of an onion service (control-spec
// 3.26). addr is the onion address without ".onion" (a trailing ".onion" is
// dropped) or "v2-" and a descriptor id. With servers (relay fingerprints),
// tor asks those HSDirs instead of the responsible ones. The result arrives
// as HS_DESC and HS_DESC_CONTENT events.
func (c *Conn) HSFetch(ctx context.Context, addr string, servers ...string) error {
	l := newCmdLine("HSFETCH")
	a := strings.TrimSuffix(addr, ".onion")
	l.arg(argChars("HSFETCH address", a, "-"), a)
	for _, s := range servers {
		l.arg(argServerSpec("HSFETCH server", s), "SERVER="+s)
	}
	_, err := l.do(ctx, c)
	return err
}

// HSPostOptions are the optional parts of HSPOST.
type HSPostOptions struct {
	// Servers are the HSDirs (relay fingerprints) to upload to; none means
	// the responsible ones.
	Servers []string
	// HSAddress is the v3 onion address the descriptor belongs to.
	HSAddress string
}

// HSPost uploads an onion-service descriptor (control-spec 3.29). The
// results arrive as HS_DESC events.
func (c *Conn) HSPost(ctx context.Context, descriptor string, opts HSPostOptions) error {
	l := newCmdLine("HSPOST")
	for _, s := range opts.Servers {
		l.arg(argServerSpec("HSPOST server", s), "SERVER="+s)
	}
	if opts.HSAddress != "" {
		a, err := argOnion("HSPOST address", opts.HSAddress)
		l.arg(err, "HSADDRESS="+a)
	}
	l.check(argData("HSPOST", descriptor))
	_, err := l.doData(ctx, c, descriptor)
	return err
}

// OnionPort maps a virtual port of an onion service to a target.
type OnionPort struct {
	Virt int // 1-65535
	// Target is where tor connects: "PORT", "ADDR:PORT" or "unix:PATH";
	// empty means the same port on 127.0.0.1.
	Target string
}

// OnionClientAuth is a v2 client-authorization entry of ADD_ONION.
type OnionClientAuth struct {
	Name string // 1-16 of A-Z a-z 0-9 + - _
	Blob string // empty: tor generates one and returns it
}

// AddOnionOptions describe the onion service ADD_ONION creates.
type AddOnionOptions struct {
	// KeyType is "NEW" (tor generates a key; the default when empty),
	// "ED25519-V3" or "RSA1024" (KeyBlob is the serialized private key).
	KeyType string
	// KeyBlob is, for KeyType NEW, the algorithm: "BEST" (the default when
	// empty), "ED25519-V3" or "RSA1024"; otherwise the private key.
	KeyBlob string
	// Flags: "DiscardPK", "Detach", "V3Auth", "NonAnonymous",
	// "MaxStreamsCloseCircuit", "BasicAuth".
	Flags []string
	// MaxStreams bounds the streams per rendezvous circuit, 0-65535;
	// 0 (unlimited, tor's default) is not sent.
	MaxStreams int
	// Ports: at least one.
	Ports []OnionPort
	// ClientAuth: v2 client authorization (with the BasicAuth flag).
	ClientAuth []OnionClientAuth
	// ClientAuthV3: base32 x25519 public keys of authorized v3 clients.
	ClientAuthV3 []string
}

// OnionService is tor's answer to ADD_ONION.
type OnionService struct {
	ServiceID string // the onion address without ".onion"
	// PrivateKey is "KeyType:KeyBlob", set when tor generated the key and
	// DiscardPK was not given.
	PrivateKey   string
	ClientAuth   []OnionClientAuth // credentials tor generated (v2)
	ClientAuthV3 []string
}

// AddOnion creates an onion service (control-spec 3.27). It lives until
// DelOnion, until tor exits or, without the Detach flag, until this
// connection closes.
func (c *Conn) AddOnion(ctx context.Context, opts AddOnionOptions) (*OnionService, error) {
	const cmd = "ADD_ONION"
	kt, kb := opts.KeyType, opts.KeyBlob
	if kt == "" {
		kt = "NEW"
	}
	if kb == "" && strings.EqualFold(kt, "NEW") {
		kb = "BEST"
	}
	l := newCmdLine(cmd)
	l.check(argChars(cmd+" key type", kt, "-"))
	l.arg(argWord(cmd+" key blob", kb), kt+":"+kb)
	if len(opts.Flags) > 0 {
		flags, err := argList(cmd+" flag", opts.Flags, func(what, s string) error { return argChars(what, s, "") })
		l.arg(err, "Flags="+flags)
	}
	switch {
	case opts.MaxStreams < 0 || opts.MaxStreams > 65535:
		l.check(cmdUnsafeArg(cmd+" MaxStreams", strconv.Itoa(opts.MaxStreams), "is not in 0-65535"))
	case opts.MaxStreams > 0:
		l.raw("MaxStreams=" + strconv.Itoa(opts.MaxStreams))
	}
	if len(opts.Ports) == 0 {
		l.check(cmdNoArgs(cmd, "no Port"))
	}
	for _, p := range opts.Ports {
		if p.Virt < 1 || p.Virt > 65535 {
			l.check(cmdUnsafeArg(cmd+" virtual port", strconv.Itoa(p.Virt), "is not in 1-65535"))
			continue
		}
		v := strconv.Itoa(p.Virt)
		if p.Target != "" {
			if l.check(argWord(cmd+" port target", p.Target)) {
				v += "," + p.Target
			}
		}
		l.raw("Port=" + v)
	}
	for _, a := range opts.ClientAuth {
		v := a.Name
		l.check(argChars(cmd+" ClientAuth name", a.Name, "+-_"))
		if a.Blob != "" {
			l.check(argWord(cmd+" ClientAuth blob", a.Blob))
			v += ":" + a.Blob
		}
		l.raw("ClientAuth=" + v)
	}
	for _, k := range opts.ClientAuthV3 {
		l.arg(argChars(cmd+" ClientAuthV3 key", k, ""), "ClientAuthV3="+k)
	}
	r, err := l.do(ctx, c)
	if err != nil {
		return nil, err
	}
	return ParseAddOnionReply(r)
}

// ParseAddOnionReply reads the reply to ADD_ONION: "ServiceID=",
// "PrivateKey=", "ClientAuth=" and "ClientAuthV3=" lines. Lines it does not
// know are skipped.
func ParseAddOnionReply(r *Reply) (*OnionService, error) {
	s := &OnionService{}
	for _, l := range r.Lines {
		k, v, ok := strings.Cut(l.Text, "=")
		if !ok {
			continue
		}
		switch k {
		case "ServiceID":
			s.ServiceID = v
		case "PrivateKey":
			s.PrivateKey = v
		case "ClientAuth":
			name, blob, _ := strings.Cut(v, ":")
			s.ClientAuth = append(s.ClientAuth, OnionClientAuth{Name: name, Blob: blob})
		case "ClientAuthV3":
			s.ClientAuthV3 = append(s.ClientAuthV3, v)
		}
	}
	if s.ServiceID == "" {
		return nil, &ProtocolError{Msg: "ADD_ONION reply without ServiceID", Line: r.String()}
	}
	return s, nil
}

// DelOnion removes an onion service made by ADD_ONION on this connection
// or detached (control-spec 3.28). A trailing ".onion" is dropped.
func (c *Conn) DelOnion(ctx context.Context, serviceID string) error {
	id, err := argOnion("DEL_ONION service id", serviceID)
	_, err = newCmdLine("DEL_ONION").arg(err, id).do(ctx, c)
	return err
}

// OnionClientCred is a client-side v3 client-authorization credential.
type OnionClientCred struct {
	HSAddress  string // onion address without ".onion"
	KeyType    string // "x25519" (the default when empty)
	PrivateKey string // base64 x25519 private key
	ClientName string // optional
	Flags      []string
}

// OnionClientAuthAdd stores client credentials for an onion service
// (control-spec 3.30). Tor answers 251 when it replaced existing ones and
// 252 when it also decrypted a cached descriptor.
func (c *Conn) OnionClientAuthAdd(ctx context.Context, cred OnionClientCred) (Completion, error) {
	const cmd = "ONION_CLIENT_AUTH_ADD"
	kt := cred.KeyType
	if kt == "" {
		kt = "x25519"
	}
	l := newCmdLine(cmd)
	addr, err := argOnion(cmd+" address", cred.HSAddress)
	l.arg(err, addr)
	l.check(argChars(cmd+" key type", kt, "-"))
	l.arg(argWord(cmd+" private key", cred.PrivateKey), kt+":"+cred.PrivateKey)
	if cred.ClientName != "" {
		l.arg(argWord(cmd+" client name", cred.ClientName), "ClientName="+cred.ClientName)
	}
	if len(cred.Flags) > 0 {
		flags, err := argList(cmd+" flag", cred.Flags, func(what, s string) error { return argChars(what, s, "") })
		l.arg(err, "Flags="+flags)
	}
	r, err := l.do(ctx, c)
	if err != nil {
		return Completion{}, err
	}
	return completionOf(r), nil
}

// OnionClientAuthRemove forgets the client credentials for an onion service
// (control-spec 3.31). Tor answers 251 when it had none.
func (c *Conn) OnionClientAuthRemove(ctx context.Context, hsAddress string) (Completion, error) {
	addr, err := argOnion("ONION_CLIENT_AUTH_REMOVE address", hsAddress)
	r, err := newCmdLine("ONION_CLIENT_AUTH_REMOVE").arg(err, addr).do(ctx, c)
	if err != nil {
		return Completion{}, err
	}
	return completionOf(r), nil
}

// OnionClientAuthView lists the stored client credentials, for one onion
// service or, when hsAddress is empty, for all (control-spec 3.32).
func (c *Conn) OnionClientAuthView(ctx context.Context, hsAddress string) ([]OnionClientCred, error) {
	l := newCmdLine("ONION_CLIENT_AUTH_VIEW")
	if hsAddress != "" {
		addr, err := argOnion("ONION_CLIENT_AUTH_VIEW address", hsAddress)
		l.arg(err, addr)
	}
	r, err := l.do(ctx, c)
	if err != nil {
		return nil, err
	}
	return ParseOnionClientAuthView(r)
}

// ParseOnionClientAuthView reads the "CLIENT HSAddress KeyType:Blob
// [ClientName=] [Flags=]" lines of an ONION_CLIENT_AUTH_VIEW reply, keywords
// in any order; unknown keywords and lines are skipped.
func ParseOnionClientAuthView(r *Reply) ([]OnionClientCred, error) {
	var creds []OnionClientCred
	for _, l := range r.Lines {
		f := strings.Fields(l.Text)
		if len(f) == 0 || f[0] != "CLIENT" {
			continue
		}
		if len(f) < 3 {
			return nil, &ProtocolError{Msg: "ONION_CLIENT_AUTH_VIEW: CLIENT line without address and key", Line: l.Text}
		}
		kt, key, ok := strings.Cut(f[2], ":")
		if !ok {
			return nil, &ProtocolError{Msg: "ONION_CLIENT_AUTH_VIEW: key is not KeyType:Blob", Line: l.Text}
		}
		cred := OnionClientCred{HSAddress: f[1], KeyType: kt, PrivateKey: key}
		for _, kv := range f[3:] {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "ClientName":
				cred.ClientName = v
			case "Flags":
				cred.Flags = strings.Split(v, ",")
			}
		}
		creds = append(creds, cred)
	}
	return creds, nil
}
