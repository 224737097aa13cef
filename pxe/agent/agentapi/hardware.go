package agentapi

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"unicode/utf8"
)

// HardwarePath (PUT, the report token): what the RAM image found on the
// machine, once a boot, after its disks settled.
const HardwarePath = "/agent/v1/hardware"

// Hardware is the hardware report of one boot: what MAAS commissioning
// or Ironic inspection tells operators, and what remote hands diagnose a
// broken host with. Every string is the machine's own (firmware, disks,
// sysfs): shown only escaped.
type Hardware struct {
	CPU         CPU         `json:"cpu"`
	MemoryBytes int64       `json:"memory_bytes"`
	NICs        []NIC       `json:"nics"`
	Disks       []Disk      `json:"disks"`
	Unclaimed   []Unclaimed `json:"unclaimed"` // PCI devices no driver claimed
}

// CPU is the processor model and how many logical CPUs the kernel runs.
type CPU struct {
	Model string `json:"model"`
	Count int    `json:"count"`
}

// NIC is one network port.
type NIC struct {
	Name   string `json:"name"`
	MAC    string `json:"mac"`
	Driver string `json:"driver"`
	Link   bool   `json:"link"`
	// SpeedMbps is the negotiated speed, 0 if the link is down or the
	// driver does not say.
	SpeedMbps int  `json:"speed_mbps"`
	Boot      bool `json:"boot"` // the port this host booted from
}

// Disk is one whole disk (no partitions, no device-mapper).
type Disk struct {
	Name       string `json:"name"`
	Model      string `json:"model"`
	Serial     string `json:"serial"`
	Bytes      int64  `json:"bytes"`
	Rotational bool   `json:"rotational"`
	Driver     string `json:"driver"` // the controller's driver: nvme, ahci, megaraid_sas, usb-storage
	// Health is what the disk says of itself where the image can read
	// it (NVMe's SMART log): "ok", or what is wrong; "" if unread.
	Health string `json:"health,omitempty"`
}

// Unclaimed is a PCI device with no driver bound.
type Unclaimed struct {
	Vendor   string `json:"vendor"` // hex, as lspci -n shows: 15b3
	Device   string `json:"device"` // 1017
	Class    string `json:"class"`  // 0200
	Modalias string `json:"modalias"`
	// Would is the kernel's module that drives it and the image leaves
	// out; "" if the kernel has none either.
	Would string `json:"would,omitempty"`
}

// Bounds of a report: a server has a few dozen of each at most; the
// server refuses more.
const (
	MaxHardwareBytes = 256 << 10
	maxItems         = 256
	maxString        = 256
)

// Check refuses a report no real machine sends: too many items, strings
// too long or not UTF-8, a malformed MAC, negative sizes. Strings are not
// cleaned here: they are kept as the machine said them and escaped where
// shown.
func (h *Hardware) Check() error {
	if len(h.NICs) > maxItems || len(h.Disks) > maxItems || len(h.Unclaimed) > maxItems {
		return fmt.Errorf("hardware report: more than %d NICs, disks or devices", maxItems)
	}
	if h.MemoryBytes < 0 || h.CPU.Count < 0 || h.CPU.Count > 1<<16 {
		return errors.New("hardware report: negative memory or an impossible CPU count")
	}
	strs := []string{h.CPU.Model}
	for _, n := range h.NICs {
		if _, err := net.ParseMAC(n.MAC); err != nil && n.MAC != "" {
			return fmt.Errorf("hardware report: NIC MAC %q: %w", n.MAC, err)
		}
		if n.SpeedMbps < 0 {
			return errors.New("hardware report: negative NIC speed")
		}
		strs = append(strs, n.Name, n.Driver)
	}
	for _, d := range h.Disks {
		if d.Bytes < 0 {
			return errors.New("hardware report: negative disk size")
		}
		strs = append(strs, d.Name, d.Model, d.Serial, d.Driver, d.Health)
	}
	for _, u := range h.Unclaimed {
		strs = append(strs, u.Vendor, u.Device, u.Class, u.Modalias, u.Would)
	}
	for _, s := range strs {
		if len(s) > maxString || !utf8.ValidString(s) {
			return fmt.Errorf("hardware report: a string of %d bytes, or not UTF-8: refused", len(s))
		}
	}
	return nil
}

// Warnings are what the report says the provider must act on, one line
// each: a device without a driver in the image, a disk that reports
// itself failing. They go into the boot's record.
func (h *Hardware) Warnings() []string {
	var out []string
	for _, u := range h.Unclaimed {
		would := "the kernel has no driver for it either"
		if u.Would != "" {
			would = "the kernel's " + u.Would + " drives it; the RAM image leaves it out"
		}
		out = append(out, fmt.Sprintf("no driver for %s:%s (%s): %s", u.Vendor, u.Device, describe(u.Vendor, u.Class), would))
	}
	for _, d := range h.Disks {
		if d.Health != "" && d.Health != "ok" {
			out = append(out, fmt.Sprintf("disk %s (serial %s): %s", d.Name, d.Serial, d.Health))
		}
	}
	return out
}

// Names of the PCI vendors and classes a server's devices come from, so
// that a warning read at 3 a.m. says "Mellanox, Ethernet" and not only
// numbers (the numbers stay: they are what to search for).
var (
	pciVendors = map[string]string{
		"8086": "Intel", "15b3": "Mellanox", "14e4": "Broadcom", "10ec": "Realtek", "1077": "QLogic", "1000": "Broadcom/LSI",
		"1af4": "virtio", "1425": "Chelsio", "19a2": "Emulex", "10df": "Emulex", "1924": "Solarflare", "1137": "Cisco",
		"1d6a": "Aquantia", "1dd8": "Pensando", "9005": "Microchip/Adaptec", "11f8": "Microchip", "103c": "HPE", "1590": "HPE",
		"1028": "Dell", "15ad": "VMware", "1b4b": "Marvell", "144d": "Samsung", "1e0f": "KIOXIA", "1c5c": "SK hynix",
		"1022": "AMD", "10de": "NVIDIA", "1344": "Micron", "8088": "Wangxun", "1ded": "Alibaba", "1d0f": "Amazon",
	}
	pciClasses = map[string]string{
		"0100": "SCSI controller", "0101": "IDE controller", "0104": "RAID controller", "0106": "SATA controller",
		"0107": "SAS controller", "0108": "NVMe controller", "0200": "Ethernet controller", "0207": "InfiniBand controller",
		"0280": "network controller", "0403": "audio device", "0c03": "USB controller", "0c04": "Fibre Channel controller",
		"0c06": "InfiniBand controller", "1200": "accelerator", "0302": "3D controller",
	}
)

// describe says a device's vendor and class in words where they are
// known: "Mellanox, Ethernet controller, PCI class 0200".
func describe(vendor, class string) string {
	var parts []string
	if v := pciVendors[vendor]; v != "" {
		parts = append(parts, v)
	}
	if c := pciClasses[class]; c != "" {
		parts = append(parts, c)
	}
	return strings.Join(append(parts, "PCI class "+class), ", ")
}
