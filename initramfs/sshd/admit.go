package sshd

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Who may start an SSH handshake, modelled on OpenSSH's MaxStartups and
// PerSourcePenalties: connections that have not logged in are few per
// source address and few overall, and a source whose connections sit idle
// until their deadline waits before it may try again. Logged-in
// connections are counted apart (MaxConns), so that idle connections from
// one machine on the boot network cannot keep the customer out.

// Admission limits; zero values take the defaults.
type Limits struct {
	MaxStartups int           // connections not logged in, overall (default 32)
	PerSource   int           // of them from one address (default 4)
	MaxConns    int           // logged-in connections (default 8)
	Penalty     time.Duration // added to a source per connection that timed out without logging in (default 10 s)
	MaxPenalty  time.Duration // a source's penalty is at most this (default 5 min)
}

func (l Limits) withDefaults() Limits {
	if l.MaxStartups == 0 {
		l.MaxStartups = 32
	}
	if l.PerSource == 0 {
		l.PerSource = 4
	}
	if l.MaxConns == 0 {
		l.MaxConns = 8
	}
	if l.Penalty == 0 {
		l.Penalty = 10 * time.Second
	}
	if l.MaxPenalty == 0 {
		l.MaxPenalty = 5 * time.Minute
	}
	return l
}

// Refusal reasons.
const (
	refusedPenalty   = "penalty"    // the source's idle connections timed out: it waits
	refusedPerSource = "per source" // too many handshakes from this address
	refusedStartups  = "startups"   // too many handshakes overall
)

// admission is the server's count of connections, by state and source.
type admission struct {
	lim Limits

	mu      sync.Mutex
	pending map[netip.Addr]int
	total   int
	authed  int
	until   map[netip.Addr]time.Time // a penalised source's next chance
}

func newAdmission(l Limits) *admission {
	return &admission{lim: l.withDefaults(), pending: map[netip.Addr]int{}, until: map[netip.Addr]time.Time{}}
}

func source(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap.Addr().Unmap()
}

// start admits a new connection from src at now, or says why not.
func (a *admission) start(src netip.Addr, now time.Time) (ok bool, why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t, penalised := a.until[src]; penalised {
		if now.Before(t) {
			return false, refusedPenalty
		}
		delete(a.until, src)
	}
	switch {
	case a.pending[src] >= a.lim.PerSource:
		return false, refusedPerSource
	case a.total >= a.lim.MaxStartups:
		return false, refusedStartups
	}
	a.pending[src]++
	a.total++
	return true, ""
}

// done moves a connection of src out of the handshake: logged in (it then
// counts against MaxConns, or is refused), or ended, and if it timed out
// idle, its source is penalised.
func (a *admission) done(src netip.Addr, loggedIn, timedOut bool, now time.Time) (ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending[src]--; a.pending[src] <= 0 {
		delete(a.pending, src)
	}
	a.total--
	if timedOut {
		base := now
		if t, ok := a.until[src]; ok && t.After(now) {
			base = t
		}
		next := base.Add(a.lim.Penalty)
		if limit := now.Add(a.lim.MaxPenalty); next.After(limit) {
			next = limit
		}
		a.until[src] = next
	}
	if !loggedIn {
		return false
	}
	if a.authed >= a.lim.MaxConns {
		return false
	}
	a.authed++
	return true
}

// end releases a logged-in connection.
func (a *admission) end() {
	a.mu.Lock()
	a.authed--
	a.mu.Unlock()
}
