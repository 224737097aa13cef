package keyfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadMakesOnceAndGuards(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "key")
	n := 0
	gen := func() ([]byte, error) { n++; return []byte{byte(n)}, nil }
	a, err := Load(path, "test key", gen)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(path, "test key", gen)
	if err != nil || string(a) != string(b) || n != 1 {
		t.Fatalf("second Load = %v, %v after %d makes", b, err, n)
	}
	fi, _ := os.Stat(path)
	di, _ := os.Stat(filepath.Dir(path))
	if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Fatalf("modes %v %v", fi.Mode(), di.Mode())
	}
	os.Chmod(path, 0o640)
	if _, err := Load(path, "test key", gen); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Load(group-readable) = %v", err)
	}
}
