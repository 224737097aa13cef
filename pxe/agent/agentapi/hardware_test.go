package agentapi

import (
	"reflect"
	"strings"
	"testing"
)

func TestWarnings(t *testing.T) {
	h := &Hardware{
		Unclaimed: []Unclaimed{
			{Vendor: "15b3", Device: "1017", Class: "0200", Would: "mlx5_core"},
			{Vendor: "abcd", Device: "0001", Class: "ff00"},
		},
		Disks: []Disk{{Name: "nvme0n1", Serial: "S1", Health: "ok"}, {Name: "nvme1n1", Serial: "S2", Health: "NVMe health: read-only"}, {Name: "sda"}},
	}
	want := []string{
		"no driver for 15b3:1017 (Mellanox, Ethernet controller, PCI class 0200): the kernel's mlx5_core drives it; the RAM image leaves it out",
		"no driver for abcd:0001 (PCI class ff00): the kernel has no driver for it either",
		"disk nvme1n1 (serial S2): NVMe health: read-only",
	}
	if got := h.Warnings(); !reflect.DeepEqual(got, want) {
		t.Errorf("Warnings:\n got %q\nwant %q", got, want)
	}
}

func TestCheck(t *testing.T) {
	ok := Hardware{CPU: CPU{Model: "x", Count: 2}, NICs: []NIC{{Name: "eth0", MAC: "52:54:00:00:00:01"}}}
	if err := ok.Check(); err != nil {
		t.Errorf("a plain report: %v", err)
	}
	for name, h := range map[string]Hardware{
		"bad MAC":        {NICs: []NIC{{MAC: "zz"}}},
		"negative speed": {NICs: []NIC{{SpeedMbps: -1}}},
		"negative disk":  {Disks: []Disk{{Bytes: -1}}},
		"many disks":     {Disks: make([]Disk, maxItems+1)},
		"long model":     {CPU: CPU{Model: strings.Repeat("x", maxString+1)}},
		"not UTF-8":      {Disks: []Disk{{Serial: "\xff"}}},
		"CPUs":           {CPU: CPU{Count: -1}},
	} {
		if err := h.Check(); err == nil {
			t.Errorf("%s: Check took it", name)
		}
	}
}
