package rescue

import (
	"context"
	"sync"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store/kind"
)

// Why a rescue session ended, as reported in rescue.end.
const (
	EndExpired = "the grant's time ran out"
	EndServer  = "the server ended the grant" // revoked, or expired there first
	EndIdle    = "no staff session for the idle timeout"
	EndStaff   = "the staff member ended it"
)

// Guard decides when a rescue session ends: when the grant's time runs out
// on the agent's own clock (so a host cut off from the server still ends
// it), when the server says the grant is no longer active, after Idle with
// no staff session open, or when the staff member runs "end".
type Guard struct {
	Left      time.Duration // the grant's time left at check-in
	Idle      time.Duration // default 15 minutes
	PollEvery time.Duration // default 3 s: a revoke ends the session within seconds
	// Poll returns the grant's state on the server; an error (the server
	// unreachable) keeps the session going until Left runs out.
	Poll func(ctx context.Context) (kind.GrantState, error)

	mu       sync.Mutex
	sessions int
	last     time.Time
	stop     chan string
	once     sync.Once
}

func (g *Guard) init() {
	g.once.Do(func() {
		g.stop = make(chan string, 1)
		g.last = time.Now()
		if g.Idle == 0 {
			g.Idle = 15 * time.Minute
		}
		if g.PollEvery == 0 {
			g.PollEvery = 3 * time.Second
		}
	})
}

// Begin counts a staff session open; the func it returns counts it closed.
func (g *Guard) Begin() (end func()) {
	g.init()
	g.mu.Lock()
	g.sessions++
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		g.sessions--
		g.last = time.Now()
		g.mu.Unlock()
	}
}

// Stop ends the session now.
func (g *Guard) Stop(why string) {
	g.init()
	select {
	case g.stop <- why:
	default:
	}
}

// Wait returns why the session ended, or "" if ctx ended first.
func (g *Guard) Wait(ctx context.Context) string {
	g.init()
	deadline := time.NewTimer(g.Left)
	defer deadline.Stop()
	tick := time.NewTicker(min(g.PollEvery, g.Idle))
	defer tick.Stop()
	lastPoll := time.Now()
	for {
		select {
		case <-ctx.Done():
			return ""
		case why := <-g.stop:
			return why
		case <-deadline.C:
			return EndExpired
		case now := <-tick.C:
			g.mu.Lock()
			idle := g.sessions == 0 && now.Sub(g.last) >= g.Idle
			g.mu.Unlock()
			if idle {
				return EndIdle
			}
			if g.Poll != nil && now.Sub(lastPoll) >= g.PollEvery {
				lastPoll = now
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				state, err := g.Poll(pctx)
				cancel()
				if err == nil && state != kind.GrantActive {
					return EndServer + ": " + string(state)
				}
			}
		}
	}
}
