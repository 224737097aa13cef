package hwinfo

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
)

// Collect reads the machine under root ("/" in the image). bootMAC marks
// the port the host booted from; health, if set, reads a disk's health
// (NVMeHealth in the image).
func Collect(root, bootMAC string, health func(disk string) string) *agentapi.Hardware {
	h := &agentapi.Hardware{NICs: []agentapi.NIC{}, Disks: []agentapi.Disk{}, Unclaimed: []agentapi.Unclaimed{}}
	h.CPU = cpu(filepath.Join(root, "proc", "cpuinfo"))
	h.MemoryBytes = memTotal(filepath.Join(root, "proc", "meminfo"))
	h.NICs = nics(filepath.Join(root, "sys", "class", "net"), bootMAC)
	h.Disks = disks(filepath.Join(root, "sys", "class", "block"), health)
	return h
}

func cpu(path string) agentapi.CPU {
	var c agentapi.CPU
	b, _ := os.ReadFile(path)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "processor":
			c.Count++
		case "model name":
			if c.Model == "" {
				c.Model = strings.TrimSpace(v)
			}
		}
	}
	return c
}

func memTotal(path string) int64 {
	b, _ := os.ReadFile(path)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// read returns a sysfs attribute, trimmed; "" if there is none.
func read(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func driver(dev string) string {
	t, err := os.Readlink(filepath.Join(dev, "driver"))
	if err != nil {
		return ""
	}
	return filepath.Base(t)
}

// nics lists the ports with a device behind them (not lo, not a VLAN or
// bridge made in the image).
func nics(dir, bootMAC string) []agentapi.NIC {
	out := []agentapi.NIC{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(p, "device")); err != nil {
			continue
		}
		n := agentapi.NIC{Name: e.Name(), MAC: read(filepath.Join(p, "address")), Driver: driver(filepath.Join(p, "device"))}
		n.Link = read(filepath.Join(p, "carrier")) == "1"
		if s, err := strconv.Atoi(read(filepath.Join(p, "speed"))); err == nil && s > 0 && n.Link {
			n.SpeedMbps = s
		}
		n.Boot = bootMAC != "" && strings.EqualFold(n.MAC, bootMAC)
		out = append(out, n)
	}
	return out
}

// disks lists the whole disks: block devices with a device behind them
// that are not partitions (loop, ram and dm have none).
func disks(dir string, health func(string) string) []agentapi.Disk {
	out := []agentapi.Disk{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		dev := filepath.Join(p, "device")
		if _, err := os.Stat(dev); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(p, "partition")); err == nil {
			continue
		}
		sectors, _ := strconv.ParseInt(read(filepath.Join(p, "size")), 10, 64)
		d := agentapi.Disk{Name: e.Name(), Model: read(filepath.Join(dev, "model")), Serial: serial(p, dev),
			Bytes: sectors * 512, Rotational: read(filepath.Join(p, "queue", "rotational")) == "1", Driver: controller(dev)}
		if read(filepath.Join(dev, "vendor")) != "" && !strings.HasPrefix(d.Model, read(filepath.Join(dev, "vendor"))) {
			d.Model = read(filepath.Join(dev, "vendor")) + " " + d.Model
		}
		if health != nil {
			d.Health = health(e.Name())
		}
		out = append(out, d)
	}
	return out
}

// serial is the disk's serial number: NVMe (on the controller) and
// virtio (on the disk) say it in sysfs; SCSI, SATA and USB disks in their
// unit serial number page (VPD 0x80: four header bytes, then the serial).
func serial(disk, dev string) string {
	for _, p := range []string{filepath.Join(dev, "serial"), filepath.Join(disk, "serial")} {
		if s := read(p); s != "" {
			return s
		}
	}
	b, err := os.ReadFile(filepath.Join(dev, "vpd_pg80"))
	if err != nil || len(b) < 4 {
		// USB storage skips the VPD pages: the USB device above says it.
		p, err := filepath.EvalSymlinks(dev)
		for i := 0; err == nil && i < 8 && p != "/" && p != "."; i++ {
			p = filepath.Dir(p)
			if _, e := os.Stat(filepath.Join(p, "idVendor")); e == nil {
				return read(filepath.Join(p, "serial"))
			}
		}
		return ""
	}
	n := int(b[2])<<8 | int(b[3])
	b = b[4:]
	if n < len(b) {
		b = b[:n]
	}
	return strings.TrimSpace(strings.ToValidUTF8(string(bytes.Trim(b, "\x00")), ""))
}

// controller names the driver of the disk's controller: the first driver
// bound above the disk's own device (sd's parent chain: target, host, the
// HBA or USB interface; an NVMe namespace's controller).
func controller(dev string) string {
	p, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return ""
	}
	own := driver(p)
	for i := 0; i < 8 && p != "/" && p != "."; i++ {
		p = filepath.Dir(p)
		if d := driver(p); d != "" && d != own {
			return d
		}
	}
	return own
}
