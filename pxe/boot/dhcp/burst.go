package dhcp

import (
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// Bursts decides which DHCP answers get a record of their own. The first
// answer of a kind (code, host, boot, reply type, client) is recorded
// before it is sent, as every step is; the same answer again within Window
// (firmware retrying, or a flood of spoofed DISCOVERs for the host's MAC)
// is sent and counted, and once the burst has been quiet for Window one
// record says how many there were. A flood of 20,000 packets wrote about
// 4,250 dhcp.offer records before; it now writes two per kind.
type Bursts struct {
	Window time.Duration // default 10 s

	mu sync.Mutex
	m  map[string]*burst
}

type burst struct {
	ev          audit.Event
	first, last time.Time
	repeats     int
}

func (b *Bursts) window() time.Duration {
	if b.Window > 0 {
		return b.Window
	}
	return 10 * time.Second
}

func burstKey(ev audit.Event) string {
	return fmt.Sprintf("%s|%s|%s|%s|%s", ev.Code, ev.MAC, ev.Boot, ev.Details["type"], ev.Details["client"])
}

// Admit says whether ev is to be recorded now (the first of its burst);
// false means it was counted into a burst already recorded.
func (b *Bursts) Admit(ev audit.Event, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]*burst{}
	}
	k := burstKey(ev)
	if cur, ok := b.m[k]; ok && now.Sub(cur.last) < b.window() {
		cur.repeats++
		cur.last = now
		return false
	}
	if len(b.m) > 65536 { // bounded under a flood of MACs; known hosts only reach here
		for k, cur := range b.m {
			if now.Sub(cur.last) >= b.window() {
				delete(b.m, k)
			}
		}
	}
	b.m[k] = &burst{ev: ev, first: now, last: now}
	return true
}

// Ended returns, for each burst quiet for Window that counted repeats, the
// record that says so (details: repeats, seconds), and forgets the bursts
// that ended.
func (b *Bursts) Ended(now time.Time) []audit.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []audit.Event
	for k, cur := range b.m {
		if now.Sub(cur.last) < b.window() {
			continue
		}
		delete(b.m, k)
		if cur.repeats == 0 {
			continue
		}
		ev := cur.ev
		ev.Time = time.Time{}
		ev.Details = maps.Clone(ev.Details)
		if ev.Details == nil {
			ev.Details = map[string]string{}
		}
		ev.Details["repeats"] = fmt.Sprint(cur.repeats)
		ev.Details["burst_seconds"] = fmt.Sprintf("%.1f", cur.last.Sub(cur.first).Seconds())
		out = append(out, ev)
	}
	return out
}
