package httpboot

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"sync"
	"time"
)

// Token errors; the check-in handler branches on them.
var (
	ErrTokenUnknown = errors.New("unknown boot token")
	ErrTokenExpired = errors.New("boot token expired")
	ErrTokenUsed    = errors.New("boot token already used")
	ErrTokenBinding = errors.New("boot token belongs to another host or boot")
)

// Binding is what a token is bound to.
type Binding struct {
	MAC, Host, Boot string
}

type tokenRec struct {
	Binding
	expires time.Time
	used    bool
}

// Tokens holds one-time tokens as hashes only.
type Tokens struct {
	mu  sync.Mutex
	m   map[[32]byte]*tokenRec
	now func() time.Time
}

// NewTokens returns an empty token table.
func NewTokens() *Tokens {
	return &Tokens{m: map[[32]byte]*tokenRec{}, now: time.Now}
}

// Issue mints a token for b valid for ttl and returns it; only its hash is
// kept.
func (t *Tokens) Issue(b Binding, ttl time.Duration) string {
	tok := NewSecret()
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	// Forget long-expired records so that the table stays small. Used
	// records are kept until then, so that a replay is told apart from
	// an unknown token.
	for h, r := range t.m {
		if now.After(r.expires.Add(ttl)) {
			delete(t.m, h)
		}
	}
	t.m[sha256.Sum256([]byte(tok))] = &tokenRec{Binding: b, expires: now.Add(ttl)}
	return tok
}

// Peek returns the binding of a live, unused token without using it.
func (t *Tokens) Peek(tok string) (Binding, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, err := t.lookup(tok)
	if err != nil {
		return Binding{}, err
	}
	return r.Binding, nil
}

// Redeem uses the token once. want, where non-empty, must match the binding.
func (t *Tokens) Redeem(tok string, want Binding) (Binding, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, err := t.lookup(tok)
	if err != nil {
		if r != nil {
			return r.Binding, err
		}
		return Binding{}, err
	}
	if (want.MAC != "" && want.MAC != r.MAC) || (want.Boot != "" && want.Boot != r.Boot) {
		return r.Binding, ErrTokenBinding
	}
	r.used = true
	return r.Binding, nil
}

func (t *Tokens) lookup(tok string) (*tokenRec, error) {
	r, ok := t.m[sha256.Sum256([]byte(tok))]
	switch {
	case !ok:
		return nil, ErrTokenUnknown
	case r.used:
		return r, ErrTokenUsed
	case t.now().After(r.expires):
		return r, ErrTokenExpired
	}
	return r, nil
}

// NewSecret returns 256 random bits, URL-safe.
func NewSecret() string {
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails on Linux
	return base64.RawURLEncoding.EncodeToString(raw[:])
}
