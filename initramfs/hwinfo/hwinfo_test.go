package hwinfo

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
)

type fakeRoot struct {
	t    *testing.T
	root string
}

func (f fakeRoot) file(p, v string) {
	p = filepath.Join(f.root, p)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f fakeRoot) link(target, at string) {
	at = filepath.Join(f.root, at)
	if err := os.MkdirAll(filepath.Dir(at), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Symlink(target, at); err != nil {
		f.t.Fatal(err)
	}
}

// TestCollect: a machine with two ports (the second booted, with link), a
// disk behind a RAID controller (serial from VPD page 0x80), an NVMe disk
// with its health, and what is not a disk or a port (a partition, lo).
func TestCollect(t *testing.T) {
	f := fakeRoot{t, t.TempDir()}
	f.file("proc/cpuinfo", "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n")
	f.file("proc/meminfo", "MemTotal:       263842332 kB\nMemFree:  1 kB\n")
	pci := "/sys/devices/pci0000:00"
	for _, n := range []struct{ name, slot, drv, mac, carrier, speed string }{
		{"eth0", "0000:00:02.0", "i40e", "3c:fd:fe:00:00:01", "0", "-1"},
		{"eth1", "0000:00:03.0", "mlx5_core", "b8:ce:f6:00:00:02", "1", "25000"},
	} {
		f.file(pci+"/"+n.slot+"/net/"+n.name+"/address", n.mac+"\n")
		f.file(pci+"/"+n.slot+"/net/"+n.name+"/carrier", n.carrier+"\n")
		f.file(pci+"/"+n.slot+"/net/"+n.name+"/speed", n.speed+"\n")
		f.link(f.root+"/sys/bus/pci/drivers/"+n.drv, pci+"/"+n.slot+"/driver")
		f.link(f.root+pci+"/"+n.slot, pci+"/"+n.slot+"/net/"+n.name+"/device")
		f.link(f.root+pci+"/"+n.slot+"/net/"+n.name, "/sys/class/net/"+n.name)
	}
	f.file("/sys/devices/virtual/net/lo/address", "00:00:00:00:00:00\n")
	f.link(f.root+"/sys/devices/virtual/net/lo", "/sys/class/net/lo")

	sd := pci + "/0000:00:06.0/host0/target0:2:0/0:2:0:0"
	f.link(f.root+"/sys/bus/pci/drivers/megaraid_sas", pci+"/0000:00:06.0/driver")
	f.link(f.root+"/sys/bus/scsi/drivers/sd", sd+"/driver")
	f.file(sd+"/model", "PERC H755        \n")
	f.file(sd+"/vendor", "DELL    \n")
	f.file(sd+"/vpd_pg80", "\x00\x80\x00\x0c  SN-RAID-01")
	f.file(sd+"/block/sda/size", "1953525168\n")
	f.file(sd+"/block/sda/queue/rotational", "1\n")
	f.link(f.root+sd, sd+"/block/sda/device")
	f.link(f.root+sd+"/block/sda", "/sys/class/block/sda")
	f.file(sd+"/block/sda/sda1/partition", "1\n")
	f.link(f.root+sd, sd+"/block/sda/sda1/device") // what a partition has is not a disk's
	f.link(f.root+sd+"/block/sda/sda1", "/sys/class/block/sda1")

	nv := pci + "/0000:00:07.0/nvme/nvme0"
	f.link(f.root+"/sys/bus/pci/drivers/nvme", pci+"/0000:00:07.0/driver")
	f.file(nv+"/model", "SAMSUNG MZQL23T8HCLS-00A07\n")
	f.file(nv+"/serial", "S64HNE0R000001\n")
	f.file(nv+"/nvme0n1/size", "7501476528\n")
	f.file(nv+"/nvme0n1/queue/rotational", "0\n")
	f.link(f.root+nv, nv+"/nvme0n1/device")
	f.link(f.root+nv+"/nvme0n1", "/sys/class/block/nvme0n1")
	f.file("/sys/devices/virtual/block/loop0/size", "0\n")
	f.link(f.root+"/sys/devices/virtual/block/loop0", "/sys/class/block/loop0")

	h := Collect(f.root, "B8:CE:F6:00:00:02", func(d string) string {
		if d == "nvme0n1" {
			return "ok"
		}
		return ""
	})
	want := &agentapi.Hardware{
		CPU:         agentapi.CPU{Model: "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", Count: 2},
		MemoryBytes: 263842332 << 10,
		NICs: []agentapi.NIC{
			{Name: "eth0", MAC: "3c:fd:fe:00:00:01", Driver: "i40e"},
			{Name: "eth1", MAC: "b8:ce:f6:00:00:02", Driver: "mlx5_core", Link: true, SpeedMbps: 25000, Boot: true},
		},
		Disks: []agentapi.Disk{
			{Name: "nvme0n1", Model: "SAMSUNG MZQL23T8HCLS-00A07", Serial: "S64HNE0R000001", Bytes: 7501476528 * 512, Driver: "nvme", Health: "ok"},
			{Name: "sda", Model: "DELL PERC H755", Serial: "SN-RAID-01", Bytes: 1953525168 * 512, Rotational: true, Driver: "megaraid_sas"},
		},
		Unclaimed: []agentapi.Unclaimed{},
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("Collect:\n got %+v\nwant %+v", h, want)
	}
	if err := h.Check(); err != nil {
		t.Errorf("the report of a real machine fails its own check: %v", err)
	}
}

func TestSMARTHealth(t *testing.T) {
	for _, c := range []struct {
		log  []byte
		want string
	}{
		{[]byte{0, 0x3b, 0x01, 100, 10, 3}, "ok"},
		{[]byte{0x01, 0, 0, 5, 10, 3}, "NVMe health: spare capacity below its threshold"},
		{[]byte{0x0c, 0, 0, 100, 10, 100}, "NVMe health: reliability degraded, read-only, 100% of its rated endurance used"},
		{[]byte{0}, ""},
	} {
		if got := SMARTHealth(c.log); got != c.want {
			t.Errorf("SMARTHealth(% x) = %q, want %q", c.log, got, c.want)
		}
	}
}
