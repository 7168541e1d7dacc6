package builtins

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/torscript/torscript/ctl"
	"go.starlark.net/starlark"
)

// onionAddress unpacks an onion address (with or without ".onion") or a
// tor.onion_service.
type onionAddress string

func (a *onionAddress) Unpack(v starlark.Value) error {
	switch v := v.(type) {
	case starlark.String:
		*a = onionAddress(v)
		return nil
	case *Struct:
		if v.Type() == "tor.onion_service" {
			id, _ := v.Attr("service_id")
			*a = onionAddress(id.(starlark.String))
			return nil
		}
	}
	return fmt.Errorf("got %s, want an onion address or a tor.onion_service", v.Type())
}

// onionPorts unpacks the ports of add_onion: a port; a dict of virtual
// port to target; or a list of ports and (port, target) pairs. A target
// is a port, "ADDR:PORT", "unix:PATH", or None for the same port on
// 127.0.0.1.
type onionPorts []ctl.OnionPort

func (p *onionPorts) Unpack(v starlark.Value) error {
	switch v := v.(type) {
	case starlark.Int:
		port, err := onionPort(v, starlark.None)
		if err != nil {
			return err
		}
		*p = append(*p, port)
		return nil
	case *starlark.Dict:
		for _, kv := range v.Items() {
			port, err := onionPort(kv[0], kv[1])
			if err != nil {
				return err
			}
			*p = append(*p, port)
		}
		return nil
	case *starlark.List, starlark.Tuple:
		return forEach(v.(starlark.Iterable), func(i int, x starlark.Value) error {
			virt, target := x, starlark.Value(starlark.None)
			if pair, ok := x.(starlark.Indexable); ok {
				if _, isStr := x.(starlark.String); !isStr {
					if pair.Len() != 2 {
						return fmt.Errorf("element %d: want a port or a (port, target) pair", i)
					}
					virt, target = pair.Index(0), pair.Index(1)
				}
			}
			port, err := onionPort(virt, target)
			if err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
			*p = append(*p, port)
			return nil
		})
	}
	return fmt.Errorf("got %s, want a port, a dict of port to target, or a list of ports and (port, target) pairs", v.Type())
}

func onionPort(virt, target starlark.Value) (ctl.OnionPort, error) {
	var p ctl.OnionPort
	if err := starlark.AsInt(virt, &p.Virt); err != nil || p.Virt < 1 || p.Virt > 65535 {
		return p, fmt.Errorf("virtual port %s: want 1-65535", virt)
	}
	switch t := target.(type) {
	case starlark.NoneType:
	case starlark.Int:
		var n int
		if err := starlark.AsInt(t, &n); err != nil || n < 1 || n > 65535 {
			return p, fmt.Errorf("target port %s: want 1-65535", t)
		}
		p.Target = t.String()
	case starlark.String:
		p.Target = string(t)
	default:
		return p, fmt.Errorf("target for port %d: got %s, want a port, \"ADDR:PORT\", \"unix:PATH\" or None", p.Virt, target.Type())
	}
	return p, nil
}

// onionClientAuth unpacks the v2 client_auth of add_onion: a dict of name
// to blob (None: tor generates one) or a list of names.
type onionClientAuth []ctl.OnionClientAuth

func (a *onionClientAuth) Unpack(v starlark.Value) error {
	if d, ok := v.(*starlark.Dict); ok {
		for _, kv := range d.Items() {
			name, ok := starlark.AsString(kv[0])
			if !ok {
				return fmt.Errorf("got %s client name, want string", kv[0].Type())
			}
			e := ctl.OnionClientAuth{Name: name}
			switch blob := kv[1].(type) {
			case starlark.NoneType:
			case starlark.String:
				e.Blob = string(blob)
			default:
				return fmt.Errorf("client %s: got %s blob, want string or None", name, kv[1].Type())
			}
			*a = append(*a, e)
		}
		return nil
	}
	var names stringList
	if err := names.Unpack(v); err != nil {
		return fmt.Errorf("want a dict of client name to blob, or a list of client names: %w", err)
	}
	for _, n := range names {
		*a = append(*a, ctl.OnionClientAuth{Name: n})
	}
	return nil
}

const docAddOnion = `add_onion(ports, key=None, flags=[], max_streams=0, client_auth_v3=[], client_auth=None, on_published=None, on_failed=None, timeout="1m") -> tor.onion_service
ADD_ONION: creates an onion service that lives until del_onion, until tor
exits, or (without the "Detach" flag) until torscript's connection closes.
ports maps the service's virtual ports to targets: 80, {80: 8080},
{80: "127.0.0.1:8080", 22: None}, or [80, (443, "unix:/run/web.sock")]; a
target None is the same port on 127.0.0.1. key is "KeyType:KeyBlob" as tor
writes it in .private_key ("ED25519-V3:..."), to bring a service back; None
(or "NEW:BEST") makes a new one. flags: "Detach", "DiscardPK", "V3Auth",
"NonAnonymous", "MaxStreamsCloseCircuit". max_streams bounds the streams of
a rendezvous circuit (0: no bound). client_auth_v3 lists the base32 x25519
public keys of authorized clients; client_auth is the obsolete v2 form (a
dict of name to blob, or a list of names). Returns .service_id (the address
without ".onion"), .private_key ("" when tor was given the key or
DiscardPK), .client_auth and .client_auth_v3. on_published(service) is
called once when tor has uploaded the service's descriptor to an HSDir
(HS_DESC UPLOADED), on_failed(service_id, reason) once if timeout (default
"1m") passes first (reason: the HS_DESC FAILED reasons seen, or
"TIMEOUT_WAITING"), on the event loop like a handler.
  svc = tor.add_onion({80: 8080}, flags=["Detach"])
  print(svc.service_id + ".onion")
  tor.add_onion({80: 8080}, on_published=lambda s: print(s.service_id, "is up"))`

func (t *torMod) addOnion(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var opts ctl.AddOnionOptions
	var ports onionPorts
	var key string
	var flags, authV3 stringList
	var auth onionClientAuth
	var onPublished, onFailed callback
	timeout := Duration(defaultWait)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"ports", &ports, "key??", &key, "flags??", &flags, "max_streams?", &opts.MaxStreams,
		"client_auth_v3??", &authV3, "client_auth??", &auth,
		"on_published?", &onPublished, "on_failed?", &onFailed, "timeout?", &timeout); err != nil {
		return nil, err
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("%s: timeout must be positive", b.Name())
	}
	if key != "" {
		kt, kb, ok := strings.Cut(key, ":")
		if !ok || kt == "" || kb == "" {
			return nil, fmt.Errorf("%s: key: want \"KeyType:KeyBlob\", such as \"ED25519-V3:...\" or \"NEW:BEST\"", b.Name())
		}
		opts.KeyType, opts.KeyBlob = kt, kb
	}
	opts.Ports, opts.Flags, opts.ClientAuthV3, opts.ClientAuth = ports, flags, authV3, auth
	c, err := t.conn(b)
	if err != nil {
		return nil, err
	}
	svc, err := c.AddOnion(Context(thread), opts)
	if err != nil {
		return nil, failed(b, err)
	}
	v := NewStruct("tor.onion_service", svc)
	if onPublished.fn != nil || onFailed.fn != nil {
		if err := t.h.Await(publishWaiter(svc.ServiceID, v, onPublished.fn, onFailed.fn, time.Duration(timeout))); err != nil {
			return nil, failed(b, err)
		}
	}
	return v, nil
}

// publishWaiter calls onPublished(service) at the first HS_DESC UPLOADED
// of service id (tor uploads the descriptor to several HSDirs; one is
// enough for clients to find it), or onFailed(id, reason) if timeout
// passes first: reason lists the HS_DESC FAILED reasons seen meanwhile,
// or is "TIMEOUT_WAITING".
func publishWaiter(id string, service starlark.Value, onPublished, onFailed starlark.Callable, timeout time.Duration) *Waiter {
	var reasons []string
	return &Waiter{
		What:    "add_onion " + id,
		Events:  []string{ctl.EventHSDesc},
		Timeout: timeout,
		Match: func(ev ctl.Event) (starlark.Callable, starlark.Tuple, bool) {
			e, ok := ev.(*ctl.HSDescEvent)
			if !ok || e.Address != id {
				return nil, nil, false
			}
			switch e.Action {
			case "UPLOADED":
				if onPublished == nil {
					return nil, nil, true
				}
				return onPublished, starlark.Tuple{service}, true
			case "FAILED":
				if e.Reason != "" && !slices.Contains(reasons, e.Reason) {
					reasons = append(reasons, e.Reason)
				}
			}
			return nil, nil, false
		},
		OnTimeout: func() (starlark.Callable, starlark.Tuple) {
			if onFailed == nil {
				return nil, nil
			}
			reason := "TIMEOUT_WAITING"
			if len(reasons) > 0 {
				reason = strings.Join(reasons, ",")
			}
			return onFailed, starlark.Tuple{starlark.String(id), starlark.String(reason)}
		},
	}
}

const docDelOnion = `del_onion(service)
DEL_ONION: removes an onion service made by add_onion (on this connection,
or detached); service is its address or the tor.onion_service.`

func (t *torMod) delOnion(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var id onionAddress
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "service", &id); err != nil {
		return nil, err
	}
	return t.okCommand(thread, b, func(c *ctl.Conn, ctx context.Context) error {
		return c.DelOnion(ctx, string(id))
	})
}

const docHsFetch = `hs_fetch(address, servers=[])
HSFETCH: asks tor to fetch an onion service's descriptor, from servers (a
list of HSDirs: fingerprints, tor.hop or tor.router values) or from the
responsible ones. The result arrives as "hs_desc" and "hs_desc_content"
events.`

func (t *torMod) hsFetch(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var addr onionAddress
	var servers relayList
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "address", &addr, "servers??", &servers); err != nil {
		return nil, err
	}
	return t.okCommand(thread, b, func(c *ctl.Conn, ctx context.Context) error {
		return c.HSFetch(ctx, string(addr), servers...)
	})
}

const docHsPost = `hs_post(descriptor, servers=[], address=None)
HSPOST: uploads an onion-service descriptor to servers (a list of HSDirs)
or to the responsible ones; address is the v3 onion address it belongs to.
The results arrive as "hs_desc" events.`

func (t *torMod) hsPost(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var desc string
	var servers relayList
	var addr onionAddress
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "descriptor", &desc, "servers??", &servers, "address??", &addr); err != nil {
		return nil, err
	}
	return t.okCommand(thread, b, func(c *ctl.Conn, ctx context.Context) error {
		return c.HSPost(ctx, desc, ctl.HSPostOptions{Servers: servers, HSAddress: string(addr)})
	})
}

const docOnionClientAuthAdd = `onion_client_auth_add(address, private_key, key_type="x25519", client_name=None, flags=[]) -> (code, message)
ONION_CLIENT_AUTH_ADD: stores the credentials (a base64 x25519 private key)
for reaching a v3 onion service that requires client authorization. flags:
"Permanent" stores them on disk. Returns (250, "OK"), (251, ...) when they
replaced others, or (252, ...) when tor also decrypted a cached descriptor.`

func (t *torMod) onionClientAuthAdd(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var addr onionAddress
	var cred ctl.OnionClientCred
	var flags stringList
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "address", &addr, "private_key", &cred.PrivateKey,
		"key_type??", &cred.KeyType, "client_name??", &cred.ClientName, "flags??", &flags); err != nil {
		return nil, err
	}
	cred.HSAddress, cred.Flags = string(addr), flags
	c, err := t.conn(b)
	if err != nil {
		return nil, err
	}
	res, err := c.OnionClientAuthAdd(Context(thread), cred)
	if err != nil {
		return nil, failed(b, err)
	}
	return completion(res), nil
}

const docOnionClientAuthRemove = `onion_client_auth_remove(address) -> (code, message)
ONION_CLIENT_AUTH_REMOVE: forgets the client credentials for an onion
service. Returns (250, "OK"), or (251, ...) when there were none.`

func (t *torMod) onionClientAuthRemove(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var addr onionAddress
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "address", &addr); err != nil {
		return nil, err
	}
	c, err := t.conn(b)
	if err != nil {
		return nil, err
	}
	res, err := c.OnionClientAuthRemove(Context(thread), string(addr))
	if err != nil {
		return nil, failed(b, err)
	}
	return completion(res), nil
}

const docOnionClientAuthView = `onion_client_auth_view(address=None) -> list of tor.onion_client_cred
ONION_CLIENT_AUTH_VIEW: the stored client credentials, for one onion
service or for all: .hs_address, .key_type, .private_key, .client_name,
.flags.`

func (t *torMod) onionClientAuthView(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var addr onionAddress
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "address??", &addr); err != nil {
		return nil, err
	}
	c, err := t.conn(b)
	if err != nil {
		return nil, err
	}
	creds, err := c.OnionClientAuthView(Context(thread), string(addr))
	if err != nil {
		return nil, failed(b, err)
	}
	return list(creds, func(c *ctl.OnionClientCred) starlark.Value { return NewStruct("tor.onion_client_cred", c) }), nil
}
