package unlocktest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Fast are cryptsetup's key-derivation settings for tests: cheap, real.
var Fast = []string{"--pbkdf-force-iterations", "4", "--pbkdf-memory", "8192", "--pbkdf-parallel", "1"}

// LUKSImage formats a 20 MiB LUKS volume in the file dir/name with
// cryptsetup (args are luksFormat's options) and returns its path. The
// passphrase goes through a key file, never argv.
func LUKSImage(t testing.TB, dir, name, pass string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("cryptsetup"); err != nil {
		t.Fatal("cryptsetup is required (make deps)")
	}
	img := filepath.Join(dir, name)
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 20<<20); err != nil {
		t.Fatal(err)
	}
	kf := filepath.Join(dir, name+".pass")
	if err := os.WriteFile(kf, []byte(pass), 0o600); err != nil {
		t.Fatal(err)
	}
	all := append([]string{"luksFormat", "--batch-mode", "--key-file", kf}, args...)
	if out, err := exec.Command("cryptsetup", append(all, img)...).CombinedOutput(); err != nil {
		t.Fatalf("cryptsetup %v: %v\n%s", args, err, out)
	}
	return img
}

// FakeSys returns a /sys/class/block and a /dev in which each name of
// imgs is a block device backed by its image file.
func FakeSys(t testing.TB, imgs map[string]string) (sys, dev string) {
	t.Helper()
	sys, dev = t.TempDir(), t.TempDir()
	for name, img := range imgs {
		_ = os.MkdirAll(filepath.Join(sys, name), 0o755)
		fi, err := os.Stat(img)
		if err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(sys, name, "size"), []byte(fmt.Sprintf("%d\n", fi.Size()/512)), 0o644)
		if err := os.Symlink(img, filepath.Join(dev, name)); err != nil {
			t.Fatal(err)
		}
	}
	return sys, dev
}
