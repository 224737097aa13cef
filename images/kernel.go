package images

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Kernel is an unpacked Debian kernel package.
type Kernel struct {
	Package string // e.g. linux-image-6.1.0-56-amd64
	Version string // e.g. 6.1.0-56-amd64
	Root    string // where the .deb was unpacked
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
	if _, err := os.Stat(filepath.Join(k.ModDir(), "modules.dep")); err == nil {
		return k, nil
	}
	dl := filepath.Join(cache, "deb")
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
	return k, nil
}

// StageModules copies the closure of wanted into stage/lib/modules/VERSION,
// with the module index files the loader reads, and returns the names
// loaded at boot.
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
	for _, f := range append(files, "modules.dep", "modules.builtin", "modules.alias", "modules.order") {
		if err := copyFile(filepath.Join(k.ModDir(), f), filepath.Join(dst, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return wanted, nil
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
