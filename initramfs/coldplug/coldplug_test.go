package coldplug

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Lines as Debian's 6.1 kernel package has them.
const aliasFile = `# Aliases extracted from modules themselves.
alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000001v* virtio_net
alias virtio:d00000004v* virtio_rng
alias virtio:d00000002v* virtio_blk
alias pci:v000010ECd00008168sv*sd*bc*sc*i* r8169
alias mdio:0000000000011100110010000?????? realtek
alias pci:v00001000d0000005Bsv*sd*bc*sc*i* megaraid_sas
alias scsi:t-0x00* sd_mod
alias crypto-xts xts
alias crypto-xts(aes) aesni_intel
alias fs-ext4 ext4
alias cpu:type:x86,ven*fam*mod*:feature:*0099* aesni_intel
alias *:bad[pattern nothing
alias pci:v*d*sv*sd*bc01sc08i02* nvme
alias crypto-crct10dif crct10dif_pclmul
alias crct10dif crct10dif_pclmul
alias crct10dif crct10dif_generic
`

const softdepFile = `# Soft dependencies extracted from modules themselves.
softdep r8169 pre: realtek
softdep ext4 pre: crc32c
softdep loop pre: a post: b c
softdep crc_t10dif pre: crct10dif
`

func TestMatch(t *testing.T) {
	ix := ParseIndex([]byte(aliasFile), []byte(softdepFile))
	for _, c := range []struct{ modalias, want string }{
		{"pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00", "e1000e"},
		{"pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00", "virtio_pci"},
		{"virtio:d00000001v00001AF4", "virtio_net"},
		{"pci:v000010ECd00008168sv000010ECsd00000123bc02sc00i00", "r8169"},
		{"pci:v00001000d0000005Bsv00001000sd00009261bc01sc04i00", "megaraid_sas"},
		{"pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02", "nvme"},
		{"scsi:t-0x00", "sd_mod"},
		{"cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0001,0099,00E6", "aesni_intel"},
		{"pci:v000015B3d00001017sv000015B3sd00000007bc02sc00i00", ""}, // ConnectX-5: not in this index
		{"acpi:PNP0303:", ""},
		{"", ""},
	} {
		if got := strings.Join(ix.Match(c.modalias), ","); got != c.want {
			t.Errorf("Match(%q) = %q, want %q", c.modalias, got, c.want)
		}
	}
	for _, c := range []struct{ name, want string }{
		{"crypto-xts(aes)", "aesni_intel"}, {"fs-ext4", "ext4"}, {"xts", "xts"}, {"dm-crypt", "dm_crypt"}, {"net-pf-38", "net_pf_38"},
	} {
		if got := strings.Join(ix.Resolve(c.name), ","); got != c.want {
			t.Errorf("Resolve(%q) = %q, want %q", c.name, got, c.want)
		}
	}
	if got := ix.Softdeps("loop"); !reflect.DeepEqual(got, Softdep{Pre: []string{"a"}, Post: []string{"b", "c"}}) {
		t.Errorf("Softdeps(loop) = %+v", got)
	}
}

func TestNetFirst(t *testing.T) {
	for m, want := range map[string]bool{
		"pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00": true,  // a NIC
		"pci:v00001AF4d00001042sv00001AF4sd00001100bc01sc00i00": true,  // virtio transport (a disk behind it)
		"virtio:d00000001v00001AF4":                             true,  // virtio NIC
		"virtio:d00000004v00001AF4":                             true,  // virtio RNG
		"virtio:d00000002v00001AF4":                             false, // virtio disk
		"pci:v00001000d0000005Bsv00001000sd00009261bc01sc04i00": false, // RAID controller
		"usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00":     false,
	} {
		if got := NetFirst(m); got != want {
			t.Errorf("NetFirst(%q) = %v, want %v", m, got, want)
		}
	}
}

// fakeSysfs is a /sys/devices whose drivers, once loaded, bind their
// devices and add the devices behind them.
type fakeSysfs struct {
	t     *testing.T
	root  string
	mu    sync.Mutex
	order []string
	// children: a driver's load adds these devices (path → modalias).
	children map[string]map[string]string
	binds    map[string]string // module → device path it binds
}

func (f *fakeSysfs) device(p, modalias string) {
	dir := filepath.Join(f.root, p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modalias"), []byte(modalias+"\n"), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeSysfs) probe(m string) error {
	f.mu.Lock()
	f.order = append(f.order, m)
	f.mu.Unlock()
	if m == "realtek" {
		return ErrNoModule
	}
	if p, ok := f.binds[m]; ok {
		_ = os.Symlink("../../bus/pci/drivers/"+m, filepath.Join(f.root, p, "driver"))
	}
	for p, ma := range f.children[m] {
		f.device(p, ma)
	}
	return nil
}

// TestColdplug: network first (the NIC, the virtio transport, then the
// virtio NIC that appears behind it), then the rest (the RAID controller,
// then the disk behind it); a softdep before its module; a bound device
// is not loaded for again.
func TestColdplug(t *testing.T) {
	f := &fakeSysfs{t: t, root: t.TempDir(),
		children: map[string]map[string]string{
			"virtio_pci":   {"pci0000:00/0000:00:03.0/virtio0": "virtio:d00000001v00001AF4", "pci0000:00/0000:00:05.0/virtio1": "virtio:d00000002v00001AF4"},
			"megaraid_sas": {"pci0000:00/0000:00:06.0/host0/target0:2:0/0:2:0:0": "scsi:t-0x00"},
		},
		binds: map[string]string{"e1000e": "pci0000:00/0000:00:02.0", "virtio_pci": "pci0000:00/0000:00:03.0", "megaraid_sas": "pci0000:00/0000:00:06.0"},
	}
	f.device("pci0000:00/0000:00:02.0", "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00")
	f.device("pci0000:00/0000:00:03.0", "pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00")
	f.device("pci0000:00/0000:00:04.0", "pci:v000010ECd00008168sv000010ECsd00000123bc02sc00i00")
	f.device("pci0000:00/0000:00:06.0", "pci:v00001000d0000005Bsv00001000sd00009261bc01sc04i00")
	f.device("pci0000:00/0000:00:07.0", "pci:v000015B3d00001017sv000015B3sd00000007bc02sc00i00")
	l := &Loader{Index: ParseIndex([]byte(aliasFile), []byte(softdepFile)), Probe: f.probe}

	net, errs := l.Coldplug(f.root, NetFirst, 8)
	slices.Sort(net)
	if want := []string{"e1000e", "r8169", "virtio_net", "virtio_pci"}; !reflect.DeepEqual(net, want) {
		t.Errorf("network phase loaded %v, want %v (errors %v)", net, want, errs)
	}
	if i, j := slices.Index(f.order, "realtek"), slices.Index(f.order, "r8169"); i < 0 || i > j {
		t.Errorf("softdep realtek not before r8169: %v", f.order)
	}
	if slices.Contains(f.order, "megaraid_sas") || slices.Contains(f.order, "virtio_blk") {
		t.Errorf("storage loaded in the network phase: %v", f.order)
	}
	rest, _ := l.Coldplug(f.root, nil, 8)
	slices.Sort(rest)
	if want := []string{"megaraid_sas", "sd_mod", "virtio_blk"}; !reflect.DeepEqual(rest, want) {
		t.Errorf("second phase loaded %v, want %v", rest, want)
	}
	n := 0
	for _, m := range f.order {
		if m == "e1000e" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("e1000e probed %d times", n)
	}
	devs, _ := Devices(f.root)
	for _, d := range devs {
		if strings.Contains(d.Modalias, "v000015B3") && d.Driver != "" {
			t.Errorf("ConnectX-5 bound to %q", d.Driver)
		}
	}
}

// TestSoftdepAlias: a softdep that names an alias loads every module that
// provides it, before the module, as modprobe does.
func TestSoftdepAlias(t *testing.T) {
	var order []string
	l := &Loader{Index: ParseIndex([]byte(aliasFile), []byte(softdepFile)), Probe: func(m string) error {
		order = append(order, m)
		if m == "crct10dif_pclmul" {
			return errors.New("no such device") // a CPU without PCLMULQDQ
		}
		return nil
	}}
	if err := l.Load("crc-t10dif"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"crct10dif_pclmul", "crct10dif_generic", "crc_t10dif"}; !reflect.DeepEqual(order, want) {
		t.Errorf("load order %v, want %v", order, want)
	}
	if !l.Covers("crct10dif") || l.Covers("scsi:t-0x00") {
		t.Errorf("Covers: crct10dif %v (want true), scsi:t-0x00 %v (want false)", l.Covers("crct10dif"), l.Covers("scsi:t-0x00"))
	}
}

func TestParseUevent(t *testing.T) {
	msg := "add@/devices/pci0000:00/0000:00:06.0/host0/target0:2:0/0:2:0:0\x00ACTION=add\x00DEVPATH=/devices/pci0000:00/0000:00:06.0/host0/target0:2:0/0:2:0:0\x00SUBSYSTEM=scsi\x00MODALIAS=scsi:t-0x00\x00SEQNUM=1234\x00"
	ev, err := ParseUevent([]byte(msg))
	if err != nil || ev.Action != "add" || ev.Env["MODALIAS"] != "scsi:t-0x00" || ev.Env["SUBSYSTEM"] != "scsi" {
		t.Errorf("ParseUevent = %+v, %v", ev, err)
	}
	for _, bad := range []string{"", "\x00", "libudev\x00\xfe\xed", "add@\x00A=b", "@/devices\x00"} {
		if _, err := ParseUevent([]byte(bad)); err == nil {
			t.Errorf("ParseUevent(%q): no error", bad)
		}
	}
}

func FuzzParseUevent(f *testing.F) {
	f.Add([]byte("add@/devices/x\x00ACTION=add\x00MODALIAS=pci:v00008086d000010D3sv*\x00"))
	f.Add([]byte("remove@/devices/x\x00=\x00==\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseUevent(b)
		if err == nil && (ev.Action == "" || ev.DevPath == "") {
			t.Fatalf("accepted %q as %+v", b, ev)
		}
	})
}

func FuzzMatch(f *testing.F) {
	f.Add([]byte(aliasFile), "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00")
	f.Add([]byte("alias [ x\nalias * y\nalias ** z\n"), "anything")
	f.Fuzz(func(t *testing.T, index []byte, modalias string) {
		ix := ParseIndex(index, index)
		for _, m := range ix.Match(modalias) {
			if m == "" {
				t.Fatal("empty module name")
			}
		}
		_ = ix.Resolve(modalias)
	})
}

func TestPCIModalias(t *testing.T) {
	v, d, c, ok := PCIModalias("pci:v000015B3d00001017sv000015B3sd00000007bc02sc00i00")
	if !ok || v != "15b3" || d != "1017" || c != "0200" {
		t.Errorf("PCIModalias = %q %q %q %v", v, d, c, ok)
	}
	for _, bad := range []string{"", "pci:", "usb:v0781p5567", "pci:v000015B3x00001017sv", "pci:v000015B3d00001017bc0", "pci:v0000XYZWd00001017sv000015B3sd00000007bc02sc00i00", "pci:v00000000dbc00sc0\x94"} {
		if _, _, _, ok := PCIModalias(bad); ok {
			t.Errorf("PCIModalias(%q) accepted", bad)
		}
	}
	for class, want := range map[string]bool{"0200": true, "0104": true, "0403": true, "0c03": true, "0600": false, "0300": false, "0c05": false, "": false} {
		if Claimable(class) != want {
			t.Errorf("Claimable(%q) = %v", class, !want)
		}
	}
}

func FuzzPCIModalias(f *testing.F) {
	f.Add("pci:v000015B3d00001017sv000015B3sd00000007bc02sc00i00")
	f.Add("pci:v00000000dbc00sc0\x94") // CI found: a byte that is not hex, lower-cased into U+FFFD
	f.Fuzz(func(t *testing.T, m string) {
		if v, d, c, ok := PCIModalias(m); ok && (!hex4(v) || !hex4(d) || !hex4(c)) {
			t.Fatalf("%q: %q %q %q", m, v, d, c)
		}
	})
}

// TestPendingDisks: a SCSI disk whose driver has loaded but not bound is
// on its way, as is a USB storage host that has not scanned; a bound disk,
// a device no loaded module drives (a tape without st) and a scanned host
// are not.
func TestPendingDisks(t *testing.T) {
	sys := t.TempDir()
	mk := func(p string, files map[string]string) string {
		dir := filepath.Join(sys, "devices", p)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, v := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	link := func(target, at string) {
		if err := os.MkdirAll(filepath.Dir(at), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, at); err != nil {
			t.Fatal(err)
		}
	}
	bus := filepath.Join(sys, "bus", "scsi", "devices")
	unbound := mk("pci0000:00/0000:00:06.0/host0/target0:0:0/0:0:0:0", map[string]string{"modalias": "scsi:t-0x00"})
	link(unbound, filepath.Join(bus, "0:0:0:0"))
	bound := mk("pci0000:00/0000:00:06.0/host0/target0:0:1/0:0:1:0", map[string]string{"modalias": "scsi:t-0x00"})
	link(filepath.Join(sys, "bus", "scsi", "drivers", "sd"), filepath.Join(bound, "driver"))
	link(bound, filepath.Join(bus, "0:0:1:0"))
	tape := mk("pci0000:00/0000:00:06.0/host0/target0:0:2/0:0:2:0", map[string]string{"modalias": "scsi:t-0x01"})
	link(tape, filepath.Join(bus, "0:0:2:0"))
	link(mk("pci0000:00/0000:00:06.0/host0", nil), filepath.Join(bus, "host0"))
	usbHost := mk("pci0000:00/0000:00:07.0/usb1/1-1/1-1:1.0/host1", nil)
	mk("pci0000:00/0000:00:07.0/usb1/1-1/1-1:1.0/host1/scsi_host/host1", map[string]string{"proc_name": "usb-storage"})
	link(filepath.Join(usbHost, "scsi_host", "host1"), filepath.Join(sys, "class", "scsi_host", "host1"))
	link(usbHost, filepath.Join(usbHost, "scsi_host", "host1", "device"))
	hbaHost := mk("pci0000:00/0000:00:06.0/host0/scsi_host/host0", map[string]string{"proc_name": "megaraid_sas"})
	link(hbaHost, filepath.Join(sys, "class", "scsi_host", "host0"))

	l := &Loader{Index: ParseIndex([]byte(aliasFile), nil), Probe: func(string) error { return nil }}
	if got := l.PendingDisks(sys); !reflect.DeepEqual(got, []string{"host1"}) {
		t.Errorf("before sd_mod: pending %v, want [host1] (no disk driver loaded yet)", got)
	}
	if err := l.Load("sd_mod"); err != nil {
		t.Fatal(err)
	}
	if l.Busy() != 0 {
		t.Errorf("Busy() = %d after the load", l.Busy())
	}
	if got := l.PendingDisks(sys); !reflect.DeepEqual(got, []string{"0:0:0:0", "host1"}) {
		t.Errorf("pending %v, want [0:0:0:0 host1]", got)
	}
	mk("pci0000:00/0000:00:07.0/usb1/1-1/1-1:1.0/host1/target1:0:0", nil)
	link(filepath.Join(sys, "bus", "scsi", "drivers", "sd"), filepath.Join(unbound, "driver"))
	if got := l.PendingDisks(sys); len(got) != 0 {
		t.Errorf("after the bind and the scan: pending %v", got)
	}
}
