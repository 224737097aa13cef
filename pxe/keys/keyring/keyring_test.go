package keyring

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyring(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	k, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	secret, sealed, err := k.NewWebhookSecret()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, strings.TrimPrefix(secret, "whsec_")) {
		t.Fatal("sealed form holds the secret")
	}
	k2, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := k2.Unseal(sealed)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := SecretKey(secret)
	if string(raw) != string(want) {
		t.Fatal("unsealed key differs")
	}
	other, _ := Load(filepath.Join(t.TempDir(), "other.key"))
	if _, err := other.Unseal(sealed); err == nil || !strings.Contains(err.Error(), "key file replaced") {
		t.Fatalf("Unseal with another key = %v", err)
	}
	for _, bad := range []string{"", "!!", "AAAA"} {
		if _, err := k.Unseal(bad); err == nil {
			t.Errorf("Unseal(%q) passed", bad)
		}
	}
	os.Chmod(path, 0o640)
	if _, err := Load(path); err == nil {
		t.Fatal("a group-readable key file was accepted")
	}
}
