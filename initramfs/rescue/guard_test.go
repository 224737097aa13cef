package rescue

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store/kind"
)

func TestGuard(t *testing.T) {
	never := func(context.Context) (kind.GrantState, error) { return "active", nil }
	for _, tc := range []struct {
		name string
		g    *Guard
		act  func(g *Guard)
		want string
	}{
		{"time runs out", &Guard{Left: 50 * time.Millisecond, Idle: time.Hour, PollEvery: 10 * time.Millisecond, Poll: never}, nil, EndExpired},
		{"time runs out with the server unreachable",
			&Guard{Left: 50 * time.Millisecond, Idle: time.Hour, PollEvery: 5 * time.Millisecond,
				Poll: func(context.Context) (kind.GrantState, error) { return "", errors.New("no route to host") }}, nil, EndExpired},
		{"revoked on the server", &Guard{Left: time.Hour, Idle: time.Hour, PollEvery: 10 * time.Millisecond,
			Poll: func(context.Context) (kind.GrantState, error) { return "revoked", nil }}, nil, EndServer + ": revoked"},
		{"idle", &Guard{Left: time.Hour, Idle: 30 * time.Millisecond, PollEvery: time.Hour, Poll: never}, nil, EndIdle},
		{"staff says end", &Guard{Left: time.Hour, Idle: time.Hour, Poll: never}, func(g *Guard) { g.Stop(EndStaff) }, EndStaff},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.act != nil {
				go func() { time.Sleep(20 * time.Millisecond); tc.act(tc.g) }()
			}
			done := make(chan string)
			go func() { done <- tc.g.Wait(context.Background()) }()
			select {
			case got := <-done:
				if got != tc.want {
					t.Errorf("ended because %q, want %q", got, tc.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the session did not end")
			}
		})
	}
}

// An open staff session is not idle, however long it runs.
func TestGuardNotIdleWhileInSession(t *testing.T) {
	var polls atomic.Int32
	g := &Guard{Left: 300 * time.Millisecond, Idle: 20 * time.Millisecond, PollEvery: 10 * time.Millisecond,
		Poll: func(context.Context) (kind.GrantState, error) { polls.Add(1); return "active", nil }}
	end := g.Begin()
	defer end()
	if got := g.Wait(context.Background()); got != EndExpired {
		t.Errorf("ended because %q, want the grant's time", got)
	}
	if polls.Load() < 3 {
		t.Errorf("server polled %d times", polls.Load())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := (&Guard{Left: time.Hour}).Wait(ctx); got != "" {
		t.Errorf("cancelled Wait = %q", got)
	}
}
