package audit

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// A checkpoint is lifeboatd's signature over the chain's head at a time,
// made with its audit key (ed25519; its public key is published). Hashes
// alone bind each record to those before it; whoever can write the
// database can rewrite everything after the last receipt and re-hash it.
// A checkpoint cannot be made without the key, which is not in the
// database: a rewrite before a checkpoint shows as a checkpoint the chain
// no longer matches, and checkpoints go out with notices, so customers
// hold them as they hold receipts.

// Checkpoint is one signed head.
type Checkpoint struct {
	Seq  int64     `json:"seq"`
	Hash string    `json:"hash"`
	Time time.Time `json:"time"`
	Sig  string    `json:"sig"` // base64 ed25519 over CheckpointMessage
}

// CheckpointMessage is what a checkpoint's signature covers.
func CheckpointMessage(seq int64, hash string, t time.Time) []byte {
	return fmt.Appendf(nil, "lifeboat audit checkpoint v1\n%d\n%s\n%s\n", seq, strings.ToLower(hash), t.UTC().Format(time.RFC3339Nano))
}

// SignCheckpoint signs head at t.
func SignCheckpoint(key ed25519.PrivateKey, head Head, t time.Time) Checkpoint {
	t = t.UTC().Round(0)
	return Checkpoint{Seq: head.Seq, Hash: head.Hash, Time: t,
		Sig: base64.StdEncoding.EncodeToString(ed25519.Sign(key, CheckpointMessage(head.Seq, head.Hash, t)))}
}

// ErrCheckpointSignature is a checkpoint not signed by the audit key.
var ErrCheckpointSignature = errors.New("checkpoint not signed by lifeboatd's audit key")

// Verify checks c's signature with the audit key pub.
func (c Checkpoint) Verify(pub ed25519.PublicKey) error {
	sig, err := base64.StdEncoding.DecodeString(c.Sig)
	if err != nil || len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, CheckpointMessage(c.Seq, c.Hash, c.Time), sig) {
		return fmt.Errorf("record %d: %w", c.Seq, ErrCheckpointSignature)
	}
	return nil
}

// ParseAuditKey reads an audit public key as lifeboatd publishes it
// (base64 of the 32 bytes).
func ParseAuditKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("audit key: want the base64 ed25519 public key lifeboatd publishes (lifeboat audit key)")
	}
	return ed25519.PublicKey(b), nil
}
