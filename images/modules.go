package images

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
)

// BootModules are the drivers the RAM image loads before anything else:
// what it needs to reach lifeboatd and serve SSH. NICs, and the virtio RNG
// (QEMU's emulated CPU has no RDRAND, and without entropy getrandom blocks
// the host-key generation).
var BootModules = []string{"e1000", "e1000e", "virtio_pci", "virtio_net", "virtio_rng"}

// StorageModules are loaded once SSH is up, while the customer types: the
// disks, device-mapper crypto and ext4. Measured under QEMU, loading them
// took most of the six seconds between init and the network; nothing
// before the unlock needs them, and the unlock waits for them. xts is built
// on ecb(aes), and ecb is a module in Debian's kernel. The crc32c and
// crypto modules are listed by name because u-root's loader has no modprobe
// helper for the kernel's request_module, so nothing loads them on demand.
// essiv is for LUKS1 volumes in aes-cbc-essiv:sha256 (cbc is built in);
// twofish and camellia for volumes in those ciphers, which the LUKS library
// unseals (unlock.Openable).
var StorageModules = []string{"virtio_blk", "virtio_scsi", "sd_mod", "dm_mod", "dm_crypt", "ecb", "xts", "essiv", "aesni_intel",
	"twofish_generic", "camellia_generic", "crc32c_generic", "crc32c_intel", "ext4"}

// RescueCommands are the u-root core commands of the RAM image's shell,
// which only a shell grant's staff member reaches: a shell and the tools
// to look at a broken host's disks, drivers and network.
var RescueCommands = []string{"gosh", "ls", "cat", "cp", "mv", "rm", "mkdir", "ln", "chmod", "chroot", "dmesg", "mount", "umount",
	"blkid", "df", "du", "free", "ps", "kill", "ip", "ping", "uname", "grep", "head", "tail", "more", "hexdump", "lsmod",
	"lsdrivers", "find", "sync", "date", "echo", "wc", "uptime"}

// QEMUModules are all the drivers of the RAM image for QEMU test machines.
var QEMUModules = append(slices.Clone(BootModules), StorageModules...)

// Loaders are the iPXE first stages served over TFTP: BIOS, UEFI (with its
// own drivers), UEFI (on the firmware's network stack).
var Loaders = []string{"undionly.kpxe", "ipxe.efi", "snponly.efi"}

// ModName normalises a module name or file name: "dm-crypt.ko" → "dm_crypt".
func ModName(s string) string {
	s = path.Base(s)
	s = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s, ".xz"), ".zst"), ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// Closure resolves wanted module names against a modules.dep and returns the
// files (relative to /lib/modules/KVER) of the modules and all their
// dependencies, sorted. builtin holds modules.builtin: a wanted module built
// into the kernel needs no file.
func Closure(modulesDep, builtin []byte, wanted []string) ([]string, error) {
	deps := map[string][]string{} // file → dependency files
	byName := map[string]string{} // name → file
	sc := bufio.NewScanner(bytes.NewReader(modulesDep))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		file, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[file] = strings.Fields(rest)
		byName[ModName(file)] = file
	}
	isBuiltin := map[string]bool{}
	for _, l := range strings.Split(string(builtin), "\n") {
		if l != "" {
			isBuiltin[ModName(l)] = true
		}
	}
	seen := map[string]bool{}
	var visit func(f string)
	visit = func(f string) {
		if seen[f] {
			return
		}
		seen[f] = true
		for _, d := range deps[f] {
			visit(d)
		}
	}
	var missing []string
	for _, w := range wanted {
		n := ModName(w)
		f, ok := byName[n]
		switch {
		case ok:
			visit(f)
		case isBuiltin[n]:
		default:
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("modules not in this kernel: %s", strings.Join(missing, ", "))
	}
	out := make([]string, 0, len(seen))
	for f := range seen {
		out = append(out, f)
	}
	sort.Strings(out)
	return out, nil
}
