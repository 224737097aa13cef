package sshd

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// CertifiedHostKey returns the host key to serve: key with the
// certificate lifeboatd signed at check-in, or key alone if there is none.
// A certificate for another key is refused rather than served.
func CertifiedHostKey(key ssh.Signer, certText string) (ssh.Signer, error) {
	if certText == "" {
		return key, nil
	}
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(certText))
	if err != nil {
		return nil, fmt.Errorf("host certificate from the server: %w", err)
	}
	cert, ok := pk.(*ssh.Certificate)
	if !ok || cert.CertType != ssh.HostCert {
		return nil, errors.New("host certificate from the server is not a host certificate")
	}
	return ssh.NewCertSigner(cert, key)
}
