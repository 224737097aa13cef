package handoff

import (
	"bytes"
	"io"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

func TestVolumeNames(t *testing.T) {
	u1, u2 := "6c1f0b6e-2d5a-4c1e-9d7a-1b0c2e3f4a5b", "11111111-2222-3333-4444-555555555555"
	tests := []struct {
		cmdline string
		want    map[string]string
	}{
		{"rd.luks.name=" + u1 + "=root quiet", map[string]string{u1: "root", u2: "luks-" + u2}},
		{"rd.luks.name=UUID=" + u1 + "=cryptroot", map[string]string{u1: "cryptroot", u2: "luks-" + u2}},
		{"rd.luks.name=" + u1 + "=../../etc/shadow", map[string]string{u1: "luks-" + u1, u2: "luks-" + u2}}, // no traversal
		{"", map[string]string{u1: "luks-" + u1, u2: "luks-" + u2}},
	}
	for _, tt := range tests {
		got := VolumeNames(tt.cmdline, []string{u1, u2})
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("VolumeNames(%q)[%s] = %q, want %q", tt.cmdline, k, got[k], v)
			}
		}
	}
}

func TestKeyArchive(t *testing.T) {
	key := []byte("pass phrase\x00with any bytes")
	b, err := KeyArchive([]string{"root", "swap"}, key)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, r := range recs {
		if r.Mode&0o170000 == 0o100000 {
			data, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
			files[r.Name] = data
			if r.Mode&0o777 != 0o400 {
				t.Errorf("%s mode %o, want 0400", r.Name, r.Mode&0o777)
			}
		}
	}
	for _, n := range []string{"etc/cryptsetup-keys.d/root.key", "etc/cryptsetup-keys.d/swap.key"} {
		if !bytes.Equal(files[n], key) {
			t.Errorf("%s = %q, want the exact passphrase bytes (no newline)", n, files[n])
		}
	}
	if _, err := KeyArchive([]string{"../x"}, key); err == nil {
		t.Error("KeyArchive accepted a traversal name")
	}
}
