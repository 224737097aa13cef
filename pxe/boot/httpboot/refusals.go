package httpboot

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// refusals bound what one address on the boot network gets from asking for
// scripts and agent archives it may not have: each refusal is logged once
// a minute per address with a count (not a WARN each), and past limit
// refusals in a minute the address is answered 429 before any lookup (an
// archive request with a made-up token costs a store query).
type refusals struct {
	limit int // per address and minute; default 60

	mu   sync.Mutex
	m    map[netip.Addr]*refused
	seen time.Time // when m was last swept
}

type refused struct {
	since  time.Time // start of the current minute
	count  int       // refusals in it
	logged int       // refusals since the last log line
	last   time.Time // of the last log line
}

func (f *refusals) max() int {
	if f.limit > 0 {
		return f.limit
	}
	return 60
}

// limited says whether peer has used up its refusals for this minute.
func (f *refusals) limited(peer netip.Addr, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.m[peer]
	return ok && now.Sub(r.since) < time.Minute && r.count >= f.max()
}

// note counts a refusal of peer and logs it if none was logged for peer
// this minute.
func (f *refusals) note(log *slog.Logger, peer netip.Addr, now time.Time, msg string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil || (len(f.m) > 4096 && now.Sub(f.seen) > time.Minute) {
		f.m, f.seen = map[netip.Addr]*refused{}, now // bounded under a flood of addresses
	}
	r, ok := f.m[peer]
	if !ok {
		r = &refused{since: now}
		f.m[peer] = r
	}
	if now.Sub(r.since) >= time.Minute {
		r.since, r.count = now, 0
	}
	r.count++
	r.logged++
	if now.Sub(r.last) < time.Minute {
		return
	}
	log.Warn(msg, append(args, "peer", peer.String(), "refused", r.logged)...)
	r.logged, r.last = 0, now
}
