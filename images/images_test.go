package images

import (
	"reflect"
	"strings"
	"testing"
)

const dep = `kernel/drivers/md/dm-crypt.ko: kernel/drivers/md/dm-mod.ko kernel/crypto/async_tx/async_xor.ko
kernel/drivers/md/dm-mod.ko:
kernel/crypto/async_tx/async_xor.ko: kernel/crypto/async_tx/async_tx.ko
kernel/crypto/async_tx/async_tx.ko:
kernel/fs/ext4/ext4.ko: kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
`

func TestClosure(t *testing.T) {
	got, err := Closure([]byte(dep), []byte("kernel/crypto/aes_generic.ko\n"), []string{"dm_crypt", "aes-generic"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kernel/crypto/async_tx/async_tx.ko", "kernel/crypto/async_tx/async_xor.ko", "kernel/drivers/md/dm-crypt.ko", "kernel/drivers/md/dm-mod.ko"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Closure = %v, want %v", got, want)
	}
	if _, err := Closure([]byte(dep), nil, []string{"ext4", "nvidia"}); err == nil || !strings.Contains(err.Error(), "nvidia") {
		t.Errorf("missing module: %v", err)
	}
}

func TestResolvePackage(t *testing.T) {
	out := []byte("linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n")
	if got, err := ResolvePackage(out, "linux-image-amd64"); err != nil || got != "linux-image-6.1.0-56-amd64" {
		t.Errorf("ResolvePackage = %q, %v", got, err)
	}
	if _, err := ResolvePackage([]byte("linux-image-amd64\n"), "linux-image-amd64"); err == nil {
		t.Error("no error without a Depends line")
	}
}
