package unlock

import (
	"sync"
	"time"
)

// Limiter counts wrong passphrases across all sessions of a boot and locks
// the prompt for a while after too many, so that a stolen SSH key does not
// give an attacker unlimited guesses.
type Limiter struct {
	MaxTries int
	Lockout  time.Duration
	Now      func() time.Time

	mu          sync.Mutex
	failures    int
	lockedUntil time.Time
}

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Wait returns how long the prompt is still locked (0: not locked).
func (l *Limiter) Wait() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := l.lockedUntil.Sub(l.now()); d > 0 {
		return d
	}
	return 0
}

// Fail records a wrong passphrase. It returns the tries left before the
// lockout, and whether this failure started one.
func (l *Limiter) Fail() (left int, locked bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures++
	if l.failures >= l.MaxTries {
		l.failures = 0
		l.lockedUntil = l.now().Add(l.Lockout)
		return 0, true
	}
	return l.MaxTries - l.failures, false
}

// Succeed clears the count.
func (l *Limiter) Succeed() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = 0
}
