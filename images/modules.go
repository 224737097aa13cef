package images

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"
)

// RescueCommands are the u-root core commands of the RAM image's shell,
// which only a shell grant's staff member reaches: a shell and the tools
// to look at a broken host's disks, drivers and network.
var RescueCommands = []string{"gosh", "ls", "cat", "cp", "mv", "rm", "mkdir", "ln", "chmod", "chroot", "dmesg", "mount", "umount",
	"blkid", "df", "du", "free", "ps", "kill", "ip", "ping", "uname", "grep", "head", "tail", "more", "hexdump", "lsmod",
	"lsdrivers", "find", "sync", "date", "echo", "wc", "uptime"}

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
