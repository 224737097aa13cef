package agenttls

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/keys/keyfile"
)

// Keys are the agent API's key and its certificate.
type Keys struct {
	priv ed25519.PrivateKey
	cert tls.Certificate
}

// Load reads the key at path, making it at first start (see keyfile), and
// certifies it for the addresses the agents reach lifeboatd at. Whoever
// holds it can answer agents as lifeboatd.
func Load(path string, addrs ...netip.Addr) (*Keys, error) {
	data, err := keyfile.Load(path, "agent API key", func() ([]byte, error) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
	})
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("agent API key %s: not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("agent API key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("agent API key %s: a %T, want Ed25519", path, k)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "lifeboatd agent API"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, a := range addrs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return nil, err
	}
	return &Keys{priv: priv, cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}}, nil
}

// TLSConfig is the agent listener's: TLS 1.3 only (the RAM image is ours).
func (k *Keys) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{k.cert}}
}

// PublicKey is what agents pin: the key's PKIX form, base64.
func (k *Keys) PublicKey() string {
	der, _ := x509.MarshalPKIXPublicKey(k.priv.Public()) // an Ed25519 key always marshals
	return base64.StdEncoding.EncodeToString(der)
}

// Sign signs msg (agentapi.AnswerMessage) and returns the signature, base64.
func (k *Keys) Sign(msg []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(k.priv, msg))
}
