package consoles

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestParseSPCR(t *testing.T) {
	com2 := SPCR{IO: true, Address: 0x2f8, Baud: 115200}
	if got, err := ParseSPCR(com2.Table()); err != nil || got != com2 {
		t.Errorf("ParseSPCR(COM2's table) = %+v, %v", got, err)
	}
	mmio := SPCR{Address: 0xfe215040}
	if got, err := ParseSPCR(mmio.Table()); err != nil || got != mmio {
		t.Errorf("ParseSPCR(an MMIO port's table) = %+v, %v", got, err)
	}
	bad := com2.Table()
	bad[50] ^= 1
	short := com2.Table()[:60]
	other := com2.Table()
	copy(other, "FACP")
	for name, b := range map[string][]byte{"checksum": bad, "short": short, "signature": other, "empty": nil} {
		if _, err := ParseSPCR(b); err == nil {
			t.Errorf("%s: ParseSPCR took it", name)
		}
	}
}

// TestAll: the kernel's consoles first (tty0 as tty1), then the SPCR
// port, found by its I/O address, unless a kernel console is on it.
func TestAll(t *testing.T) {
	dir := t.TempDir()
	write := func(p, v string) {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("active", "tty0 ttyS0\n")
	write("tty/ttyS0/port", "0x3F8\n")
	write("tty/ttyS1/port", "0x2F8\n")
	write("tty/ttyS2/port", "0x0\n")
	write("tty/tty1/dev", "4:1\n")
	spcr := filepath.Join(dir, "SPCR")
	active, sys := filepath.Join(dir, "active"), filepath.Join(dir, "tty")
	if err := os.WriteFile(spcr, SPCR{IO: true, Address: 0x2f8, Baud: 57600}.Table(), 0o644); err != nil {
		t.Fatal(err)
	}
	want := []Console{{Path: "/dev/tty1"}, {Path: "/dev/ttyS0"}, {Path: "/dev/ttyS1", Baud: 57600}}
	if got := All(active, spcr, sys); !reflect.DeepEqual(got, want) {
		t.Errorf("All = %+v, want %+v", got, want)
	}
	if err := os.WriteFile(spcr, SPCR{IO: true, Address: 0x3f8, Baud: 115200}.Table(), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := All(active, spcr, sys); !reflect.DeepEqual(got, want[:2]) {
		t.Errorf("SPCR on the kernel's ttyS0: All = %+v, want %+v", got, want[:2])
	}
	if got := All(active, filepath.Join(dir, "none"), sys); !reflect.DeepEqual(got, want[:2]) {
		t.Errorf("no SPCR: All = %+v", got)
	}
	if got := All(filepath.Join(dir, "none"), filepath.Join(dir, "none"), sys); !reflect.DeepEqual(got, []Console{{Path: "/dev/console"}}) {
		t.Errorf("no sysfs: All = %+v", got)
	}
}

// TestWriter: a console that fails is left out; the message reaches the
// others.
func TestWriter(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w := Open([]Console{{Path: a}, {Path: filepath.Join(dir, "missing")}, {Path: b}})
	if _, err := w.Write([]byte("lifeboat: ready\n")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{a, b} {
		if got, _ := os.ReadFile(p); string(got) != "lifeboat: ready\n" {
			t.Errorf("%s got %q", p, got)
		}
	}
}

func FuzzParseSPCR(f *testing.F) {
	f.Add(SPCR{IO: true, Address: 0x2f8, Baud: 115200}.Table())
	f.Add([]byte("SPCR"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSPCR(b)
		if err == nil && s.Address == 0 {
			t.Fatal("took a table without an address")
		}
	})
}
