package sshsig

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// keygen makes a key pair with ssh-keygen and returns its private key
// file and public key.
func keygen(t *testing.T, typ string) (string, ssh.PublicKey) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "id_"+typ)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", typ, "-N", "", "-C", "test", "-f", f).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(f + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pk, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return f, pk
}

func sshSign(t *testing.T, key, ns string, msg []byte) []byte {
	t.Helper()
	cmd := exec.Command("ssh-keygen", "-q", "-Y", "sign", "-f", key, "-n", ns)
	cmd.Stdin = bytes.NewReader(msg)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ssh-keygen -Y sign: %v", err)
	}
	return out
}

const ns = "lifeboat-grant"

// The signatures ssh-keygen makes verify here, and no other text, key or
// namespace does.
func TestVerifySSHKeygen(t *testing.T) {
	msg := []byte("grant: g-1\nhost: web1\ndecision: approve\n")
	for _, typ := range []string{"ed25519", "rsa", "ecdsa"} {
		t.Run(typ, func(t *testing.T) {
			key, pk := keygen(t, typ)
			_, other := keygen(t, "ed25519")
			sig := sshSign(t, key, ns, msg)
			got, err := Verify(sig, msg, ns, []ssh.PublicKey{other, pk})
			if err != nil || !bytes.Equal(got.Marshal(), pk.Marshal()) {
				t.Fatalf("Verify = %v, %v", got, err)
			}
			if _, err := Verify(sig, append(msg, 'x'), ns, []ssh.PublicKey{pk}); err == nil {
				t.Error("another text verified")
			}
			if _, err := Verify(sig, msg, "lifeboat-other", []ssh.PublicKey{pk}); err == nil || !strings.Contains(err.Error(), "namespace") {
				t.Errorf("another namespace: %v", err)
			}
			if _, err := Verify(sig, msg, ns, []ssh.PublicKey{other}); !errors.Is(err, ErrNotAllowed) {
				t.Errorf("a key not allowed: %v", err)
			}
		})
	}
}

// What Sign makes, ssh-keygen -Y verify accepts.
func TestSignSSHKeygenVerifies(t *testing.T) {
	key, pk := keygen(t, "ed25519")
	b, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("the exact text\n")
	sig, err := Sign(signer, msg, ns)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	allowed := filepath.Join(dir, "allowed")
	if err := os.WriteFile(allowed, []byte("acme "+string(ssh.MarshalAuthorizedKey(pk))), 0o600); err != nil {
		t.Fatal(err)
	}
	sigf := filepath.Join(dir, "msg.sig")
	if err := os.WriteFile(sigf, sig, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "acme", "-n", ns, "-s", sigf)
	cmd.Stdin = bytes.NewReader(msg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y verify: %v: %s", err, out)
	}
	if _, err := Verify(sig, msg, ns, []ssh.PublicKey{pk}); err != nil {
		t.Fatal(err)
	}
}

func TestParseRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"empty":     "",
		"not pem":   "hello",
		"wrong pem": "-----BEGIN PGP SIGNATURE-----\nAAAA\n-----END PGP SIGNATURE-----\n",
		"no magic":  "-----BEGIN SSH SIGNATURE-----\nQUFBQUFBQUFBQQ==\n-----END SSH SIGNATURE-----\n",
		"long":      strings.Repeat("A", MaxArmored+1),
	} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ==\n-----END SSH SIGNATURE-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err == nil && (s.PublicKey == nil || s.Sig == nil) {
			t.Fatal("parsed without key or signature")
		}
		// Verify must not panic on anything Parse lets through.
		_, _ = Verify(b, []byte("m"), ns, nil)
	})
}
