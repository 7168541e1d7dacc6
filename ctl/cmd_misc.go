package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// This file holds the commands of control-spec section 3 that fit no other
// group (QUIT, USEFEATURE, POSTDESCRIPTOR, ownership, guards, timeouts and
// the onion-service commands) and the argument checks every typed command
// uses.
//
// Tor reads a command line in two ways (feature/control/control_cmd.c):
// positional arguments are split on spaces, and keyword arguments go through
// kvline_parse, which also splits on tab, CR, LF and vertical tab, and reads
// a key up to its first "=". So an argument that is not a single run of
// visible ASCII could become two arguments, or a keyword, or a second
// command. Every check below therefore accepts only VCHAR (0x21-0x7E, the
// grammar's OptArguments) and refuses with an error wrapping
// ErrUnsafeArgument before anything is written. Only SETCONF and RESETCONF
// values may hold anything else (but CR, LF and NUL), written as quoted
// strings, and so may the data of LOADCONF, POSTDESCRIPTOR and HSPOST (but
// NUL), which is sent dot-stuffed.

// Completion is a positive reply that may say more than "250 OK": tor
// answers 251 when it declined an unnecessary operation (a descriptor it did
// not add, client credentials it replaced) and 252 for
// ONION_CLIENT_AUTH_ADD when it also decrypted a cached descriptor.
type Completion struct {
	Code int    // 250, 251, 252, ...
	Msg  string // the text after the code, e.g. "OK" or "Descriptor not added"
}

func completionOf(r *Reply) Completion { return Completion{Code: r.Code(), Msg: r.Text()} }

// cmdLine builds one command line. The first refused argument sticks, so a
// command is sent only when every one of its arguments passed.
type cmdLine struct {
	b   strings.Builder
	err error
}

func newCmdLine(keyword string) *cmdLine {
	l := &cmdLine{}
	l.b.WriteString(keyword)
	return l
}

// check records err unless an earlier one is recorded, and says whether the
// line is still good.
func (l *cmdLine) check(err error) bool {
	if l.err == nil {
		l.err = err
	}
	return l.err == nil
}

// raw appends " "+s; s must be a checked argument or a constant.
func (l *cmdLine) raw(s string) *cmdLine {
	l.b.WriteByte(' ')
	l.b.WriteString(s)
	return l
}

// arg appends s after checking it.
func (l *cmdLine) arg(err error, s string) *cmdLine {
	if l.check(err) {
		l.raw(s)
	}
	return l
}

func (l *cmdLine) String() (string, error) {
	if l.err != nil {
		return "", l.err
	}
	return l.b.String(), nil
}

// do sends the line when every argument passed.
func (l *cmdLine) do(ctx context.Context, c *Conn) (*Reply, error) {
	line, err := l.String()
	if err != nil {
		return nil, err
	}
	return c.Do(ctx, line)
}

// doData sends the line as a multi-line command with data.
func (l *cmdLine) doData(ctx context.Context, c *Conn, data string) (*Reply, error) {
	line, err := l.String()
	if err != nil {
		return nil, err
	}
	return c.DoData(ctx, line, data)
}

func cmdUnsafeArg(what, s, format string, args ...any) error {
	// A key or a password is never repeated in an error.
	if secretArg(what) {
		return fmt.Errorf("%s: %w: it %s", what, ErrUnsafeArgument, fmt.Sprintf(format, args...))
	}
	return fmt.Errorf("%s: %w: %q %s", what, ErrUnsafeArgument, s, fmt.Sprintf(format, args...))
}

// secretArg says whether an argument so named may hold a secret.
func secretArg(what string) bool {
	w := strings.ToLower(what)
	return strings.Contains(w, "key") || strings.Contains(w, "password") || strings.Contains(w, "auth") || strings.Contains(w, "cookie")
}

// argWord checks a single bare word: non-empty visible ASCII without '"'.
func argWord(what, s string) error { return CheckToken(what, s) }

// argName checks a word that tor's keyword parser must not read as
// "key=value": a word without '='.
func argName(what, s string) error {
	if err := argWord(what, s); err != nil {
		return err
	}
	if i := strings.IndexByte(s, '='); i >= 0 {
		return cmdUnsafeArg(what, s, "contains '=' at byte %d", i)
	}
	return nil
}

// argChars checks a non-empty word made only of ASCII letters, digits and
// the bytes in extra.
func argChars(what, s, extra string) error {
	if err := CheckToken(what, s); err != nil {
		return err
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && strings.IndexByte(extra, s[i]) < 0 {
			if extra == "" {
				return cmdUnsafeArg(what, s, "contains %q at byte %d (only letters and digits are allowed)", s[i], i)
			}
			return cmdUnsafeArg(what, s, "contains %q at byte %d (only letters, digits and %q are allowed)", s[i], i, extra)
		}
	}
	return nil
}

// argID checks a StreamID or CircuitID: 1*16 IDChar, IDChar = ALPHA / DIGIT.
func argID(what, s string) error {
	if err := argChars(what, s, ""); err != nil {
		return err
	}
	if len(s) > 16 {
		return cmdUnsafeArg(what, s, "is longer than 16 characters")
	}
	return nil
}

// argServerSpec checks a ServerSpec (control-spec 2.4): "$" 40*HEXDIG
// followed by an optional "~" or "=" and nickname, or a nickname of 1 to 19
// letters and digits. The "$" may be left out before a fingerprint.
func argServerSpec(what, s string) error {
	if err := argWord(what, s); err != nil {
		return err
	}
	fp, nick, hasNick := s, "", false
	if i := strings.IndexAny(s, "~="); i >= 0 {
		fp, nick, hasNick = s[:i], s[i+1:], true
	}
	isFP := len(strings.TrimPrefix(fp, "$")) == 40 && isHex(strings.TrimPrefix(fp, "$"))
	switch {
	case isFP && !hasNick:
		return nil
	case isFP && hasNick && isNickname(nick):
		return nil
	case !hasNick && !strings.HasPrefix(s, "$") && isNickname(s):
		return nil
	}
	return cmdUnsafeArg(what, s, "is not a relay fingerprint ($ and 40 hex digits, optionally ~nickname) or nickname (1 to 19 letters and digits)")
}

// argOnion checks an onion address (without ".onion"; a trailing ".onion"
// is dropped) and returns it.
func argOnion(what, s string) (string, error) {
	s = strings.TrimSuffix(s, ".onion")
	return s, argChars(what, s, "")
}

// argData checks the data of a multi-line command: anything but NUL.
func argData(cmd, data string) error {
	if i := strings.IndexByte(data, 0); i >= 0 {
		return fmt.Errorf("%s data: %w: contains NUL at byte %d", cmd, ErrUnsafeArgument, i)
	}
	return nil
}

// argList checks every element of a comma-separated list and joins them.
func argList(what string, elems []string, check func(what, s string) error) (string, error) {
	if len(elems) == 0 {
		return "", fmt.Errorf("%s: %w: empty list", what, ErrUnsafeArgument)
	}
	for _, e := range elems {
		if err := check(what, e); err != nil {
			return "", err
		}
		if strings.IndexByte(e, ',') >= 0 {
			return "", cmdUnsafeArg(what, e, "contains ','")
		}
	}
	return strings.Join(elems, ","), nil
}

func cmdNoArgs(cmd, what string) error {
	return &argError{cmd: cmd, msg: what}
}

// simple sends a command without arguments and expects a 2yz reply.
func (c *Conn) simple(ctx context.Context, keyword string) error {
	_, err := newCmdLine(keyword).do(ctx, c)
	return err
}

// Quit asks tor to hang up (control-spec 3.18), then closes the connection.
// Tor answers before it closes; a connection that ends without an answer
// counts as done.
func (c *Conn) Quit(ctx context.Context) error {
	err := c.simple(ctx, "QUIT")
	if errors.Is(err, io.EOF) {
		err = nil
	}
	c.Close()
	return err
}

// UseFeature enables control-protocol features for this connection
// (control-spec 3.19), e.g. "EXTENDED_EVENTS" or "VERBOSE_NAMES" (both
// always on in current tor, which accepts and ignores them).
func (c *Conn) UseFeature(ctx context.Context, features ...string) error {
	l := newCmdLine("USEFEATURE")
	for _, f := range features {
		l.arg(argChars("USEFEATURE feature", f, "_-"), f)
	}
	_, err := l.do(ctx, c)
	return err
}

// PostDescriptorOptions are the optional parts of POSTDESCRIPTOR.
type PostDescriptorOptions struct {
	// Purpose is "general" (tor's default when empty), "controller" or
	// "bridge".
	Purpose string
	// Cache is "yes" or "no"; empty lets tor decide.
	Cache string
}

// PostDescriptor gives tor a router descriptor (control-spec 3.14). A
// well-formed descriptor that tor chose not to add is answered with code 251
// and tor's reason; an added one with 250. A malformed one is an *Error 554.
func (c *Conn) PostDescriptor(ctx context.Context, descriptor string, opts PostDescriptorOptions) (Completion, error) {
	l := newCmdLine("POSTDESCRIPTOR")
	if opts.Purpose != "" {
		l.arg(argName("POSTDESCRIPTOR purpose", opts.Purpose), "purpose="+opts.Purpose)
	}
	if opts.Cache != "" {
		l.arg(argName("POSTDESCRIPTOR cache", opts.Cache), "cache="+opts.Cache)
	}
	l.check(argData("POSTDESCRIPTOR", descriptor))
	r, err := l.doData(ctx, c, descriptor)
	if err != nil {
		return Completion{}, err
	}
	return completionOf(r), nil
}

// TakeOwnership makes tor exit when this connection closes (control-spec
// 3.23).
func (c *Conn) TakeOwnership(ctx context.Context) error { return c.simple(ctx, "TAKEOWNERSHIP") }

// DropOwnership undoes TakeOwnership (control-spec 3.33).
func (c *Conn) DropOwnership(ctx context.Context) error { return c.simple(ctx, "DROPOWNERSHIP") }

// DropGuards makes tor forget its entry guards (control-spec 3.25).
func (c *Conn) DropGuards(ctx context.Context) error { return c.simple(ctx, "DROPGUARDS") }

// DropTimeouts makes tor forget its circuit build times (control-spec
// 3.34). Tor follows the reply with a BUILDTIMEOUT_SET RESET event.
func (c *Conn) DropTimeouts(ctx context.Context) error { return c.simple(ctx, "DROPTIMEOUTS") }

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
		return nil, &ProtocolError{Msg: "ADD_ONION reply without ServiceID", Line: r.Raw}
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
