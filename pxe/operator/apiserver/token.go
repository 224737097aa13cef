package apiserver

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/pxe/keys/sshsig"
	"github.com/lifeboat-boot/lifeboat/pxe/operator/api"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
)

// A customer's API token acts for them: it accepts proposals, changes
// their channels. So the provider does not make it: the customer is given
// one by signing a one-time challenge with one of their own SSH keys
// (ssh-keygen -Y sign -n lifeboat-token), and makes new ones with it.
// Only under the provider's contract may an operator issue one, told to
// the customer first.

// challenges are the nonces handed out and not yet used, per customer.
type challenges struct {
	mu sync.Mutex
	m  map[string]time.Time // customer + "\x00" + nonce -> expiry
}

const (
	challengeTTL = 5 * time.Minute
	maxChallenge = 10000 // outstanding at once: a flood of asks cannot grow memory
	perCustomer  = 8     // nor crowd out other customers
)

func (c *challenges) issue(customer string, now time.Time) (string, error) {
	var b [24]byte
	_, _ = rand.Read(b[:])
	nonce := base64.RawURLEncoding.EncodeToString(b[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]time.Time{}
	}
	for k, exp := range c.m {
		if now.After(exp) {
			delete(c.m, k)
		}
	}
	mine := 0
	for k := range c.m {
		if strings.HasPrefix(k, customer+"\x00") {
			mine++
		}
	}
	if len(c.m) >= maxChallenge || mine >= perCustomer {
		return "", errors.New("too many token requests at once; try again in a few minutes")
	}
	c.m[customer+"\x00"+nonce] = now.Add(challengeTTL)
	return nonce, nil
}

// use spends a nonce: true once, if it was issued for customer and is
// still valid.
func (c *challenges) use(customer, nonce string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := customer + "\x00" + nonce
	exp, ok := c.m[k]
	delete(c.m, k)
	return ok && now.Before(exp)
}

// challenge answers GET /v1/customers/{name}/challenge, without a token.
func (s *Server) challenge(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, err := s.Store.Customer(r.Context(), name); err != nil {
		s.fail(w, r, err)
		return
	}
	nonce, err := s.nonces.issue(name, time.Now())
	if err != nil {
		writeJSON(w, http.StatusTooManyRequests, api.Error{Message: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, api.Challenge{Nonce: nonce, Text: string(store.TokenText(name, nonce)), Namespace: store.TokenNamespace})
}

// token answers POST /v1/customers/{name}/token: with the customer's own
// token, a new one; with an operator's, one only under the contract;
// without a token, one for a signed challenge.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && tok != "" {
		s.auth(func(w http.ResponseWriter, r *http.Request) {
			if !own(w, r, name) {
				return
			}
			p := principal(r)
			if p.Customer == "" && !s.OperatorsChangeCustomers {
				s.refuse(w, r, &refusal{customer: name, what: "make an API token for the customer",
					err: fmt.Errorf("%w: a customer's token acts for them, so they get it with their own key: lifeboat customer token %s --key ~/.ssh/id_ed25519", store.ErrForbidden, name)})
				return
			}
			tok, err := s.Store.CustomerToken(r.Context(), name, p.Name)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			s.Log.Info("api: customer token issued", "by", p.Name, "customer", name)
			writeJSON(w, http.StatusCreated, api.Token{Token: tok})
		}, true).ServeHTTP(w, r)
		return
	}
	var req api.TokenRequest
	if !s.decode(w, r, &req) {
		return
	}
	c, err := s.Store.Customer(r.Context(), name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !s.nonces.use(name, req.Nonce, time.Now()) {
		writeJSON(w, http.StatusForbidden, api.Error{Message: "that challenge is unknown, used or expired", Hint: "ask for a new one: lifeboat customer token " + name + " --key FILE"})
		return
	}
	allowed, err := store.ParseKeys(c.Keys)
	if err != nil || len(allowed) == 0 {
		writeJSON(w, http.StatusForbidden, api.Error{Message: fmt.Sprintf("customer %s has no SSH key on record to sign with", name),
			Hint: "the provider puts the customer's public key on file when adding them (customer add --key-file)"})
		return
	}
	key, err := sshsig.Verify([]byte(req.Signature), store.TokenText(name, req.Nonce), store.TokenNamespace, allowed)
	if err != nil {
		s.Log.Warn("api: token request with a bad signature", "customer", name, "peer", r.RemoteAddr, "err", err)
		writeJSON(w, http.StatusForbidden, api.Error{Message: "the signature does not prove the customer's key: " + err.Error()})
		return
	}
	actor := "customer:" + name + " (key " + ssh.FingerprintSHA256(key) + ")"
	tok, err := s.Store.CustomerToken(r.Context(), name, actor)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.Log.Info("api: customer token issued for a signed challenge", "customer", name, "key", ssh.FingerprintSHA256(key))
	writeJSON(w, http.StatusCreated, api.Token{Token: tok})
}
