package rescue

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-boot/lifeboat/unlock"
)

// ErrEncrypted means the installed system's root is on a LUKS volume the
// customer has not unlocked in this boot.
var ErrEncrypted = errors.New("the installed system is on an encrypted volume that is still locked")

// Root is the installed system's root file system, mounted read-write.
type Root struct {
	Device string // /dev/vda2, /dev/dm-0
	Dir    string
	Name   string // PRETTY_NAME from etc/os-release, if any
	// Mounted: Close unmounts Dir (FindRoot mounted it).
	Mounted bool
	closed  bool
}

// Close unmounts the root, flushing what was written. Closing twice is a
// no-op.
func (r *Root) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	unix.Sync()
	if !r.Mounted {
		return nil
	}
	return unix.Unmount(r.Dir, 0)
}

// Paths of the block-device listing, changed by tests.
var (
	SysBlock = "/sys/class/block"
	DevDir   = "/dev"
)

// FindRoot mounts the host's file systems one at a time under base and
// returns the first that holds etc/passwd and etc/shadow, mounted read-write.
// With none found and a LUKS volume still locked, it returns ErrEncrypted:
// the customer must unlock first (support cannot read an encrypted disk).
func FindRoot(base string) (*Root, error) {
	ents, err := os.ReadDir(SysBlock)
	if err != nil {
		return nil, fmt.Errorf("list block devices: %w", err)
	}
	var tried []string
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") {
			continue
		}
		if holders, _ := os.ReadDir(filepath.Join(SysBlock, name, "holders")); len(holders) > 0 {
			continue // an opened LUKS volume or a disk under a mapping
		}
		dev := filepath.Join(DevDir, name)
		dir := filepath.Join(base, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		fs := mountRW(dev, dir)
		if fs == "" {
			continue
		}
		tried = append(tried, dev)
		if isRoot(dir) {
			return &Root{Device: dev, Dir: dir, Name: osName(dir), Mounted: true}, nil
		}
		_ = unix.Unmount(dir, 0)
	}
	vols, _ := unlock.Scan(SysBlock, DevDir)
	for _, v := range vols {
		if holders, _ := os.ReadDir(filepath.Join(SysBlock, filepath.Base(v.Path), "holders")); len(holders) == 0 {
			return nil, fmt.Errorf("%w (%s)", ErrEncrypted, v.Path)
		}
	}
	if len(tried) == 0 {
		return nil, errors.New("no file system on this host could be mounted")
	}
	return nil, fmt.Errorf("no installed system (etc/passwd and etc/shadow) on %s", strings.Join(tried, ", "))
}

func mountRW(dev, dir string) string {
	for _, fs := range []string{"ext4", "xfs", "btrfs"} {
		if unix.Mount(dev, dir, fs, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "") == nil {
			return fs
		}
	}
	return ""
}

// isRoot: etc a real folder, passwd and shadow real files in it; links
// would lead out of the installed system (into the RAM image's own files).
func isRoot(dir string) bool {
	if fi, err := os.Lstat(filepath.Join(dir, "etc")); err != nil || !fi.IsDir() {
		return false
	}
	for _, f := range []string{"etc/passwd", "etc/shadow"} {
		if fi, err := os.Lstat(filepath.Join(dir, f)); err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// osName reads PRETTY_NAME through an os.Root: os-release is a link
// (Debian's points to ../usr/lib/os-release), and one that leads out of
// the installed system must not make lifeboat read its own files.
func osName(dir string) string {
	rt, err := os.OpenRoot(dir)
	if err != nil {
		return ""
	}
	defer rt.Close()
	f, err := rt.Open("etc/os-release")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}
