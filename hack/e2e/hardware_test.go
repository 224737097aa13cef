//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"

	"github.com/lifeboat-boot/lifeboat/hack/rig"
	"github.com/lifeboat-boot/lifeboat/hack/vm"
	"github.com/lifeboat-boot/lifeboat/initramfs/consoles"
	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/operator/api"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/store/sqlite"
)

// hwHost is a host of the driver matrix: a server's NIC and disk
// controller, as QEMU emulates them.
type hwHost struct {
	rig.Host
	nic, storage string
	deadNIC      bool     // a first NIC on a network with no server: the host must use the one it booted from
	extra        []string // a device the image has no driver for
	spcr         bool     // the firmware names COM2 in its SPCR table, as a BMC's serial-over-LAN port
	warn         string   // what the console must warn of
}

var hwHosts = []hwHost{
	{Host: rig.Host{Name: "hw-nvme", Firmware: "bios", MAC: "52:54:00:4c:43:01", IP: "10.77.0.101"}, nic: "e1000e", storage: "nvme"},
	{Host: rig.Host{Name: "hw-ahci", Firmware: "uefi", MAC: "52:54:00:4c:43:02", IP: "10.77.0.102"}, nic: "rtl8139", storage: "ahci"},
	{Host: rig.Host{Name: "hw-megasas", Firmware: "bios", MAC: "52:54:00:4c:43:03", IP: "10.77.0.103"}, nic: "vmxnet3", storage: "megasas-gen2", spcr: true},
	{Host: rig.Host{Name: "hw-lsi", Firmware: "bios", MAC: "52:54:00:4c:43:04", IP: "10.77.0.104"}, nic: "virtio-net-pci", storage: "lsi53c895a"},
	{Host: rig.Host{Name: "hw-pvscsi-2nic", Firmware: "uefi", MAC: "52:54:00:4c:43:05", IP: "10.77.0.105"}, nic: "virtio-net-pci", storage: "pvscsi", deadNIC: true},
	{Host: rig.Host{Name: "hw-vscsi-nodriver", Firmware: "uefi", MAC: "52:54:00:4c:43:06", IP: "10.77.0.106"}, nic: "e1000e", storage: "virtio-scsi",
		extra: []string{"-device", "ich9-intel-hda"}, warn: "no driver for 8086:293e (Intel, audio device, PCI class 0403): the kernel's snd_hda_intel drives it; the RAM image leaves it out"},
	{Host: rig.Host{Name: "hw-usb", Firmware: "bios", MAC: "52:54:00:4c:43:07", IP: "10.77.0.107"}, nic: "e1000", storage: "usb-storage"},
	// Its boot network is VLAN hwVLAN: firmware and iPXE run untagged on
	// a first-stage pool address, the RAM image tags, and the address the
	// unlock prompt is reached at exists only on the VLAN.
	{Host: rig.Host{Name: "hw-vlan", Firmware: "bios", MAC: "52:54:00:4c:43:08", IP: "10.77.120.108", VLAN: hwVLAN}, nic: "virtio-net-pci", storage: "nvme"},
}

// hwVLAN is the tagged boot network of TestHardware's rig.
const hwVLAN = 120

// TestHardware: each host of the matrix PXE-boots with the image's server
// driver set, loaded by modalias, reaches the unlock prompt over its NIC,
// finds the LUKS volume behind its controller, and boots its own OS from
// that disk with the key handed over.
func TestHardware(t *testing.T) {
	t.Parallel()
	hs := make([]rig.Host, len(hwHosts))
	for i, h := range hwHosts {
		hs[i] = h.Host
	}
	r := setup(t, rig.Options{Hosts: hs, API: true, VLAN: hwVLAN})
	t.Run("hosts", func(t *testing.T) {
		for _, h := range hwHosts {
			t.Run(h.Name, func(t *testing.T) { t.Parallel(); r.bootHardware(t, h) })
		}
	})
}

func (r *rigT) bootHardware(t *testing.T, h hwHost) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	tap, err := r.NS.AddTap()
	if err != nil {
		t.Fatal(err)
	}
	host := &vm.Host{Name: h.Name, Firmware: h.Firmware, MAC: h.MAC, Disk: r.disks[layoutOf(h.Name)].Path, MemMiB: 1536, Dir: r.dir,
		NIC: h.nic, Storage: h.storage, DiskSerial: hwSerial(h), DeadNIC: h.deadNIC, Extra: h.extra}
	com2 := filepath.Join(r.dir, h.Name+"-com2.log")
	if h.spcr {
		table := filepath.Join(r.dir, h.Name+"-spcr.bin")
		if err := os.WriteFile(table, consoles.SPCR{IO: true, Address: 0x2f8, Baud: 115200}.Table(), 0o644); err != nil {
			t.Fatal(err)
		}
		host.Extra = append(slices.Clone(host.Extra), "-acpitable", "file="+table, "-serial", "file:"+com2)
	}
	run, start, _ := bootToPrompt(t, ctx, host, r.NS, tap)
	t.Logf("%s (%s, %s): power-on to SSH-ready: %s", h.Name, h.nic, h.storage, time.Since(start).Round(100*time.Millisecond))
	if h.spcr {
		// No console= names COM2: only the SPCR table does. The banner
		// goes to COM1 first and then to COM2, each UART sending it at its
		// own pace: seeing it whole on COM1 does not mean COM2 has it yet.
		var b []byte
		for end := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			b, _ = os.ReadFile(com2)
			if strings.Contains(string(b), "is ready for unlock") || time.Now().After(end) {
				break
			}
		}
		if !strings.Contains(string(b), "is ready for unlock") {
			t.Errorf("%s: the SPCR console (COM2) does not show the banner 30 s after COM1 did (%d bytes):\n%s", h.Name, len(b), b)
		}
	}
	text := run.Console.Text()
	if h.warn != "" && !strings.Contains(text, h.warn) {
		t.Errorf("%s: the console does not warn %q", h.Name, h.warn)
	}
	if h.warn == "" && strings.Contains(text, "no driver for") {
		t.Errorf("%s: a device without a driver on a host whose devices all have one:\n%s", h.Name, text)
	}
	if h.deadNIC && !strings.Contains(text, "ip="+h.IP) {
		t.Errorf("%s: the network did not come up on the NIC it booted from", h.Name)
	}
	if h.VLAN != 0 {
		if !strings.Contains(text, fmt.Sprintf("iface=eth0.%d ip=%s", h.VLAN, h.IP)) {
			t.Errorf("%s: the network did not come up tagged, on VLAN %d", h.Name, h.VLAN)
		}
		r.untaggedImpostor(t, ctx, h)
	}
	// The unlock prompt lists the volume behind the controller; the key
	// reaches the OS, which opens its root from that disk.
	cmd := r.ssh(ctx, h.IP)
	cmd.Args = append(cmd.Args, "unlock")
	cmd.Stdin = strings.NewReader(r.passphrase + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Handing over to the OS kernel") {
		t.Fatalf("%s: unlock: %v\n%s", h.Name, err, out)
	}
	if _, err := run.Console.WaitFor(ctx, 6*time.Minute, "TESTOS-MARKER: marker-from-the-encrypted-root", "TESTOS-FAIL"); err != nil {
		t.Fatalf("%s: the OS did not open its encrypted root behind %s: %v", h.Name, h.storage, err)
	}
	if l, _ := run.Console.WaitFor(ctx, time.Second, "TESTOS-FAIL"); l != "" {
		t.Fatalf("%s: %s", h.Name, l)
	}
	t.Logf("%s: power-on to its OS unlocked behind %s: %s", h.Name, h.storage, time.Since(start).Round(100*time.Millisecond))
	r.checkHardware(t, ctx, h)
}

// untaggedImpostor: a machine on the untagged segment with the tagged
// host's MAC asks for the host's address, as its RAM image would: it gets
// no answer (the reservation exists on the VLAN only).
func (r *rigT) untaggedImpostor(t *testing.T, ctx context.Context, h hwHost) {
	evil, err := r.NS.AddPeer(r.NS.Name+"-vl", "10.77.0.250/24")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := evil.Close(); err != nil {
			t.Error(err)
		}
	}()
	if err := evil.SetMAC(h.MAC); err != nil {
		t.Fatal(err)
	}
	err = evil.Do(func() error {
		c, err := nclient4.New("eth0", nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(2))
		if err != nil {
			return err
		}
		defer c.Close()
		lease, err := c.Request(ctx)
		if err == nil {
			return fmt.Errorf("untagged DHCP with %s's MAC got %s", h.Name, lease.ACK.YourIPAddr)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if !strings.Contains(r.ServerLog.String(), fmt.Sprintf("the host's RAM image runs on VLAN %d: no address for it untagged", h.VLAN)) {
		t.Errorf("lifeboatd did not say why it left the untagged request unanswered")
	}
}

// controllerDriver is the driver the hardware report must name for the
// disk behind each of QEMU's controllers.
var controllerDriver = map[string]string{"nvme": "nvme", "ahci": "ahci", "megasas-gen2": "megaraid_sas", "lsi53c895a": "sym53c8xx",
	"pvscsi": "vmw_pvscsi", "virtio-scsi": "virtio_scsi", "usb-storage": "usb-storage"}

// checkHardware: the boot's hardware report reached lifeboatd, and the
// operator's CLI shows the disk's serial behind its controller, the port
// the host booted from, and (on the host with a device the image lacks
// a driver for) the warning, in the report and in the boot's record.
func (r *rigT) checkHardware(t *testing.T, ctx context.Context, h hwHost) {
	var out string
	var err error
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		if out, err = r.CLI(ctx, "", "host", "hardware", h.Name, "--json"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("%s: no hardware report: %v", h.Name, err)
	}
	var got api.Hardware
	var rep agentapi.Hardware
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got.Report, &rep); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(r.disks[layoutOf(h.Name)].Path)
	if err != nil {
		t.Fatal(err)
	}
	disk := false
	for _, d := range rep.Disks {
		disk = disk || (d.Serial == hwSerial(h) && d.Driver == controllerDriver[h.storage] && d.Bytes == fi.Size())
	}
	if !disk {
		t.Errorf("%s: the report has no disk of %d bytes with serial %s behind %s: %+v", h.Name, fi.Size(), hwSerial(h), controllerDriver[h.storage], rep.Disks)
	}
	boot, dead := false, false
	for _, n := range rep.NICs {
		boot = boot || (n.Boot && n.MAC == h.MAC && n.Link && n.Driver != "")
		dead = dead || (!n.Boot && n.MAC == vm.DeadNICMAC && n.Driver == "e1000")
	}
	if !boot || rep.CPU.Count < 1 || rep.MemoryBytes < 1<<30 {
		t.Errorf("%s: report without the boot NIC (up, with its driver), a CPU or its memory: %+v", h.Name, rep)
	}
	if h.deadNIC && !dead {
		t.Errorf("%s: the report lacks the first NIC (%s, e1000): %+v", h.Name, vm.DeadNICMAC, rep.NICs)
	}
	if h.warn != "" {
		if len(got.Warnings) != 1 || got.Warnings[0] != h.warn {
			t.Errorf("%s: report warnings %q, want [%q]", h.Name, got.Warnings, h.warn)
		}
		text, err := r.CLI(ctx, "", "boot", "show", got.Boot)
		if err != nil || !strings.Contains(text, "WARNING: "+h.warn) {
			t.Errorf("%s: boot show does not warn %q: %v\n%s", h.Name, h.warn, err, text)
		}
	} else if len(got.Warnings) > 0 {
		t.Errorf("%s: warnings on a host whose devices all have a driver: %q", h.Name, got.Warnings)
	}
	// The check-in's record says how the boot started: these firmwares
	// enforce no Secure Boot, and the kernel is not locked down.
	evs, err := sqlite.ReadEvents(r.EventLog)
	if err != nil {
		t.Fatal(err)
	}
	wantFW := map[string]string{"bios": "bios"}[h.Firmware]
	if wantFW == "" {
		wantFW = "uefi"
	}
	for _, e := range evs {
		if e.Code == audit.AgentCheckin && e.Host == h.Name &&
			(e.Details["firmware"] != wantFW || e.Details["secure_boot"] != "off" || e.Details["lockdown"] != "none" || !strings.Contains(e.Details["trust"], "image: not verified")) {
			t.Errorf("%s: check-in record %v, want %s firmware, Secure Boot off, no lockdown, image not verified", h.Name, e.Details, wantFW)
		}
	}
	wantTrust := "trust: Secure Boot: off; kernel lockdown: none; image: not verified"
	if wantFW == "bios" {
		wantTrust = "trust: Secure Boot: off (BIOS firmware); kernel lockdown: none; image: not verified"
	}
	if show, err := r.CLI(ctx, "", "boot", "show", got.Boot); err != nil || !strings.Contains(show, wantTrust) {
		t.Errorf("%s: boot show does not say %q: %v\n%s", h.Name, wantTrust, err, show)
	}
	text, err := r.CLI(ctx, "", "host", "hardware", h.Name)
	if err != nil || !strings.Contains(text, hwSerial(h)) || !strings.Contains(text, "booted from") {
		t.Errorf("%s: host hardware:\n%s %v", h.Name, text, err)
	}
	t.Logf("%s: hardware report:\n%s", h.Name, text)
}

func hwSerial(h hwHost) string { return "LB-" + strings.ToUpper(h.Name[3:]) }
