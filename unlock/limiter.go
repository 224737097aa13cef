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
	pending     int // tries reserved and not yet answered
	lockedUntil time.Time
}

// Try is one passphrase try reserved with Reserve: answer it with Fail,
// Succeed or Cancel, once.
type Try struct {
	l    *Limiter
	done bool
}

// Reserve takes one of the tries left before the lockout for a passphrase
// about to be tried, atomically with the check: tries in flight (parallel
// channels or connections, each in its key derivation) count as failures
// until answered, so that no number of them gets more than MaxTries
// guesses. It returns the lock's remaining time if locked, or busy when
// every try left is in flight.
func (l *Limiter) Reserve() (t *Try, wait time.Duration, busy bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := l.lockedUntil.Sub(l.now()); d > 0 {
		return nil, d, false
	}
	if l.failures+l.pending >= l.MaxTries {
		return nil, 0, true
	}
	l.pending++
	return &Try{l: l}, 0, false
}

func (t *Try) answer() bool {
	if t.done {
		return false
	}
	t.done = true
	t.l.pending--
	return true
}

// Fail records the try as a wrong passphrase: the tries left before the
// lockout, and whether this one started it.
func (t *Try) Fail() (left int, locked bool) {
	t.l.mu.Lock()
	defer t.l.mu.Unlock()
	if !t.answer() {
		return t.l.MaxTries - t.l.failures, false
	}
	return t.l.fail()
}

// Succeed clears the count: the passphrase opened a volume.
func (t *Try) Succeed() {
	t.l.mu.Lock()
	defer t.l.mu.Unlock()
	if t.answer() {
		t.l.failures = 0
	}
}

// Cancel gives the try back: nothing could say whether the passphrase was
// right (no volume could be tried).
func (t *Try) Cancel() {
	t.l.mu.Lock()
	defer t.l.mu.Unlock()
	t.answer()
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

// fail counts a wrong passphrase (l.mu held): the tries left before the
// lockout, and whether this failure started one.
func (l *Limiter) fail() (left int, locked bool) {
	l.failures++
	if l.failures >= l.MaxTries {
		l.failures = 0
		l.lockedUntil = l.now().Add(l.Lockout)
		return 0, true
	}
	return l.MaxTries - l.failures, false
}
