package images

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const alias = `# Aliases extracted from modules themselves.
alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e
alias pci:v000015B3d00001017sv*sd*bc*sc*i* mlx5_core
alias pci:v00008086d0000293Esv*sd*bc*sc*i* snd_hda_intel
alias fs-ext4 ext4
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb_storage
`

const softdep = `softdep r8169 pre: realtek
softdep snd_hda_intel pre: snd_hda_codec
`

func TestTrimIndexAndLeftOut(t *testing.T) {
	have := map[string]bool{"e1000e": true, "mlx5_core": true, "ext4": true, "r8169": true}
	got := string(TrimIndex([]byte(alias), have))
	want := "alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\nalias pci:v000015B3d00001017sv*sd*bc*sc*i* mlx5_core\nalias fs-ext4 ext4\n"
	if got != want {
		t.Errorf("TrimIndex(alias) =\n%s\nwant\n%s", got, want)
	}
	if got := string(TrimIndex([]byte(softdep), have)); got != "softdep r8169 pre: realtek\n" {
		t.Errorf("TrimIndex(softdep) = %q", got)
	}
	if got := string(LeftOut([]byte(alias), have)); got != "alias pci:v00008086d0000293Esv*sd*bc*sc*i* snd_hda_intel\n" {
		t.Errorf("LeftOut = %q", got)
	}
}

func TestNonFreeSources(t *testing.T) {
	deb822 := `Types: deb
# a snapshot
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://mirror.example/debian
Suites: bookworm
Components: main
`
	got, err := NonFreeSources([]byte(deb822), []byte("deb http://old.example/debian bookworm main contrib\ndeb [arch=amd64] http://x y main\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: non-free-firmware\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n" +
		"Types: deb\nURIs: http://old.example/debian\nSuites: bookworm\nComponents: non-free-firmware\n\n"
	if string(got) != want {
		t.Errorf("NonFreeSources =\n%s\nwant\n%s", got, want)
	}
	if _, err := NonFreeSources(nil, nil); err == nil {
		t.Error("no sources: no error")
	}
}

// TestModuleFirmware reads the firmware names of an ELF object whose
// .modinfo section gcc wrote, as a kernel module's is.
func TestModuleFirmware(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "m.c")
	if err := os.WriteFile(src, []byte(`__attribute__((section(".modinfo"), used)) static const char info[] = "license=GPL\0firmware=bnx2/bnx2-mips-09-6.2.1b.fw\0firmware=./tigon/tg3.bin\0";`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(dir, "m.o")
	if out, err := exec.Command("gcc", "-c", "-o", obj, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	ko, _ := os.ReadFile(obj)
	got, err := ModuleFirmware(ko)
	if err != nil || !reflect.DeepEqual(got, []string{"bnx2/bnx2-mips-09-6.2.1b.fw", "tigon/tg3.bin"}) {
		t.Errorf("ModuleFirmware = %v, %v", got, err)
	}
	if _, err := ModuleFirmware([]byte("not an ELF file")); err == nil || !strings.Contains(err.Error(), "not a kernel module") {
		t.Errorf("not ELF: %v", err)
	}
}

// TestCompressInitramfs: the compressed archive ends on a 4-byte
// boundary, whatever its length, so an archive after it is read on UEFI
// too; zstd reads it back whole, padding and all.
func TestCompressInitramfs(t *testing.T) {
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Fatal("zstd is missing (make deps installs it)")
	}
	dir := t.TempDir()
	for n := range 8 {
		src, dst := filepath.Join(dir, "in"), filepath.Join(dir, "out.zst")
		data := bytes.Repeat([]byte("070701"), 100+n*37)
		data = append(data, byte(n))
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := CompressInitramfs(src, dst); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(dst)
		if fi.Size()%4 != 0 {
			t.Errorf("%d bytes in: %d bytes out, not a multiple of 4", len(data), fi.Size())
		}
		back, err := exec.Command("zstd", "-q", "-d", "-c", dst).Output()
		if err != nil || !bytes.Equal(back, data) {
			t.Errorf("%d bytes in: zstd -d gives %d bytes (%v)", len(data), len(back), err)
		}
	}
}
