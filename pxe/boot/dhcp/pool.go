package dhcp

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store"
)

// Pool hands out the short-lived addresses a host on a tagged boot network
// (store.Host.VLAN) uses on the untagged segment, where its firmware's PXE
// runs: the firmware and iPXE need an address there for the few seconds it
// takes to load iPXE and learn the VLAN. The host's reservation is on the
// VLAN, never here. Leases live in memory only: a restart forgets them,
// and a host whose lease is gone asks again.
type Pool struct {
	First, Last netip.Addr
	Prefix      int           // the segment's netmask length
	TTL         time.Duration // how long an address stays a MAC's

	mu     sync.Mutex
	byMAC  map[string]poolLease
	byAddr map[netip.Addr]string
	now    func() time.Time
}

type poolLease struct {
	addr    netip.Addr
	expires time.Time
}

// MaxPool bounds a pool: the first stage of a rack's worth of hosts at
// once, not a site's address plan.
const MaxPool = 4096

// ParsePool reads "10.9.0.200-10.9.0.239/24": the first and last address
// and the segment's prefix length.
func ParsePool(s string, ttl time.Duration) (*Pool, error) {
	rng, bits, ok := strings.Cut(s, "/")
	a, b, ok2 := strings.Cut(rng, "-")
	if !ok || !ok2 {
		return nil, fmt.Errorf("first_stage_pool %q: want FIRST-LAST/PREFIX, e.g. 10.9.0.200-10.9.0.239/24", s)
	}
	first, err := netip.ParseAddr(strings.TrimSpace(a))
	if err != nil || !first.Is4() {
		return nil, fmt.Errorf("first_stage_pool %q: %q is not an IPv4 address", s, a)
	}
	last, err := netip.ParseAddr(strings.TrimSpace(b))
	if err != nil || !last.Is4() {
		return nil, fmt.Errorf("first_stage_pool %q: %q is not an IPv4 address", s, b)
	}
	var prefix int
	if _, err := fmt.Sscanf(bits, "%d", &prefix); err != nil || prefix < 1 || prefix > 30 || fmt.Sprint(prefix) != bits {
		return nil, fmt.Errorf("first_stage_pool %q: prefix %q: want 1..30", s, bits)
	}
	if last.Less(first) {
		return nil, fmt.Errorf("first_stage_pool %q: the last address is before the first", s)
	}
	net := netip.PrefixFrom(first, prefix).Masked()
	if !net.Contains(last) {
		return nil, fmt.Errorf("first_stage_pool %q: %s and %s are not in one /%d", s, first, last, prefix)
	}
	if size(first, last) > MaxPool {
		return nil, fmt.Errorf("first_stage_pool %q: more than %d addresses", s, MaxPool)
	}
	return &Pool{First: first, Last: last, Prefix: prefix, TTL: ttl}, nil
}

func size(first, last netip.Addr) int {
	a, b := first.As4(), last.As4()
	return int(uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3])) -
		int(uint32(a[0])<<24|uint32(a[1])<<16|uint32(a[2])<<8|uint32(a[3])) + 1
}

// Lease gives mac its address: the one it holds (its lease renewed), or
// the lowest free one. ok is false when the pool is full.
func (p *Pool) Lease(mac string) (netip.Addr, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock()
	if p.byMAC == nil {
		p.byMAC, p.byAddr = map[string]poolLease{}, map[netip.Addr]string{}
	}
	if l, ok := p.byMAC[mac]; ok {
		l.expires = now.Add(p.TTL)
		p.byMAC[mac] = l
		return l.addr, true
	}
	for a := p.First; !p.Last.Less(a); a = a.Next() {
		owner, taken := p.byAddr[a]
		if taken && p.byMAC[owner].expires.After(now) {
			continue
		}
		if taken {
			delete(p.byMAC, owner)
		}
		p.byMAC[mac] = poolLease{addr: a, expires: now.Add(p.TTL)}
		p.byAddr[a] = mac
		return a, true
	}
	return netip.Addr{}, false
}

// Owner is the MAC holding addr, if its lease is live.
func (p *Pool) Owner(addr netip.Addr) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	mac, ok := p.byAddr[addr]
	if !ok || !p.byMAC[mac].expires.After(p.clock()) {
		return "", false
	}
	return mac, true
}

func (p *Pool) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

// FirstStageInventory is an inventory in which an address of Pool also
// finds the tagged host holding it: that host's firmware and iPXE fetch
// their files (TFTP, the iPXE script, the image) from the pool address.
type FirstStageInventory struct {
	store.Inventory
	Pool *Pool // nil: only reservations
}

// LookupIP finds the host with this reservation, or the tagged host whose
// first stage holds this pool address.
func (f FirstStageInventory) LookupIP(ip netip.Addr) (*store.Host, bool) {
	if h, ok := f.Inventory.LookupIP(ip); ok {
		return h, true
	}
	if f.Pool == nil {
		return nil, false
	}
	owner, ok := f.Pool.Owner(ip.Unmap())
	if !ok {
		return nil, false
	}
	mac, err := net.ParseMAC(owner)
	if err != nil {
		return nil, false
	}
	h, ok := f.Inventory.Lookup(mac)
	if !ok || h.VLAN == 0 {
		return nil, false
	}
	return h, true
}
