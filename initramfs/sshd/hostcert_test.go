package sshd

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/pxe/keys/sshca"
)

// The OpenSSH client, with only the CA's @cert-authority line in
// known_hosts and strict checking, logs in to a server presenting a host
// certificate from that CA without a question, and refuses a server with
// an uncertified key or a certificate for another host.
func TestOpenSSHTrustsCertifiedHostKey(t *testing.T) {
	dir := t.TempDir()
	ca, err := sshca.Load(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	knownHosts := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(knownHosts, []byte(ca.KnownHosts("127.0.0.1,web-01")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	certified := func(principals ...string) ssh.Signer {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		key, _ := ssh.NewSignerFromKey(priv)
		cert, err := ca.Sign(sshca.HostCert{Key: key.PublicKey(), KeyID: "test", Principals: principals, ValidFor: time.Hour, Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		s, err := CertifiedHostKey(key, string(ssh.MarshalAuthorizedKey(cert)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	strict := []string{"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + knownHosts, "-o", "GlobalKnownHostsFile=/dev/null"}

	r := startWith(t, certified("web-01", "127.0.0.1"))
	out, code := r.sshStrict(strict, "hi\n", "-i", r.auth, "root@127.0.0.1", "unlock")
	if code != 7 || !strings.Contains(out, "got=hi") {
		t.Fatalf("certified host: exit %d\n%s", code, out)
	}

	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	plain, _ := ssh.NewSignerFromKey(priv)
	r = startWith(t, plain)
	out, code = r.sshStrict(strict, "", "-i", r.auth, "root@127.0.0.1", "unlock")
	if code != 255 || !strings.Contains(out, "Host key verification failed") {
		t.Fatalf("uncertified host: exit %d, want 255 with a verification failure\n%s", code, out)
	}

	r = startWith(t, certified("web-02", "10.9.9.9"))
	out, code = r.sshStrict(strict, "", "-i", r.auth, "root@127.0.0.1", "unlock")
	if code != 255 {
		t.Fatalf("certificate for another host: exit %d, want 255\n%s", code, out)
	}

	// A certificate for a different key is refused by the agent itself.
	_, priv2, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ssh.NewSignerFromKey(priv2)
	_, priv3, _ := ed25519.GenerateKey(rand.Reader)
	k3, _ := ssh.NewSignerFromKey(priv3)
	cert, _ := ca.Sign(sshca.HostCert{Key: k3.PublicKey(), Principals: []string{"x"}, ValidFor: time.Hour, Now: time.Now()})
	if _, err := CertifiedHostKey(other, string(ssh.MarshalAuthorizedKey(cert))); err == nil {
		t.Fatal("a certificate for another key was accepted")
	}
}
