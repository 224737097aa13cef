package coldplug

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

// ModulesDir is this kernel's module folder in the image.
func ModulesDir() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	return filepath.Join("/lib/modules", unix.ByteSliceToString(u.Release[:])), nil
}

// ForMachine is the Loader of the running kernel: its modules.alias and
// modules.softdep, and kmodule's loader (modules.dep, modules.builtin).
func ForMachine(log *slog.Logger) (*Loader, error) {
	dir, err := ModulesDir()
	if err != nil {
		return nil, err
	}
	alias, err := os.ReadFile(filepath.Join(dir, "modules.alias"))
	if err != nil {
		return nil, fmt.Errorf("module index: %w", err)
	}
	softdep, _ := os.ReadFile(filepath.Join(dir, "modules.softdep"))
	p, err := kmodule.NewProber(kmodule.ProbeOpts{})
	if err != nil {
		return nil, err
	}
	l := &Loader{Index: ParseIndex(alias, softdep), Log: log}
	l.Probe = func(m string) error {
		err := p.Probe(m, "")
		if err != nil && strings.Contains(err.Error(), "could not find module path") {
			return fmt.Errorf("%w: %v", ErrNoModule, err)
		}
		return err
	}
	return l, nil
}

// LeftOut is the index of the PCI aliases of the kernel's modules that the
// image leaves out (images.LeftOut): what would drive a device that has no
// driver here. Empty if the image has none.
func LeftOut() *Index {
	dir, err := ModulesDir()
	if err != nil {
		return ParseIndex(nil, nil)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "modules.alias.leftout"))
	return ParseIndex(b, nil)
}

// ModprobePath is where the kernel's request_module runs its helper.
const ModprobePath = "/proc/sys/kernel/modprobe"

// UseModprobe points the kernel's request_module at the image's modprobe.
func UseModprobe(bin string) error {
	return os.WriteFile(ModprobePath, []byte(bin+"\n"), 0o644)
}
