package handoff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/u-root/u-root/pkg/boot"
	"github.com/u-root/u-root/pkg/boot/bls"
	"github.com/u-root/u-root/pkg/boot/grub"
	"github.com/u-root/u-root/pkg/boot/kexec"
	"github.com/u-root/u-root/pkg/mount"
	"github.com/u-root/u-root/pkg/mount/block"
	"golang.org/x/sys/unix"
)

// Entry is the OS boot entry found on the host's disk.
type Entry struct {
	Label   string
	Device  string // partition holding /boot
	Image   *boot.LinuxImage
	mounted []string
}

// Close unmounts what Find mounted.
func (e *Entry) Close() {
	for _, m := range e.mounted {
		_ = unix.Unmount(m, 0)
	}
}

type printfLogger struct{}

func (p printfLogger) Printf(string, ...any) {} // u-root's parsers are chatty about every skipped file

// Find mounts the host's unencrypted partitions read-only one by one and
// returns the default entry of the first that has Boot Loader Spec entries
// or a grub.cfg. skip lists devices not to mount (the LUKS volumes).
func Find(ctx context.Context, mountBase string, skip map[string]bool) (*Entry, error) {
	devs, err := block.GetBlockDevices()
	if err != nil {
		return nil, fmt.Errorf("list block devices: %w", err)
	}
	var tried []string
	for _, d := range devs {
		path := filepath.Join("/dev", d.Name)
		if skip[path] || strings.HasPrefix(d.Name, "loop") || strings.HasPrefix(d.Name, "ram") || strings.HasPrefix(d.Name, "dm-") {
			continue
		}
		dir := filepath.Join(mountBase, d.Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if !mountAny(path, dir) {
			continue
		}
		tried = append(tried, path)
		img, label := entryIn(ctx, dir, devs)
		if img == nil {
			_ = unix.Unmount(dir, 0)
			continue
		}
		return &Entry{Label: label, Device: path, Image: img, mounted: []string{dir}}, nil
	}
	if len(tried) == 0 {
		return nil, errors.New("no unencrypted partition could be mounted to look for /boot")
	}
	return nil, fmt.Errorf("no boot entry (loader/entries/*.conf or grub.cfg) on %s", strings.Join(tried, ", "))
}

func mountAny(dev, dir string) bool {
	for _, fs := range []string{"ext4", "vfat", "xfs", "btrfs"} {
		if unix.Mount(dev, dir, fs, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "") == nil {
			return true
		}
	}
	return false
}

func entryIn(ctx context.Context, dir string, devs block.BlockDevices) (*boot.LinuxImage, string) {
	imgs, _ := bls.ScanBLSEntries(printfLogger{}, dir, nil, "")
	if len(imgs) == 0 {
		imgs, _ = grub.ParseLocalConfig(ctx, dir, devs, &mount.Pool{})
	}
	for _, im := range imgs {
		if li, ok := im.(*boot.LinuxImage); ok && li.Kernel != nil {
			return li, im.Label()
		}
	}
	return nil, ""
}

// Load loads the entry's kernel with its initrd plus the key archive into
// the kernel's kexec slot. Jump then starts it.
func Load(e *Entry, archive []byte) error {
	initrd, err := combinedInitrd(e.Image.Initrd, archive)
	if err != nil {
		return err
	}
	defer initrd.Close()
	kernel, err := asFile(e.Image.Kernel, "lifeboat-kernel")
	if err != nil {
		return err
	}
	defer kernel.Close()
	if err := kexec.FileLoad(kernel, initrd, e.Image.Cmdline); err != nil {
		return fmt.Errorf("kexec load: %w (is Secure Boot's lockdown on? lifeboat needs it off)", err)
	}
	return nil
}

// Jump starts the loaded kernel. It returns only on error.
func Jump() error {
	unix.Sync()
	if err := kexec.Reboot(); err != nil {
		return fmt.Errorf("kexec reboot: %w", err)
	}
	return errors.New("kexec returned")
}

// combinedInitrd writes the OS initrd, padding, and the key archive into a
// memfd: in RAM only, nameless, gone when closed. kexec_file_load refuses a
// file open for writing, so it is reopened read-only.
func combinedInitrd(osInitrd io.ReaderAt, archive []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate("lifeboat-initrd", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd: %w", err)
	}
	rw := os.NewFile(uintptr(fd), "memfd:lifeboat-initrd")
	defer rw.Close()
	var n int64
	if osInitrd != nil {
		n, err = io.Copy(rw, io.NewSectionReader(osInitrd, 0, 1<<40))
		if err != nil {
			return nil, fmt.Errorf("read the OS initrd: %w", err)
		}
	}
	// Archives are concatenated on 512-byte boundaries; the kernel skips
	// the zero padding between them.
	if pad := (512 - n%512) % 512; pad > 0 {
		if _, err := rw.Write(make([]byte, pad)); err != nil {
			return nil, err
		}
	}
	if _, err := rw.Write(archive); err != nil {
		return nil, err
	}
	ro, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return nil, fmt.Errorf("reopen memfd: %w", err)
	}
	return ro, nil
}

func asFile(r io.ReaderAt, name string) (*os.File, error) {
	if f, ok := r.(*os.File); ok {
		return f, nil
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	rw := os.NewFile(uintptr(fd), name)
	defer rw.Close()
	if _, err := io.Copy(rw, io.NewSectionReader(r, 0, 1<<40)); err != nil {
		return nil, err
	}
	return os.Open(fmt.Sprintf("/proc/self/fd/%d", fd))
}
