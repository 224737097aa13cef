package sshca

import (
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestLoadCreatesOnceAndKeeps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "ssh_ca_key")
	a, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v", fi.Mode(), err)
	}
	b, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(a.PublicKey().Marshal()) != string(b.PublicKey().Marshal()) {
		t.Fatal("a second start made a new CA key")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Load(world-readable key) = %v", err)
	}
	if err := os.WriteFile(path, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil {
		t.Fatal("Load(junk) passed")
	}
}

func TestSignedCertChecks(t *testing.T) {
	ca, err := Load(filepath.Join(t.TempDir(), "ca"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	hk, _ := ssh.NewPublicKey(pub)
	now := time.Now()
	cert, err := ca.Sign(HostCert{Key: hk, KeyID: "web-01 boot 1", Principals: []string{"web-01", "10.0.0.5"}, ValidFor: 4 * time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	checker := &ssh.CertChecker{IsHostAuthority: func(auth ssh.PublicKey, _ string) bool {
		return string(auth.Marshal()) == string(ca.PublicKey().Marshal())
	}}
	addr := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 22}
	if err := checker.CheckHostKey("10.0.0.5:22", addr, cert); err != nil {
		t.Fatalf("certificate for its own address: %v", err)
	}
	if err := checker.CheckHostKey("web-01:22", addr, cert); err != nil {
		t.Fatalf("certificate for its own name: %v", err)
	}
	if err := checker.CheckHostKey("web-02:22", addr, cert); err == nil {
		t.Fatal("certificate accepted for another host's name")
	}
	checker.Clock = func() time.Time { return now.Add(5 * time.Hour) }
	if err := checker.CheckHostKey("web-01:22", addr, cert); err == nil {
		t.Fatal("expired certificate accepted")
	}
	if _, err := ca.Sign(HostCert{Key: cert, Principals: []string{"x"}, ValidFor: time.Hour}); err == nil {
		t.Fatal("signed a certificate as a host key")
	}
	if line := ca.KnownHosts("*.example.net"); !strings.HasPrefix(line, "@cert-authority *.example.net ssh-ed25519 ") {
		t.Fatalf("KnownHosts = %q", line)
	}
}

// TestKRL: OpenSSH's own ssh-keygen reads the revocation list and finds
// the ended boot's certificate revoked and the live one not.
func TestKRL(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Fatal("ssh-keygen is required (make deps)")
	}
	dir := t.TempDir()
	ca, err := Load(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	sign := func(name string) (*ssh.Certificate, string) {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		hk, _ := ssh.NewPublicKey(pub)
		c, err := ca.Sign(HostCert{Key: hk, KeyID: name, Principals: []string{"10.0.0.5"}, ValidFor: time.Hour, Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name+"-cert.pub")
		if err := os.WriteFile(p, ssh.MarshalAuthorizedKey(c), 0o644); err != nil {
			t.Fatal(err)
		}
		return c, p
	}
	ended, endedFile := sign("ended")
	_, liveFile := sign("live")
	krl := filepath.Join(dir, "krl")
	if err := os.WriteFile(krl, ca.KRL([]uint64{ended.Serial, 42, ended.Serial}, 7, time.Now()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ssh-keygen", "-Q", "-l", "-f", krl).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "KRL version 7") || !strings.Contains(string(out), "ended boots") {
		t.Fatalf("ssh-keygen -Q -l: %v\n%s", err, out)
	}
	out, err = exec.Command("ssh-keygen", "-Q", "-f", krl, endedFile).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "REVOKED") {
		t.Errorf("the ended boot's certificate: %v\n%s, want REVOKED", err, out)
	}
	if out, err := exec.Command("ssh-keygen", "-Q", "-f", krl, liveFile).CombinedOutput(); err != nil || !strings.Contains(string(out), "ok") {
		t.Errorf("the live boot's certificate: %v\n%s, want ok", err, out)
	}
}
