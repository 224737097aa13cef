package images

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
)

// The RAM image's drivers. The agent loads what the machine has, matched by
// modalias (initramfs/coldplug), not these lists in order: the lists say
// what is in the image. What a provider's servers carry, after Debian's
// installer (nic-modules, scsi-modules) and Tinkerbell's HookOS; left out:
// Pensando ionic (Debian's kernel does not build it), Hyper-V's and the
// virtual functions' NICs (not bare metal), md RAID (no mdadm in the image
// to assemble it).
var (
	// NetModules drive the NICs; with the virtio transport and RNG, they
	// load first, so that SSH comes up early.
	NetModules = []string{
		"virtio_pci", "virtio_net", "virtio_rng", "vmxnet3", "e1000", "e1000e", "ena", // VMs and the lab
		"igb", "igc", "ixgbe", "i40e", "ice", // Intel
		"mlx4_en", "mlx5_core", // Mellanox
		"tg3", "broadcom", "bnx2", "bnx2x", "bnxt_en", // Broadcom (broadcom: tg3's PHYs)
		"r8169", "realtek", "8139too", "8139cp", // Realtek (realtek: r8169's PHYs, a softdep)
		"qede", "cxgb4", "be2net", "sfc", "enic", "atlantic", // QLogic, Chelsio, Emulex, Solarflare, Cisco, Aquantia
		"8021q", // VLAN-tagged boot networks
	}
	// DiskModules drive the storage controllers and USB (disks, and the
	// keyboard remote hands type the console code on).
	DiskModules = []string{
		"ahci", "ata_piix", "nvme", "vmd", "megaraid_sas", "mpt3sas", "mpi3mr", "hpsa", "smartpqi", "aacraid", "isci",
		"mptsas", "sym53c8xx", "vmw_pvscsi", "virtio_scsi", "virtio_blk", "sd_mod",
		"xhci_pci", "ehci_pci", "ohci_pci", "uhci_hcd", "usb_storage", "uas", "usbhid", "hid_generic",
		// The checksums sd_mod's integrity code asks the crypto API for at
		// load: carried and loaded as softdeps, they spare a
		// request_module round trip each (seconds under emulation).
		"crct10dif_generic", "crct10dif_pclmul", "crc64_rocksoft_generic",
	}
	// AlwaysModules have no device to match: device-mapper and the LUKS
	// ciphers. They load with the disks, before the unlock prompt. xts is
	// built on ecb(aes), a module in Debian's kernel; essiv is for LUKS1
	// volumes in aes-cbc-essiv:sha256; twofish and camellia for volumes in
	// those ciphers (unlock.Openable). The kernel's request_module reaches
	// the image's modprobe too, for what a volume asks for beyond these.
	AlwaysModules = []string{"dm_mod", "dm_crypt", "ecb", "xts", "essiv", "aesni_intel", "twofish_generic", "camellia_generic",
		"crc32c_generic", "crc32c_intel"}
	// LaterModules are the file systems of an installed system's root and
	// /boot: nothing mounts them before the customer has typed the
	// passphrase, so they load after the prompt is up, while the customer
	// types (xfs and ext4 are the two largest modules an ordinary boot
	// loads: seconds under emulation). A mount that comes first loads its
	// file system itself, through request_module ("fs-xfs").
	// efivarfs is here to be carried: the agent's mount of it, to read
	// Secure Boot's state before the check-in, loads it at once.
	LaterModules = []string{"ext4", "xfs", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "efivarfs"}
)

// ExtraSoftdeps are softdeps the kernel's modules.softdep lacks: 6.1's
// crc64_rocksoft names the library crc64, not the crypto algorithm
// (crc64-rocksoft) its init asks for.
var ExtraSoftdeps = "softdep crc64_rocksoft pre: crc64 crc64-rocksoft\n"

// ServerModules is every module the image carries, before dependencies.
func ServerModules() []string {
	return slices.Concat(NetModules, DiskModules, AlwaysModules, LaterModules)
}

// FirmwarePackages are the Debian packages (component non-free-firmware)
// the image's drivers take firmware files from.
var FirmwarePackages = []string{"firmware-bnx2", "firmware-bnx2x", "firmware-qlogic", "firmware-misc-nonfree", "firmware-realtek"}

// ModuleFirmware returns the firmware files a module may ask for (what
// `modinfo -F firmware` prints), from its .modinfo section.
func ModuleFirmware(ko []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, fmt.Errorf("not a kernel module: %w", err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, nil
	}
	data, err := s.Data()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("firmware=")); ok && len(v) > 0 {
			out = append(out, path.Clean(string(v)))
		}
	}
	return out, nil
}

// TrimIndex keeps the lines of a modules.alias or modules.softdep file that
// are about the given modules (by normalised name): the full alias file is
// 1.3 MB, most of it for modules the image does not carry. In softdep
// lines the module named is the second field.
func TrimIndex(index []byte, have map[string]bool) []byte {
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(index))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || (f[0] != "alias" && f[0] != "softdep") {
			continue
		}
		if (f[0] == "alias" && have[ModName(f[2])]) || (f[0] == "softdep" && have[ModName(f[1])]) {
			out.WriteString(sc.Text())
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

// LeftOut returns the PCI alias lines of modules the image does not carry,
// as "alias PATTERN MODULE" lines: with them the agent can say of a device
// without a driver which of the kernel's modules would have driven it.
func LeftOut(index []byte, have map[string]bool) []byte {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(index))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "alias" && strings.HasPrefix(f[1], "pci:") && !have[ModName(f[2])] {
			lines = append(lines, sc.Text())
		}
	}
	sort.Strings(lines)
	if len(lines) == 0 {
		return nil
	}
	return []byte(strings.Join(lines, "\n") + "\n")
}
