package keyring

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/lifeboat-boot/lifeboat/pxe/keys/keyfile"
)

// Keyring seals webhook secrets for the store with the server's secret
// key, so that a copy of the database alone cannot forge notices.
type Keyring struct {
	key []byte
}

// Load reads the 32-byte key at path, making it at first start
// (see keyfile).
func Load(path string) (*Keyring, error) {
	data, err := keyfile.Load(path, "secret key", func() ([]byte, error) {
		key := make([]byte, chacha20poly1305.KeySize)
		_, err := rand.Read(key)
		return key, err
	})
	if err != nil {
		return nil, err
	}
	if len(data) != chacha20poly1305.KeySize {
		return nil, fmt.Errorf("secret key %s: %d bytes, want %d (a damaged file? with it lost, every webhook must be added again)", path, len(data), chacha20poly1305.KeySize)
	}
	return &Keyring{key: data}, nil
}

// secretPrefix marks a Standard Webhooks secret; base64 of 32 bytes follows.
const secretPrefix = "whsec_"

// NewWebhookSecret makes a webhook signing secret and returns it, and the
// same sealed for the store.
func (k *Keyring) NewWebhookSecret() (secret, sealed string, err error) {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	secret = secretPrefix + base64.StdEncoding.EncodeToString(raw)
	aead, err := chacha20poly1305.NewX(k.key)
	if err != nil {
		return "", "", err
	}
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return secret, base64.StdEncoding.EncodeToString(aead.Seal(nonce, nonce, raw, []byte("lifeboat webhook secret"))), nil
}

// Unseal returns a webhook's signing key from its sealed form.
func (k *Keyring) Unseal(sealed string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return nil, errors.New("sealed webhook secret: not base64")
	}
	aead, err := chacha20poly1305.NewX(k.key)
	if err != nil {
		return nil, err
	}
	if len(b) < aead.NonceSize() {
		return nil, errors.New("sealed webhook secret: too short")
	}
	raw, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte("lifeboat webhook secret"))
	if err != nil {
		return nil, errors.New("sealed webhook secret does not open with this server's secret key (was the key file replaced?)")
	}
	return raw, nil
}

// SecretKey returns the HMAC key of a Standard Webhooks secret (whsec_...).
func SecretKey(secret string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
	if err != nil {
		return nil, errors.New("webhook secret: want whsec_ followed by base64")
	}
	return b, nil
}

// linkKey is the key approval links are signed with: derived from the
// secret key, so that sealing and signing never share a key.
func (k *Keyring) linkKey() []byte {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte("lifeboat approval links v1"))
	return m.Sum(nil)
}

// ApprovalSig signs a grant's approval link. Nothing is stored: the link
// is checked by recomputing it, and dies with the decision, since only a
// grant waiting for its customer can be decided.
func (k *Keyring) ApprovalSig(grantID string) string {
	m := hmac.New(sha256.New, k.linkKey())
	m.Write([]byte("approve:" + grantID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CheckApproval reports whether sig is the approval signature of grantID.
func (k *Keyring) CheckApproval(grantID, sig string) bool {
	return hmac.Equal([]byte(sig), []byte(k.ApprovalSig(grantID)))
}
