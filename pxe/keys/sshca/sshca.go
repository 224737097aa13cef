package sshca

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/pxe/keys/keyfile"
)

// CA signs host certificates.
type CA struct {
	signer ssh.Signer
}

// Load reads the CA key at path, making it at first start (see keyfile).
// Whoever holds it can impersonate every host.
func Load(path string) (*CA, error) {
	data, err := keyfile.Load(path, "ssh CA key", func() ([]byte, error) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		block, err := ssh.MarshalPrivateKey(priv, "lifeboat host CA")
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(block), nil
	})
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("ssh CA key %s: %w", path, err)
	}
	return &CA{signer: signer}, nil
}

// PublicKey returns the CA's public key.
func (c *CA) PublicKey() ssh.PublicKey { return c.signer.PublicKey() }

// KnownHosts returns the line for a customer's known_hosts that trusts the
// CA for host names matching pattern (a known_hosts pattern list, e.g.
// "*.rescue.example.net,10.1.*": never "*", which would extend the trust
// to every host the customer connects to).
func (c *CA) KnownHosts(pattern string) string {
	return "@cert-authority " + pattern + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(c.PublicKey()))) + " lifeboat-host-ca"
}

// HostCert asks for a host certificate.
type HostCert struct {
	Key        ssh.PublicKey
	KeyID      string   // shown in sshd logs: host and boot
	Principals []string // the names and addresses the customer connects to
	ValidFor   time.Duration
	Now        time.Time
}

// Sign signs a host certificate. Its validity starts five minutes before
// now, to allow for a client clock a little behind.
func (c *CA) Sign(r HostCert) (*ssh.Certificate, error) {
	if r.Key == nil || len(r.Principals) == 0 || r.ValidFor <= 0 {
		return nil, errors.New("ssh CA: a host certificate needs a key, principals and a validity")
	}
	if _, isCert := r.Key.(*ssh.Certificate); isCert {
		return nil, errors.New("ssh CA: the host key is a certificate already")
	}
	var serial [8]byte
	_, _ = rand.Read(serial[:])
	cert := &ssh.Certificate{
		Key:             r.Key,
		Serial:          binary.BigEndian.Uint64(serial[:]),
		CertType:        ssh.HostCert,
		KeyId:           r.KeyID,
		ValidPrincipals: r.Principals,
		ValidAfter:      uint64(r.Now.Add(-5 * time.Minute).Unix()),
		ValidBefore:     uint64(r.Now.Add(r.ValidFor).Unix()),
	}
	if err := cert.SignCert(rand.Reader, c.signer); err != nil {
		return nil, fmt.Errorf("ssh CA: %w", err)
	}
	return cert, nil
}

// KRL returns an OpenSSH key revocation list (PROTOCOL.krl) that revokes
// this CA's certificates with the given serials: those of boots that have
// ended. A customer's ssh given it (RevokedHostKeys) refuses a host that
// presents one of them, though it has not expired yet. version should grow
// with every change of the list.
func (c *CA) KRL(serials []uint64, version uint64, now time.Time) []byte {
	s := slices.Clone(serials)
	slices.Sort(s)
	s = slices.Compact(s)
	var list []byte
	for _, n := range s {
		list = binary.BigEndian.AppendUint64(list, n)
	}
	var certs []byte
	certs = appendString(certs, c.PublicKey().Marshal()) // ca_key
	certs = appendString(certs, nil)                     // reserved
	if len(list) > 0 {
		certs = append(certs, 0x20) // KRL_SECTION_CERT_SERIAL_LIST
		certs = appendString(certs, list)
	}
	var b []byte
	b = append(b, "SSHKRL\n\x00"...)
	b = binary.BigEndian.AppendUint32(b, 1) // format version
	b = binary.BigEndian.AppendUint64(b, version)
	b = binary.BigEndian.AppendUint64(b, uint64(now.Unix()))
	b = binary.BigEndian.AppendUint64(b, 0) // flags
	b = appendString(b, nil)                // reserved
	b = appendString(b, []byte("lifeboat: host certificates of ended boots"))
	b = append(b, 1) // KRL_SECTION_CERTIFICATES
	return appendString(b, certs)
}

func appendString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
