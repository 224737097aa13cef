package distro

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Suite is the Debian release built.
const Suite = "bookworm"

// Recipe is one installed system.
type Recipe struct {
	Name string
	// Packages installed into the chroot after debootstrap, with /proc,
	// /sys and /dev mounted (kernel and initrd tooling).
	Packages []string
	// Crypttab is the installed system's /etc/crypttab line for its root
	// (%s: the LUKS UUID).
	Crypttab string
	// Cmdline is the kernel command line of its boot entry (%s, if any:
	// the LUKS UUID).
	Cmdline string
	// Initrd rebuilds the initrd in the chroot (%s: the kernel version).
	Initrd []string
	// Grub: the boot partition has a grub.cfg as Debian's update-grub
	// writes it (a default entry, then a submenu with recovery mode)
	// instead of a Boot Loader Spec entry.
	Grub bool
}

// The two recipes of issue 7.
var (
	InitramfsTools = Recipe{Name: "initramfs-tools",
		Packages: []string{"linux-image-amd64", "initramfs-tools", "cryptsetup-initramfs"},
		// "initramfs": include it in the initrd even though the build
		// cannot see the root device (a chroot).
		Crypttab: "root UUID=%s none luks,discard,initramfs\n",
		Cmdline:  "root=/dev/mapper/root ro console=ttyS0,115200",
		Initrd:   []string{"update-initramfs", "-u", "-k", "%s"},
		Grub:     true}
	Dracut = Recipe{Name: "dracut",
		Packages: []string{"linux-image-amd64", "dracut", "cryptsetup"},
		Crypttab: "root UUID=%s none luks,discard\n",
		Cmdline:  "rd.luks.name=%s=root root=/dev/mapper/root ro console=ttyS0,115200",
		Initrd:   []string{"dracut", "--force", "--no-hostonly", "--add", "crypt", "--kver", "%s", "/boot/initrd.img-%s"}}
)

// base is what debootstrap installs for every recipe.
var base = []string{"systemd-sysv", "udev", "kmod", "login", "passwd", "ca-certificates"}

// Built is an installed system ready to become a disk.
type Built struct {
	Recipe  Recipe
	Root    string // the root file system's folder (with /boot)
	Kernel  string // its kernel version
	LUKS    string // the LUKS UUID its crypttab and boot entry name
	Took    time.Duration
	Cached  bool
	BootDir string // a /boot partition's contents: kernel, initrd, a Boot Loader Spec entry
}

func (r Recipe) key(mirror string) string {
	h := sha256.New()
	fmt.Fprintf(h, "v1\n%s\n%s\n%q\n%q\n%q\n%q\n%q\n%s\n", r.Name, Suite, r.Packages, base, r.Crypttab, r.Cmdline, r.Initrd, mirror)
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// LUKSUUID is the root volume's UUID in every built system.
const LUKSUUID = "3f1d6b7e-5a2c-4e8f-9b1d-0c2e4a6f8b10"

// Build makes (or takes from cache) the system of recipe r under cache.
func Build(r Recipe, cache string, log func(string, ...any)) (*Built, error) {
	mirror := Mirror()
	dir := filepath.Join(cache, "distros", r.Name+"-"+r.key(mirror))
	b := &Built{Recipe: r, Root: filepath.Join(dir, "root"), LUKS: LUKSUUID, BootDir: filepath.Join(dir, "boot")}
	start := time.Now()
	done := filepath.Join(dir, "done")
	if v, err := os.ReadFile(done); err == nil {
		b.Kernel, b.Cached = strings.TrimSpace(string(v)), true
		b.Took = time.Since(start)
		return b, b.writeBoot() // cheap: made anew from the cached root
	}
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	log("%s: debootstrap %s from %s", r.Name, Suite, mirror)
	if err := run(dir, "debootstrap", "--variant=minbase", "--include="+strings.Join(base, ","), Suite, b.Root, mirror); err != nil {
		return nil, err
	}
	for name, data := range map[string]string{
		"etc/hostname": "lifeboat-" + r.Name + "\n",
		"etc/fstab":    "/dev/mapper/root / ext4 defaults 0 1\n",
		"etc/crypttab": fmt.Sprintf(r.Crypttab, b.LUKS),
	} {
		if err := os.WriteFile(filepath.Join(b.Root, name), []byte(data), 0o644); err != nil {
			return nil, err
		}
	}
	unmount, err := mountChroot(b.Root)
	if err != nil {
		return nil, err
	}
	defer unmount()
	log("%s: apt-get install %s", r.Name, strings.Join(r.Packages, " "))
	if err := chroot(b.Root, dir, append([]string{"apt-get", "install", "-y", "--no-install-recommends"}, r.Packages...)...); err != nil {
		return nil, err
	}
	kvers, _ := filepath.Glob(filepath.Join(b.Root, "boot", "vmlinuz-*"))
	if len(kvers) != 1 {
		return nil, fmt.Errorf("%s: want one kernel in /boot, have %v", r.Name, kvers)
	}
	b.Kernel = strings.TrimPrefix(filepath.Base(kvers[0]), "vmlinuz-")
	args := make([]string, len(r.Initrd))
	for i, a := range r.Initrd {
		args[i] = strings.ReplaceAll(a, "%s", b.Kernel)
	}
	log("%s: %s", r.Name, strings.Join(args, " "))
	if err := chroot(b.Root, dir, args...); err != nil {
		return nil, err
	}
	unmount()
	if err := b.writeBoot(); err != nil {
		return nil, err
	}
	b.Took = time.Since(start)
	return b, os.WriteFile(done, []byte(b.Kernel+"\n"), 0o644)
}

// writeBoot makes the /boot partition: the system's kernel and initrd, and
// a Boot Loader Spec entry with its command line.
func (b *Built) writeBoot() error {
	_ = os.RemoveAll(b.BootDir)
	if err := os.MkdirAll(filepath.Join(b.BootDir, "loader", "entries"), 0o755); err != nil {
		return err
	}
	for _, f := range []string{"vmlinuz-" + b.Kernel, "initrd.img-" + b.Kernel} {
		data, err := os.ReadFile(filepath.Join(b.Root, "boot", f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(b.BootDir, f), data, 0o644); err != nil {
			return err
		}
	}
	cmdline := strings.ReplaceAll(b.Recipe.Cmdline, "%s", b.LUKS)
	if b.Recipe.Grub {
		if err := os.MkdirAll(filepath.Join(b.BootDir, "grub"), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(b.BootDir, "grub", "grub.cfg"), []byte(grubCfg(b.Kernel, cmdline)), 0o644)
	}
	entry := fmt.Sprintf("title Debian GNU/Linux 12 (%s)\nversion %s\nlinux /vmlinuz-%s\ninitrd /initrd.img-%s\noptions %s\n",
		b.Recipe.Name, b.Kernel, b.Kernel, b.Kernel, cmdline)
	return os.WriteFile(filepath.Join(b.BootDir, "loader", "entries", "debian.conf"), []byte(entry), 0o644)
}

// grubCfg is a grub.cfg in the shape Debian's update-grub gives a system
// with a separate /boot: the default entry first, then "Advanced options"
// with the same kernel in recovery mode.
func grubCfg(kver, cmdline string) string {
	entry := func(title, id, extra string) string {
		return fmt.Sprintf(`menuentry '%s' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option '%s' {
	load_video
	insmod gzio
	if [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi
	insmod part_gpt
	insmod ext2
	search --no-floppy --fs-uuid --set=root 00000000-0000-0000-0000-000000000000
	echo	'Loading Linux %s ...'
	linux	/vmlinuz-%s %s%s
	echo	'Loading initial ramdisk ...'
	initrd	/initrd.img-%s
}
`, title, id, kver, kver, cmdline, extra, kver)
	}
	return `#
# DO NOT EDIT THIS FILE
#
# It is automatically generated by grub-mkconfig using templates
# from /etc/grub.d and settings from /etc/default/grub
#
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="0"
fi
set timeout=5
### BEGIN /etc/grub.d/10_linux ###
` + entry("Debian GNU/Linux", "gnulinux-simple", "") +
		"submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced' {\n" +
		entry("Debian GNU/Linux, with Linux "+kver+" (recovery mode)", "gnulinux-"+kver+"-recovery", " single") +
		"}\n### END /etc/grub.d/10_linux ###\n"
}

// RootSize is the size to give the root file system: what it holds, and
// room.
func (b *Built) RootSize() (int64, error) {
	var total int64
	err := filepath.Walk(b.Root, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
		return nil
	})
	size := total*13/10 + 256<<20
	return size - size%(1<<20), err
}

// Mirror is the Debian mirror this machine's apt uses (LIFEBOAT_DEBIAN_MIRROR
// overrides it).
func Mirror() string {
	if m := os.Getenv("LIFEBOAT_DEBIAN_MIRROR"); m != "" {
		return m
	}
	for _, p := range []string{"/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"} {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) >= 2 && fs[0] == "URIs:" {
				f.Close()
				return fs[1]
			}
			if len(fs) >= 3 && fs[0] == "deb" && strings.HasPrefix(fs[1], "http") {
				f.Close()
				return fs[1]
			}
		}
		f.Close()
	}
	return "http://deb.debian.org/debian"
}

func run(dir, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	logf, err := os.Create(filepath.Join(dir, "build.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8")
	if err := cmd.Run(); err != nil {
		tail, _ := exec.Command("tail", "-n", "20", logf.Name()).Output()
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail)
	}
	return nil
}

func chroot(root, dir string, args ...string) error {
	return run(dir, "chroot", append([]string{root}, args...)...)
}

// mountChroot mounts /proc, /sys and /dev into root for package scripts;
// the returned func unmounts them (once).
func mountChroot(root string) (func(), error) {
	var mounted []string
	undo := func() {
		for i := len(mounted) - 1; i >= 0; i-- {
			_ = syscall.Unmount(mounted[i], syscall.MNT_DETACH)
		}
		mounted = nil
	}
	for _, m := range []struct{ src, dst, fs string }{{"proc", "proc", "proc"}, {"sysfs", "sys", "sysfs"}, {"/dev", "dev", ""}} {
		dst := filepath.Join(root, m.dst)
		var err error
		if m.fs == "" {
			err = syscall.Mount(m.src, dst, "", syscall.MS_BIND|syscall.MS_REC, "")
		} else {
			err = syscall.Mount(m.src, dst, m.fs, 0, "")
		}
		if err != nil {
			undo()
			return nil, fmt.Errorf("mount %s in the chroot: %w", m.dst, err)
		}
		mounted = append(mounted, dst)
	}
	return undo, nil
}
