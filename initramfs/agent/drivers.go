package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lifeboat-boot/lifeboat/initramfs/coldplug"
	"github.com/lifeboat-boot/lifeboat/initramfs/hwinfo"
	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/term"
)

// Files of the image's module set (cmd/lifeboat-image).
const (
	// AlwaysModulesFile lists the modules no device asks for that the
	// unlock prompt needs (device-mapper, ciphers), one a line.
	AlwaysModulesFile = "/etc/lifeboat/modules.always"
	// LaterModulesFile lists those loaded once the prompt is up (the
	// file systems of the installed system).
	LaterModulesFile = "/etc/lifeboat/modules.later"
	// ModprobeBin is the image's modprobe, for the kernel's request_module.
	ModprobeBin = "/bbin/lifeboat-modprobe"
	// SysDevices is where coldplug looks for devices.
	SysDevices = "/sys/devices"
)

// Drivers loads what the machine has: the network first, the rest while
// the customer logs in.
type Drivers struct {
	Loader *coldplug.Loader
	Log    *slog.Logger
	// Console gets a warning for each device no driver claimed.
	Console io.Writer
	// LeftOut names what would drive a device the image has no driver for.
	LeftOut *coldplug.Index

	lastEvent atomic.Int64 // unix nanoseconds of the last uevent
}

// NewDrivers reads the image's module index and points the kernel's
// request_module at the image's modprobe.
func NewDrivers(log *slog.Logger) (*Drivers, error) {
	l, err := coldplug.ForMachine(log)
	if err != nil {
		return nil, err
	}
	if err := coldplug.UseModprobe(ModprobeBin); err != nil {
		log.Warn("the kernel cannot load modules on demand", "err", err)
	}
	return &Drivers{Loader: l, Log: log, Console: io.Discard, LeftOut: coldplug.LeftOut()}, nil
}

// Network loads the drivers of the NICs (and the virtio transport and
// entropy source) the machine has.
func (d *Drivers) Network() {
	start := time.Now()
	loaded, errs := d.Loader.Coldplug(SysDevices, coldplug.NetFirst, 8)
	for _, e := range errs {
		d.Log.Warn("network driver not loaded", "err", e)
	}
	d.Log.Info("network drivers loaded", "modules", strings.Join(loaded, ","), "took", time.Since(start).Round(time.Millisecond).String())
}

// Storage loads the rest in the background: the modules no device asks
// for, every device's driver, and the drivers of the devices that appear
// behind them (followed through uevents for the rest of the boot). The
// channel closes once the device tree has settled (no uevent and no
// module loading for settle, no disk on its way; at most maxWait after the
// drivers loaded): the disks behind an HBA or on USB are listed by then.
// The file systems load after that.
func (d *Drivers) Storage(ctx context.Context, settle, maxWait time.Duration) <-chan struct{} {
	done := make(chan struct{})
	d.lastEvent.Store(time.Now().UnixNano())
	if err := d.Loader.Follow(ctx, func(*coldplug.Uevent) { d.lastEvent.Store(time.Now().UnixNano()) }); err != nil {
		d.Log.Warn("devices that appear later will get no driver", "err", err)
	}
	go func() {
		d.disks(ctx, settle, maxWait)
		close(done)
		start, n := time.Now(), 0
		for _, m := range readList(LaterModulesFile) {
			if ctx.Err() != nil {
				return
			}
			if err := d.Loader.Load(m); err != nil {
				d.Log.Warn("module not loaded", "module", m, "err", err)
				continue
			}
			n++
		}
		d.Log.Info("file systems loaded", "modules", n, "took", time.Since(start).Round(time.Millisecond).String())
	}()
	return done
}

// disks loads what the unlock prompt needs and waits for the device tree
// to settle.
func (d *Drivers) disks(ctx context.Context, settle, maxWait time.Duration) {
	start := time.Now()
	// The devices first: their disks probe (and spin up) while the
	// rest loads.
	loaded, errs := d.Loader.Coldplug(SysDevices, nil, 8)
	for _, e := range errs {
		d.Log.Warn("driver not loaded", "err", e)
	}
	n := 0
	for _, m := range readList(AlwaysModulesFile) {
		if err := d.Loader.Load(m); err != nil {
			d.Log.Debug("module not loaded", "module", m, "err", err) // a cipher the CPU lacks (aesni_intel)
			continue
		}
		n++
	}
	deadline := time.Now().Add(maxWait)
	for !d.settled(settle) {
		if time.Now().After(deadline) {
			d.Log.Warn("disks still appearing; the volume list may miss them", "waited", maxWait.String(), "pending", strings.Join(d.Loader.PendingDisks(coldplug.Sysfs), ","))
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	more, _ := d.Loader.Coldplug(SysDevices, nil, 8) // anything the events raced past
	d.Log.Info("drivers loaded", "always", n, "devices", strings.Join(append(loaded, more...), ","),
		"took", time.Since(start).Round(time.Millisecond).String())
	h := agentapi.Hardware{Unclaimed: d.Unclaimed()}
	for _, w := range h.Warnings() {
		fmt.Fprintf(d.Console, "lifeboat: WARNING: %s\n", term.Clean(w))
	}
	for _, u := range h.Unclaimed {
		d.Log.Warn("device without a driver", "vendor", u.Vendor, "device", u.Device, "class", u.Class, "modalias", u.Modalias, "would", u.Would)
	}
}

// settled says whether the device tree has been quiet for settle: no
// uevent, no module loading, no disk on its way.
func (d *Drivers) settled(settle time.Duration) bool {
	return time.Since(time.Unix(0, d.lastEvent.Load())) >= settle && d.Loader.Busy() == 0 && len(d.Loader.PendingDisks(coldplug.Sysfs)) == 0
}

// Hardware is the boot's hardware report: what the machine has, with the
// port it booted from marked and the devices no driver claimed.
func (d *Drivers) Hardware(bootMAC string) *agentapi.Hardware {
	h := hwinfo.Collect("/", bootMAC, hwinfo.NVMeHealth)
	h.Unclaimed = d.Unclaimed()
	return h
}

// Unclaimed lists the PCI devices that should have a driver and have none.
func (d *Drivers) Unclaimed() []agentapi.Unclaimed {
	devs, err := coldplug.Devices(SysDevices)
	if err != nil {
		return nil
	}
	out := []agentapi.Unclaimed{}
	for _, dev := range devs {
		v, id, class, ok := coldplug.PCIModalias(dev.Modalias)
		if !ok || dev.Driver != "" || !coldplug.Claimable(class) {
			continue
		}
		u := agentapi.Unclaimed{Vendor: v, Device: id, Class: class, Modalias: dev.Modalias}
		if d.LeftOut != nil {
			if m := d.LeftOut.Match(dev.Modalias); len(m) > 0 {
				u.Would = m[0]
			}
		}
		out = append(out, u)
	}
	return out
}

func readList(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := strings.TrimSpace(sc.Text()); m != "" && !strings.HasPrefix(m, "#") {
			out = append(out, m)
		}
	}
	return out
}
