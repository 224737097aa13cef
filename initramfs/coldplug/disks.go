package coldplug

import (
	"os"
	"path/filepath"
	"strings"
)

// Sysfs is where the kernel shows its devices and buses.
const Sysfs = "/sys"

// Covers says whether a module that matches modalias has loaded: the
// device's driver is in the kernel, whether or not it has bound yet.
func (l *Loader) Covers(modalias string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.Index.Match(modalias) {
		if err, ok := l.done[m]; ok && err == nil {
			return true
		}
	}
	return false
}

// Busy is the number of modules loading now.
func (l *Loader) Busy() int { return int(l.busy.Load()) }

// PendingDisks names the disks still on their way, under sys (/sys): a
// SCSI device whose driver has loaded but not bound yet (sd_mod probes
// its disks asynchronously, seconds under emulation, with no uevent until
// the disk appears), and a USB storage host that has not scanned for its
// disk yet (usb-storage waits delay_use, a second, before it scans).
// Waiting for these, not only for a quiet second, is what makes the disk
// behind an HBA or on USB part of the first volume list.
func (l *Loader) PendingDisks(sys string) []string {
	var out []string
	devs, _ := os.ReadDir(filepath.Join(sys, "bus", "scsi", "devices"))
	for _, e := range devs {
		dir := filepath.Join(sys, "bus", "scsi", "devices", e.Name())
		b, err := os.ReadFile(filepath.Join(dir, "modalias"))
		if err != nil { // a host or a target: only devices have a modalias
			continue
		}
		if _, err := os.Lstat(filepath.Join(dir, "driver")); err == nil {
			continue
		}
		if l.Covers(strings.TrimSpace(string(b))) {
			out = append(out, e.Name())
		}
	}
	hosts, _ := os.ReadDir(filepath.Join(sys, "class", "scsi_host"))
	for _, e := range hosts {
		dir := filepath.Join(sys, "class", "scsi_host", e.Name())
		b, err := os.ReadFile(filepath.Join(dir, "proc_name"))
		if err != nil || strings.TrimSpace(string(b)) != "usb-storage" {
			continue
		}
		kids, _ := os.ReadDir(filepath.Join(dir, "device"))
		scanned := false
		for _, k := range kids {
			scanned = scanned || strings.HasPrefix(k.Name(), "target")
		}
		if !scanned {
			out = append(out, e.Name())
		}
	}
	return out
}
