//go:build !race

package unlock

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/lifeboat-boot/lifeboat/unlock/unlocktest"
)

// TestUnsealFullDefaultArgon2id checks the pure-Go unsealing on the header a
// server really has: LUKS2 argon2id at cryptsetup's memory cap (1 GiB, 4
// passes, 4 lanes). It is too slow under QEMU's emulation and under the race
// detector, so it runs here, natively (make unit runs it without -race).
func TestUnsealFullDefaultArgon2id(t *testing.T) {
	img := unlocktest.LUKSImage(t, t.TempDir(), "full", "a long customer passphrase",
		"--type", "luks2", "--pbkdf", "argon2id", "--pbkdf-memory", "1048576", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "4")
	f, _ := os.Open(img)
	h, err := ReadHeader(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// cryptsetup caps the lanes at the number of CPUs.
	if s := h.Slots[0]; s.MemoryKiB != 1048576 || s.Iterations != 4 || s.Threads != min(4, runtime.NumCPU()) {
		t.Fatalf("slot = %#v", s)
	}
	start := time.Now()
	u, err := (&Unsealer{}).Unseal(context.Background(), Volume{Path: img, Header: h}, []byte("a long customer passphrase"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("1 GiB argon2id unsealed slot %d in %s; heap in use afterwards %d MiB", u.Slot, time.Since(start).Round(time.Millisecond), ms.HeapInuse>>20)
	if ms.HeapInuse > 256<<20 {
		t.Errorf("the KDF's memory was not given back: %d MiB in use", ms.HeapInuse>>20)
	}
}
