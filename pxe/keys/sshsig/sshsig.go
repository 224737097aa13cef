package sshsig

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/ssh"
)

const (
	magic   = "SSHSIG"
	version = 1
	pemType = "SSH SIGNATURE"
	// MaxArmored bounds what Parse reads: an RSA-8192 signature with its
	// key is under 4 KiB armored.
	MaxArmored = 8 << 10
)

// Signature is a parsed SSHSIG blob.
type Signature struct {
	PublicKey ssh.PublicKey
	Namespace string
	HashAlg   string // sha256 or sha512
	Sig       *ssh.Signature
}

// blob is the wire form of a signature (PROTOCOL.sshsig, section 2).
type blob struct {
	PublicKey []byte
	Namespace string
	Reserved  string
	HashAlg   string
	Signature []byte
}

// signedData is what the key signs: the message's hash, bound to the
// namespace (section 3).
type signedData struct {
	Namespace string
	Reserved  string
	HashAlg   string
	Hash      []byte
}

func digest(alg string, msg []byte) ([]byte, error) {
	var h hash.Hash
	switch alg {
	case "sha512":
		h = sha512.New()
	case "sha256":
		h = sha256.New()
	default:
		return nil, fmt.Errorf("signature hash %q: want sha256 or sha512", alg)
	}
	h.Write(msg)
	return h.Sum(nil), nil
}

func toSign(namespace, alg string, msg []byte) ([]byte, error) {
	d, err := digest(alg, msg)
	if err != nil {
		return nil, err
	}
	return append([]byte(magic), ssh.Marshal(signedData{Namespace: namespace, HashAlg: alg, Hash: d})...), nil
}

// Parse reads an armored signature (-----BEGIN SSH SIGNATURE-----), as
// ssh-keygen -Y sign writes it.
func Parse(armored []byte) (*Signature, error) {
	if len(armored) > MaxArmored {
		return nil, fmt.Errorf("signature: longer than %d bytes; paste the whole .sig file and nothing else", MaxArmored)
	}
	b, rest := pem.Decode(bytes.TrimSpace(armored))
	if b == nil || b.Type != pemType {
		return nil, errors.New("signature: want the text ssh-keygen -Y sign wrote, from -----BEGIN SSH SIGNATURE----- to -----END SSH SIGNATURE-----")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("signature: text after the end of the signature")
	}
	raw := b.Bytes
	if !bytes.HasPrefix(raw, []byte(magic)) || len(raw) < len(magic)+4 {
		return nil, errors.New("signature: not an SSHSIG signature")
	}
	raw = raw[len(magic):]
	if v := uint32(raw[0])<<24 | uint32(raw[1])<<16 | uint32(raw[2])<<8 | uint32(raw[3]); v != version {
		return nil, fmt.Errorf("signature: version %d, want %d", v, version)
	}
	var bl blob
	if err := ssh.Unmarshal(raw[4:], &bl); err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	pk, err := ssh.ParsePublicKey(bl.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("signature: its public key: %w", err)
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal(bl.Signature, &sig); err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	if _, err := digest(bl.HashAlg, nil); err != nil {
		return nil, err
	}
	return &Signature{PublicKey: pk, Namespace: bl.Namespace, HashAlg: bl.HashAlg, Sig: &sig}, nil
}

// ErrNotAllowed is a good signature by a key that is not among the allowed.
var ErrNotAllowed = errors.New("signed by a key that is not on record")

// Verify checks that armored is a signature of msg in namespace by one of
// allowed, and returns that key.
func Verify(armored, msg []byte, namespace string, allowed []ssh.PublicKey) (ssh.PublicKey, error) {
	s, err := Parse(armored)
	if err != nil {
		return nil, err
	}
	if s.Namespace != namespace {
		return nil, fmt.Errorf("signature: made for namespace %q, want -n %s", s.Namespace, namespace)
	}
	var key ssh.PublicKey
	want := s.PublicKey.Marshal()
	for _, k := range allowed {
		if bytes.Equal(k.Marshal(), want) {
			key = k
			break
		}
	}
	if key == nil {
		return nil, fmt.Errorf("signature by %s: %w", ssh.FingerprintSHA256(s.PublicKey), ErrNotAllowed)
	}
	data, err := toSign(namespace, s.HashAlg, msg)
	if err != nil {
		return nil, err
	}
	if err := key.Verify(data, s.Sig); err != nil {
		return nil, fmt.Errorf("signature by %s does not match this text: it was made for something else", ssh.FingerprintSHA256(key))
	}
	return key, nil
}

// Sign signs msg in namespace with sha512, armored as ssh-keygen writes it.
func Sign(signer ssh.Signer, msg []byte, namespace string) ([]byte, error) {
	data, err := toSign(namespace, "sha512", msg)
	if err != nil {
		return nil, err
	}
	var sig *ssh.Signature
	if as, ok := signer.(ssh.AlgorithmSigner); ok && signer.PublicKey().Type() == ssh.KeyAlgoRSA {
		sig, err = as.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA512)
	} else {
		sig, err = signer.Sign(rand.Reader, data)
	}
	if err != nil {
		return nil, err
	}
	raw := append([]byte(magic), 0, 0, 0, version)
	raw = append(raw, ssh.Marshal(blob{PublicKey: signer.PublicKey().Marshal(), Namespace: namespace, HashAlg: "sha512", Signature: ssh.Marshal(sig)})...)
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: raw}), nil
}
