package images

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Kernel is an unpacked Debian kernel package.
type Kernel struct {
	Package string // e.g. linux-image-6.1.0-56-amd64
	Version string // e.g. 6.1.0-56-amd64
	Root    string // where the .deb was unpacked
	// DebVersion is the package's version (6.1.192-3), from its .deb's name.
	DebVersion string
}

// Vmlinuz is the path of the kernel image.
func (k *Kernel) Vmlinuz() string { return filepath.Join(k.Root, "boot", "vmlinuz-"+k.Version) }

// ModDir is /lib/modules/VERSION inside Root.
func (k *Kernel) ModDir() string { return filepath.Join(k.Root, "lib", "modules", k.Version) }

// ResolvePackage turns a metapackage (linux-image-amd64) into the versioned
// package it depends on, from the output of apt-cache depends.
func ResolvePackage(aptCacheDepends []byte, meta string) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(aptCacheDepends))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("apt-cache has no versioned kernel for %s (run apt-get update)", meta)
}

// FetchKernel downloads and unpacks the kernel package meta resolves to,
// into cache, once; later calls reuse it. It runs depmod because the .deb
// ships no modules.dep.
func FetchKernel(cache, meta string) (*Kernel, error) {
	out, err := exec.Command("apt-cache", "depends", meta).Output()
	if err != nil {
		return nil, fmt.Errorf("apt-cache depends %s: %w", meta, err)
	}
	pkg, err := ResolvePackage(out, meta)
	if err != nil {
		return nil, err
	}
	k := &Kernel{Package: pkg, Version: strings.TrimPrefix(pkg, "linux-image-"), Root: filepath.Join(cache, pkg)}
	dl := filepath.Join(cache, "deb")
	if _, err := os.Stat(filepath.Join(k.ModDir(), "modules.dep")); err == nil {
		k.DebVersion = debVersion(dl, pkg)
		return k, nil
	}
	if err := os.MkdirAll(dl, 0o755); err != nil {
		return nil, err
	}
	cmd := exec.Command("apt-get", "download", pkg)
	cmd.Dir = dl
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("apt-get download %s: %w\n%s", pkg, err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(dl, pkg+"_*.deb"))
	if len(debs) == 0 {
		return nil, fmt.Errorf("apt-get download %s left no .deb", pkg)
	}
	tmp := k.Root + ".tmp"
	_ = os.RemoveAll(tmp)
	if b, err := exec.Command("dpkg-deb", "-x", debs[0], tmp).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("dpkg-deb -x: %w\n%s", err, b)
	}
	if b, err := exec.Command("depmod", "-b", tmp, k.Version).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("depmod: %w\n%s", err, b)
	}
	if err := os.Rename(tmp, k.Root); err != nil {
		return nil, err
	}
	k.DebVersion = debVersion(dl, pkg)
	return k, nil
}

// StageModules copies the closure of wanted into stage/lib/modules/VERSION
// with the index files the image's loader reads: modules.dep and
// modules.builtin whole, modules.alias and modules.softdep trimmed to the
// modules carried, and modules.alias.leftout, the PCI aliases of the
// kernel's other modules (for the hardware report's "no driver" words). It
// returns the module files copied, relative to the module folder.
func StageModules(k *Kernel, stage string, wanted []string) ([]string, error) {
	dep, err := os.ReadFile(filepath.Join(k.ModDir(), "modules.dep"))
	if err != nil {
		return nil, err
	}
	builtin, _ := os.ReadFile(filepath.Join(k.ModDir(), "modules.builtin"))
	files, err := Closure(dep, builtin, wanted)
	if err != nil {
		return nil, err
	}
	dst := filepath.Join(stage, "lib", "modules", k.Version)
	for _, f := range append(slices.Clone(files), "modules.dep", "modules.builtin", "modules.order") {
		if err := copyFile(filepath.Join(k.ModDir(), f), filepath.Join(dst, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	have := map[string]bool{}
	for _, f := range files {
		have[ModName(f)] = true
	}
	for _, l := range strings.Split(string(builtin), "\n") {
		if l != "" {
			have[ModName(l)] = true
		}
	}
	alias, err := os.ReadFile(filepath.Join(k.ModDir(), "modules.alias"))
	if err != nil {
		return nil, err
	}
	softdep, _ := os.ReadFile(filepath.Join(k.ModDir(), "modules.softdep"))
	for name, data := range map[string][]byte{"modules.alias": TrimIndex(alias, have), "modules.softdep": append(TrimIndex(softdep, have), ExtraSoftdeps...),
		"modules.alias.leftout": LeftOut(alias, have)} {
		if err := os.WriteFile(filepath.Join(dst, name), data, 0o644); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// debVersion reads a package's version off its downloaded .deb's name
// (PKG_VERSION_ARCH.deb, the epoch's colon as %3a); "" if there is none.
func debVersion(dl, pkg string) string {
	debs, _ := filepath.Glob(filepath.Join(dl, pkg+"_*.deb"))
	if len(debs) == 0 {
		return ""
	}
	f := strings.Split(strings.TrimSuffix(filepath.Base(debs[len(debs)-1]), ".deb"), "_")
	if len(f) != 3 {
		return ""
	}
	return strings.ReplaceAll(f[1], "%3a", ":")
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}
