package vm

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Host is a QEMU machine to boot from the network.
type Host struct {
	Name     string
	Firmware string // "bios", "uefi" (OVMF + iPXE option ROM), "uefi-pxe" (OVMF's own PXE, no iPXE ROM) or "uefi-http" (OVMF's HTTP boot, its PXE off)
	MAC      string
	Disk     string // raw disk image, opened with snapshot=on (never changed) unless Writable
	Writable bool   // the host's writes reach Disk (a rescue test reads them back)
	MemMiB   int
	Dir      string // for the UEFI variable store copy and the console log

	// A server's hardware, for the driver matrix; zero values are the
	// lab's (e1000 on BIOS, virtio-net on UEFI, a virtio-blk disk).
	NIC        string   // QEMU NIC model: e1000e, rtl8139, vmxnet3, virtio-net-pci, ...
	Storage    string   // the disk's controller: nvme, ahci, megasas-gen2, lsi53c895a, mptsas1068, pvscsi, virtio-scsi, usb-storage
	DiskSerial string   // the disk's serial number, as the hardware report should show it
	DeadNIC    bool     // a first NIC on a network of its own, with no server on it: the host boots from the second
	Extra      []string // more QEMU arguments (a device the image has no driver for)
}

// diskArgs attaches drive d0 behind the host's storage controller.
func (h *Host) diskArgs() ([]string, error) {
	serial := ""
	if h.DiskSerial != "" {
		serial = ",serial=" + h.DiskSerial
	}
	disk := "scsi-hd,drive=d0,bus=hba.0,bootindex=1" + serial
	switch h.Storage {
	case "", "virtio-blk":
		return []string{"-device", "virtio-blk-pci,drive=d0,bootindex=1" + serial}, nil
	case "nvme":
		if serial == "" {
			serial = ",serial=lifeboat0"
		}
		return []string{"-device", "nvme,drive=d0,bootindex=1" + serial}, nil
	case "ahci":
		return []string{"-device", "ahci,id=sata", "-device", "ide-hd,drive=d0,bus=sata.0,bootindex=1" + serial}, nil
	case "megasas-gen2", "lsi53c895a", "mptsas1068", "pvscsi":
		return []string{"-device", h.Storage + ",id=hba", "-device", disk}, nil
	case "virtio-scsi":
		return []string{"-device", "virtio-scsi-pci,id=hba", "-device", disk}, nil
	case "usb-storage":
		return []string{"-device", "qemu-xhci,id=xhci", "-device", "usb-storage,bus=xhci.0,drive=d0,bootindex=1" + serial}, nil
	}
	return nil, fmt.Errorf("storage %q: not one the test knows", h.Storage)
}

// DeadNICMAC is the MAC of a DeadNIC host's first NIC.
const DeadNICMAC = "52:54:00:de:ad:01"

// Running is a started host.
type Running struct {
	Console *Console
	in      io.WriteCloser
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// Args returns QEMU's command line for h on tap.
func (h *Host) Args(tap string) ([]string, error) {
	mem := h.MemMiB
	if mem == 0 {
		mem = 1536
	}
	args := []string{"-m", fmt.Sprint(mem), "-smp", "1", "-display", "none", "-serial", "stdio", "-monitor", "none",
		"-no-reboot", "-netdev", "tap,id=n0,ifname=" + tap + ",script=no,downscript=no"}
	nicAt := ""
	if h.DeadNIC {
		// Found first by the OS (the lowest free PCI slot), on a hub of
		// its own; the boot NIC sits in the last slot.
		args = append(args, "-netdev", "hubport,id=dead,hubid=7", "-device", "e1000,netdev=dead,romfile=,mac="+DeadNICMAC)
		nicAt = ",addr=0x1f"
	}
	args = append(args, "-device", "virtio-rng-pci")
	// The network first, the disk second, as a provider sets up its
	// servers: OVMF would otherwise try a bootable disk before the NIC.
	if h.Disk != "" {
		snap := ",snapshot=on"
		if h.Writable {
			snap = ""
		}
		d, err := h.diskArgs()
		if err != nil {
			return nil, err
		}
		args = append(append(args, "-drive", "file="+h.Disk+",if=none,id=d0,format=raw"+snap), d...)
	}
	args = append(args, h.Extra...)
	rom := ""
	if h.Firmware == "uefi-pxe" || h.Firmware == "uefi-http" {
		rom = ",romfile=" // no iPXE ROM: the firmware's own client fetches ipxe.efi
	}
	if h.Firmware == "uefi-http" {
		// OVMF tries its PXE boot options before its HTTP ones; with PXE
		// off (QEMU's fw_cfg knobs for it), HTTP boot is what is left, as
		// on a server whose firmware is set to HTTP boot.
		args = append(args, "-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
			"-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n")
	}
	switch h.Firmware {
	case "bios":
		args = append(args, "-device", cmp.Or(h.NIC, "e1000")+",netdev=n0,bootindex=0"+nicAt+",mac="+h.MAC)
	case "uefi", "uefi-pxe", "uefi-http":
		vars := filepath.Join(h.Dir, h.Name+"-OVMF_VARS.fd")
		data, err := os.ReadFile("/usr/share/OVMF/OVMF_VARS_4M.fd")
		if err != nil {
			return nil, fmt.Errorf("OVMF: %w (apt-get install ovmf)", err)
		}
		if err := os.WriteFile(vars, data, 0o644); err != nil {
			return nil, err
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
			"-drive", "if=pflash,format=raw,file="+vars,
			"-device", cmp.Or(h.NIC, "virtio-net-pci")+",netdev=n0,bootindex=0"+nicAt+",mac="+h.MAC+rom)
	default:
		return nil, fmt.Errorf("firmware %q: want bios, uefi, uefi-pxe or uefi-http", h.Firmware)
	}
	return args, nil
}

// Start boots h in ns. The context bounds its whole life.
func (h *Host) Start(ctx context.Context, ns *NS, tap string) (*Running, error) {
	args, err := h.Args(tap)
	if err != nil {
		return nil, err
	}
	cmd := ns.Command(ctx, "qemu-system-x86_64", args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGKILL) }
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(h.Dir, h.Name+"-console.log"))
	if err != nil {
		return nil, err
	}
	r := &Running{Console: NewConsole(), cmd: cmd, done: make(chan struct{}), in: in}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("qemu: %w", err)
	}
	go func() {
		r.Console.Feed(io.TeeReader(out, logf))
		r.err = cmd.Wait()
		logf.Close()
		r.Console.Close()
		close(r.done)
	}()
	return r, nil
}

// Type sends keystrokes to the host's serial console, slowly enough for a
// 16550 UART without flow control.
func (r *Running) Type(s string) error {
	for i := 0; i < len(s); i += 8 {
		if _, err := io.WriteString(r.in, s[i:min(i+8, len(s))]); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// Wait waits for QEMU to exit.
func (r *Running) Wait(timeout time.Duration) error {
	select {
	case <-r.done:
		return r.err
	case <-time.After(timeout):
		return fmt.Errorf("qemu still running after %s", timeout)
	}
}

// Done is closed once QEMU has exited.
func (r *Running) Done() <-chan struct{} { return r.done }

// Kill stops QEMU at once.
func (r *Running) Kill() {
	if r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
	}
	<-r.done
}

// Console collects a serial console's lines and lets tests wait for one.
type Console struct {
	mu     sync.Mutex
	lines  []string
	at     []time.Time // when each line arrived
	closed bool
	notify chan struct{}
}

// NewConsole returns an empty console.
func NewConsole() *Console { return &Console{notify: make(chan struct{})} }

// Feed reads r to its end.
func (c *Console) Feed(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		c.mu.Lock()
		c.lines = append(c.lines, line)
		c.at = append(c.at, time.Now())
		close(c.notify)
		c.notify = make(chan struct{})
		c.mu.Unlock()
	}
}

// Close marks the end of output.
func (c *Console) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	close(c.notify)
	c.notify = make(chan struct{})
}

// Text returns everything so far.
func (c *Console) Text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lines, "\n")
}

// Timeline returns every line so far, each after the time since start at
// which it arrived: where a boot spends its time.
func (c *Console) Timeline(start time.Time) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for i, l := range c.lines {
		fmt.Fprintf(&b, "%7.2fs %s\n", c.at[i].Sub(start).Seconds(), l)
	}
	return b.String()
}

// WaitFor returns the first line containing any of subs, or an error when
// the deadline passes or the machine stopped first.
func (c *Console) WaitFor(ctx context.Context, timeout time.Duration, subs ...string) (string, error) {
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		for _, l := range c.lines {
			for _, s := range subs {
				if strings.Contains(l, s) {
					c.mu.Unlock()
					return l, nil
				}
			}
		}
		closed, ch := c.closed, c.notify
		c.mu.Unlock()
		if closed {
			return "", fmt.Errorf("machine stopped before printing %q", subs)
		}
		select {
		case <-ch:
		case <-deadline:
			return "", fmt.Errorf("no %q on the console after %s", subs, timeout)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}
