// Package authkeys reads authorized_keys lines as lifeboat's SSH servers
// use them, with their options honoured or refused, never ignored: a
// customer who wrote from="10.1.2.0/24" expects it to hold.
//
// Honoured: from= (address patterns: a.b.c.d, a CIDR, * and ? wildcards,
// ! to exclude). Taken as they are, because lifeboat never offers what
// they forbid: restrict, no-pty, no-port-forwarding, no-agent-forwarding,
// no-X11-forwarding, no-user-rc. Refused with an error: everything else
// (command=, environment=, permitopen=, cert-authority, expiry-time=, ...)
// and host-name patterns in from= (the RAM image does no reverse lookups).
package authkeys

import (
	"fmt"
	"net/netip"
	"path"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Key is one authorized_keys line.
type Key struct {
	ssh.PublicKey
	From []string // from= patterns; none: any address
}

var noops = map[string]bool{"restrict": true, "no-pty": true, "no-port-forwarding": true, "no-agent-forwarding": true,
	"no-x11-forwarding": true, "no-user-rc": true}

// Parse reads one line.
func Parse(line string) (Key, error) {
	pk, _, opts, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return Key{}, err
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return Key{}, fmt.Errorf("one key per line")
	}
	k := Key{PublicKey: pk}
	for _, o := range opts {
		name, val, hasVal := strings.Cut(o, "=")
		switch lname := strings.ToLower(name); {
		case noops[lname] && !hasVal:
		case lname == "from" && hasVal:
			pats := strings.Split(strings.Trim(val, `"`), ",")
			for _, p := range pats {
				if err := checkPattern(p); err != nil {
					return Key{}, fmt.Errorf("from=%q: %w", val, err)
				}
			}
			k.From = append(k.From, pats...)
		default:
			return Key{}, fmt.Errorf("option %q is not supported by lifeboat (supported: from=, restrict, no-pty, no-port-forwarding, no-agent-forwarding, no-X11-forwarding, no-user-rc); remove it, or the key is not let in", name)
		}
	}
	return k, nil
}

func checkPattern(p string) error {
	p = strings.TrimPrefix(p, "!")
	if p == "" {
		return fmt.Errorf("empty pattern")
	}
	if strings.Contains(p, "/") {
		if _, err := netip.ParsePrefix(p); err != nil {
			return fmt.Errorf("pattern %q: not a CIDR prefix", p)
		}
		return nil
	}
	if strings.Trim(p, "0123456789abcdefABCDEF.:*?") != "" {
		return fmt.Errorf("pattern %q: only addresses, CIDR prefixes and * ? wildcards (host names are not looked up)", p)
	}
	return nil
}

// Allows reports whether a login from addr may use k: with from=, addr
// must match a pattern and no negated one.
func (k Key) Allows(addr netip.Addr) bool {
	if len(k.From) == 0 {
		return true
	}
	addr = addr.Unmap()
	ok := false
	for _, p := range k.From {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		var m bool
		if pfx, err := netip.ParsePrefix(p); err == nil {
			m = pfx.Contains(addr)
		} else {
			m, _ = path.Match(strings.ToLower(p), addr.String())
		}
		if m && neg {
			return false
		}
		ok = ok || m
	}
	return ok
}
