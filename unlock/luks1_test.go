package unlock

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lifeboat-boot/lifeboat/unlock/unlocktest"
)

// TestLUKS1OwnModes: LUKS1 volumes in the modes cryptsetup has made that
// the LUKS library does not open (the CBC modes, its old default
// aes-cbc-essiv:sha256 among them, and aes-xts-plain) open with the right
// passphrase, to the very volume key cryptsetup reports, and refuse a
// wrong one as a wrong passphrase (not as an error that would hide it).
func TestLUKS1OwnModes(t *testing.T) {
	for _, tt := range []struct {
		cipher, hash string
		bits         int
	}{
		{"aes-cbc-essiv:sha256", "sha256", 256},
		{"aes-cbc-essiv:sha256", "sha1", 128},
		{"aes-cbc-plain64", "sha256", 256},
		{"aes-cbc-plain", "sha512", 256},
		{"aes-xts-plain", "sha256", 512},
		{"aes-xts-plain", "sha1", 256},
	} {
		t.Run(tt.cipher+"-"+tt.hash, func(t *testing.T) {
			dir := t.TempDir()
			img := unlocktest.LUKSImage(t, dir, "old", "right horse", "--type", "luks1", "--cipher", tt.cipher, "--hash", tt.hash,
				"--key-size", strconv.Itoa(tt.bits), "--pbkdf-force-iterations", "1000")
			f, _ := os.Open(img)
			h, err := ReadHeader(f)
			f.Close()
			if err != nil || h.Version != 1 || h.Cipher+"-"+h.Mode != tt.cipher {
				t.Fatalf("header %+v, %v", h, err)
			}
			v := Volume{Path: img, Header: h}
			if _, err := (&Unsealer{}).Unseal(context.Background(), v, []byte("wrong horse"), nil); !errors.Is(err, ErrWrongPassphrase) {
				t.Fatalf("wrong passphrase: %v, want ErrWrongPassphrase", err)
			}
			u, err := (&Unsealer{}).Unseal(context.Background(), v, []byte("right horse"), nil)
			if err != nil {
				t.Fatalf("right passphrase: %v", err)
			}
			k, ok := u.Key.(*MasterKey)
			if !ok {
				t.Fatalf("key is a %T, want *MasterKey", u.Key)
			}
			if want := cryptsetupVolumeKey(t, dir, img); !bytes.Equal(k.key, want) {
				t.Errorf("volume key %x, cryptsetup says %x", k.key, want)
			}
			if k.Encryption != tt.cipher || k.Offset == 0 || k.Size == 0 || k.Offset+k.Size != uint64(fileSize(t, img)) {
				t.Errorf("mapping = %+v", k)
			}
		})
	}
}

func fileSize(t *testing.T, p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// cryptsetupVolumeKey asks cryptsetup for the volume key (the passphrase
// through the key file LUKSImage wrote).
func cryptsetupVolumeKey(t *testing.T, dir, img string) []byte {
	out, err := exec.Command("cryptsetup", "luksDump", "--dump-volume-key", "--batch-mode", "--key-file", filepath.Join(dir, "old.pass"), img).CombinedOutput()
	if err != nil {
		t.Fatalf("cryptsetup luksDump: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?s)MK dump:\s*((?:[0-9a-f]{2}\s+)+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no volume key in:\n%s", out)
	}
	key, err := hex.DecodeString(strings.Join(strings.Fields(string(m[1])), ""))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// FuzzLUKS1: whatever a LUKS1 header and its key material hold, opening
// a keyslot returns a key or an error, never a panic. (The fuzzer keeps the
// PBKDF2 cost small; what it fuzzes is the parsing and the merge.)
func FuzzLUKS1(f *testing.F) {
	img := make([]byte, 4096)
	copy(img, luksMagic)
	img[7] = 1
	copy(img[8:], "aes")
	copy(img[40:], "cbc-essiv:sha256")
	copy(img[72:], "sha256")
	f.Add(img)
	xtsImg := bytes.Clone(img)
	copy(xtsImg[40:72], append([]byte("xts-plain"), make([]byte, 23)...))
	xtsImg[111] = 64 // key bytes
	f.Add(xtsImg)
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := readLUKS1(bytes.NewReader(data))
		if err != nil {
			return
		}
		for i := range h.slots {
			if h.slots[i].iterations > 1000 {
				h.slots[i].iterations = 1000
			}
			h.slots[i].active = true
		}
		if h.mkDigestIter > 1000 {
			h.mkDigestIter = 1000
		}
		for id := range h.slots {
			_, _ = unsealLUKS1(bytes.NewReader(data), int64(len(data)), "fuzz", h, id, []byte("x"))
		}
	})
}
