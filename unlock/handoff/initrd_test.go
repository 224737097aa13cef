package handoff

import (
	"bytes"
	"compress/gzip"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/u-root/u-root/pkg/cpio"
	"github.com/ulikunitz/xz"
)

// archive makes a newc cpio of files (name -> contents; "dir/" a folder).
func archive(t testing.TB, files map[string]string) []byte {
	var b bytes.Buffer
	w := cpio.Newc.Writer(&b)
	var recs []cpio.Record
	for n, c := range files {
		if strings.HasSuffix(n, "/") {
			recs = append(recs, cpio.Directory(strings.TrimSuffix(n, "/"), 0o755))
			continue
		}
		recs = append(recs, cpio.StaticRecord([]byte(c), cpio.Info{Name: n, Mode: 0o100644}))
	}
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func compress(t testing.TB, kind string, data []byte) []byte {
	var b bytes.Buffer
	var w io.WriteCloser
	var err error
	switch kind {
	case "none":
		return data
	case "gzip":
		w = gzip.NewWriter(&b)
	case "xz":
		w, err = xz.NewWriter(&b)
	case "zstd":
		w, err = zstd.NewWriter(&b)
	case "lz4":
		lw := lz4.NewWriter(&b)
		err = lw.Apply(lz4.LegacyOption(true))
		w = lw
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// early is the microcode archive distributions put first, uncompressed.
func early(t testing.TB) []byte {
	a := archive(t, map[string]string{"kernel/x86/microcode/GenuineIntel.bin": strings.Repeat("u", 1000)})
	return append(a, make([]byte, (512-len(a)%512)%512)...)
}

const uuid = "6c1f0b6e-2d5a-4c1e-9d7a-1b0c2e3f4a5b"

var (
	dracut = map[string]string{"usr/lib/systemd/systemd-cryptsetup": "ELF", "init": "systemd",
		"etc/crypttab": "# dracut\nroot UUID=" + uuid + " none luks,discard\nswap UUID=11111111-2222-3333-4444-555555555555 /etc/swap.key luks\n"}
	initramfsTools = map[string]string{"scripts/local-top/cryptroot": "#!/bin/sh", "conf/conf.d/cryptroot": "",
		"cryptroot/crypttab": "vda2_crypt UUID=" + uuid + " none luks,discard\n"}
	mkinitcpio = map[string]string{"hooks/encrypt": "#!/usr/bin/ash", "init": "#!/usr/bin/ash"}
	testOS     = map[string]string{"init": "ELF", "etc/testos/modules": "dm_crypt\n"}
)

func TestInspect(t *testing.T) {
	for _, tc := range []struct {
		name     string
		files    map[string]string
		kind     string
		early    bool
		flavour  Flavour
		crypttab int
	}{
		{"dracut gzip with microcode", dracut, "gzip", true, FlavourSystemd, 2},
		{"dracut zstd", dracut, "zstd", false, FlavourSystemd, 2},
		{"initramfs-tools zstd with microcode", initramfsTools, "zstd", true, FlavourInitramfsTools, 1},
		{"initramfs-tools xz", initramfsTools, "xz", false, FlavourInitramfsTools, 1},
		{"initramfs-tools lz4", initramfsTools, "lz4", true, FlavourInitramfsTools, 1},
		{"mkinitcpio plain", mkinitcpio, "none", false, FlavourMkinitcpio, 0},
		{"the test OS", testOS, "none", false, FlavourUnknown, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var img []byte
			if tc.early {
				img = early(t)
			}
			img = append(img, compress(t, tc.kind, archive(t, tc.files))...)
			in, err := Inspect(bytes.NewReader(img))
			if err != nil {
				t.Fatal(err)
			}
			if in.Flavour != tc.flavour || len(in.Crypttab) != tc.crypttab {
				t.Errorf("Inspect = %v with %d crypttab entries (%+v), want %v with %d", in.Flavour, len(in.Crypttab), in, tc.flavour, tc.crypttab)
			}
			want := 1
			if tc.early {
				want = 2
			}
			if in.Archives != want || in.Compression[len(in.Compression)-1] != tc.kind {
				t.Errorf("archives %d %v", in.Archives, in.Compression)
			}
		})
	}
}

func TestInspectBad(t *testing.T) {
	good := compress(t, "gzip", archive(t, dracut))
	for name, img := range map[string][]byte{
		"empty":      nil,
		"zeros":      make([]byte, 4096),
		"garbage":    []byte("MZ\x90\x00this is a PE file"),
		"cut gzip":   good[:len(good)/2],
		"bad header": []byte("070701zzzzzzzz"),
	} {
		if _, err := Inspect(bytes.NewReader(img)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzInspect(f *testing.F) {
	f.Add(early(f))
	f.Add(compress(f, "gzip", archive(f, initramfsTools)))
	f.Add(append(early(f), compress(f, "zstd", archive(f, dracut))...))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Inspect(bytes.NewReader(data))
	})
}

func TestMakePlan(t *testing.T) {
	vol := Vol{UUID: uuid, Path: "/dev/vda2"}
	other := Vol{UUID: "99999999-8888-7777-6666-555555555555", Path: "/dev/vdb1"}
	for _, tc := range []struct {
		name     string
		in       *Initrd
		cmdline  string
		vols     []Vol
		keys     string
		crypttab string // the rewritten cryptroot/crypttab, if any
		notes    []string
	}{
		{"systemd names from crypttab", &Initrd{Flavour: FlavourSystemd, Crypttab: ParseCrypttab([]byte(dracut["etc/crypttab"]))}, "", []Vol{vol},
			"etc/cryptsetup-keys.d/root.key", "", nil},
		{"systemd names from rd.luks.name", &Initrd{Flavour: FlavourSystemd}, "rd.luks.name=" + uuid + "=cryptroot", []Vol{vol},
			"etc/cryptsetup-keys.d/cryptroot.key", "", nil},
		{"systemd default name, and a key-file volume said", &Initrd{Flavour: FlavourSystemd,
			Crypttab: []CrypttabEntry{{Name: "data", Device: "UUID=" + other.UUID, KeyFile: "/etc/data.key"}}}, "", []Vol{vol, other},
			"etc/cryptsetup-keys.d/data.key etc/cryptsetup-keys.d/luks-" + uuid + ".key", "", []string{"key file /etc/data.key"}},
		{"initramfs-tools rewrites its crypttab", &Initrd{Flavour: FlavourInitramfsTools, Crypttab: ParseCrypttab([]byte(initramfsTools["cryptroot/crypttab"]))}, "", []Vol{vol, other},
			"cryptroot/keyfiles/vda2_crypt.key", "vda2_crypt UUID=" + uuid + " /cryptroot/keyfiles/vda2_crypt.key luks,discard\n", []string{"/dev/vdb1 is not in the OS initrd's crypttab"}},
		{"initramfs-tools by device path", &Initrd{Flavour: FlavourInitramfsTools, Crypttab: []CrypttabEntry{{Name: "r", Device: "/dev/vda2", KeyFile: "none"}}}, "", []Vol{vol},
			"cryptroot/keyfiles/r.key", "r /dev/vda2 /cryptroot/keyfiles/r.key luks\n", nil},
		{"mkinitcpio, one volume only", &Initrd{Flavour: FlavourMkinitcpio}, "cryptdevice=UUID=" + uuid + ":root", []Vol{vol, other},
			"crypto_keyfile.bin", "", []string{"opens one volume"}},
		{"unknown: where systemd looks, said", &Initrd{}, "rd.luks.name=" + uuid + "=root", []Vol{vol},
			"etc/cryptsetup-keys.d/root.key", "", []string{"most systems find it there"}},
		{"a crypttab name that cannot be a file name", &Initrd{Flavour: FlavourInitramfsTools, Crypttab: []CrypttabEntry{{Name: "../x", Device: "UUID=" + uuid}}}, "", []Vol{vol},
			"", "", []string{"cannot be a key file name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := MakePlan(tc.in, tc.cmdline, tc.vols)
			if got := strings.Join(p.KeyPaths, " "); got != tc.keys {
				t.Errorf("keys %q, want %q", got, tc.keys)
			}
			if got := string(p.Files["cryptroot/crypttab"]); got != tc.crypttab {
				t.Errorf("crypttab %q, want %q", got, tc.crypttab)
			}
			if len(p.Notes) != len(tc.notes) {
				t.Errorf("notes %q, want %d like %q", p.Notes, len(tc.notes), tc.notes)
			}
			for i, n := range tc.notes {
				if i < len(p.Notes) && !strings.Contains(p.Notes[i], n) {
					t.Errorf("note %q, want it to say %q", p.Notes[i], n)
				}
			}
			// The archive holds the key at each key path, and the files.
			keys := map[string][]byte{}
			for _, u := range p.KeyOf {
				keys[u] = []byte("pass phrase of " + u)
			}
			arch, err := p.Archive(keys)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			if _, err := readCpio(bytes.NewReader(arch), false, func(name string, size int64, data func(int64) ([]byte, error)) error {
				b, err := data(1 << 20)
				got[name] = string(b)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			for _, k := range p.KeyPaths {
				if p.KeyOf[k] == "" || got[k] != "pass phrase of "+p.KeyOf[k] {
					t.Errorf("%s holds %q", k, got[k])
				}
			}
			for n, c := range p.Files {
				if got[n] != string(c) {
					t.Errorf("%s holds %q", n, got[n])
				}
			}
		})
	}
}
