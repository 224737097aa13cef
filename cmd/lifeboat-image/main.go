package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lifeboat-boot/lifeboat/images"
	"github.com/lifeboat-boot/lifeboat/unlock"
)

var ipxeDir *string

func main() {
	out := flag.String("out", "build/image", "output folder")
	cache := flag.String("cache", "build/cache", "download cache for the kernel package")
	kernelPkg := flag.String("kernel", "linux-image-amd64", "Debian kernel (meta)package")
	ipxeDir = flag.String("ipxe", "/usr/lib/ipxe", "folder of Debian's ipxe package")
	flag.Parse()
	if err := run(*out, *cache, *kernelPkg); err != nil {
		fmt.Fprintf(os.Stderr, "lifeboat-image: %v\n", err)
		os.Exit(1)
	}
}

func run(out, cache, kernelPkg string) error {
	start := time.Now()
	k, err := images.FetchKernel(cache, kernelPkg)
	if err != nil {
		return err
	}
	stage := filepath.Join(cache, "stage")
	_ = os.RemoveAll(stage)
	files, err := images.StageModules(k, stage, images.ServerModules())
	if err != nil {
		return err
	}
	pkgDirs, versions, err := images.FetchFirmware(cache, images.FirmwarePackages)
	if err != nil {
		return err
	}
	fw, fwMissing, err := images.StageFirmware(k.ModDir(), files, stage, pkgDirs, versions, images.FirmwarePackages)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(stage, "etc", "lifeboat"), 0o755); err != nil {
		return err
	}
	// The modules with no device to match: loaded with the disks, and
	// after the prompt is up.
	for file, list := range map[string][]string{"modules.always": images.AlwaysModules, "modules.later": images.LaterModules} {
		if err := os.WriteFile(filepath.Join(stage, "etc", "lifeboat", file), []byte(strings.Join(list, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	initramfs := filepath.Join(cache, "initramfs.cpio")
	args := []string{"tool", "mkuimage", "-o", initramfs,
		"-initcmd=init", "-uinitcmd=lifeboat-init", "-defaultsh=", "-go-build-tags=goshsmall",
		"-files", filepath.Join(stage, "lib") + ":lib",
		"-files", filepath.Join(stage, "etc", "lifeboat") + ":etc/lifeboat",
		"github.com/u-root/u-root/cmds/core/init", "./cmd/lifeboat-init", "./cmd/lifeboat-modprobe"}
	for _, c := range images.RescueCommands {
		args = append(args, "github.com/u-root/u-root/cmds/core/"+c)
	}
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOAMD64=v1")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mkuimage: %w", err)
	}
	if err := images.CompressInitramfs(initramfs, filepath.Join(out, images.InitramfsName)); err != nil {
		return err
	}
	raw, err := os.Stat(initramfs)
	if err != nil {
		return err
	}
	kdata, err := os.ReadFile(k.Vmlinuz())
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "vmlinuz"), kdata, 0o644); err != nil {
		return err
	}
	// First-stage loaders from Debian's ipxe package, copied (links
	// resolved) so that the TFTP server's rooted folder holds real files.
	names := []string{"vmlinuz", images.InitramfsName}
	for _, l := range images.Loaders {
		data, err := os.ReadFile(filepath.Join(*ipxeDir, l))
		if err != nil {
			return fmt.Errorf("iPXE loader: %w (apt-get install ipxe)", err)
		}
		if err := os.MkdirAll(filepath.Join(out, "tftp"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, "tftp", l), data, 0o644); err != nil {
			return err
		}
		names = append(names, "tftp/"+l)
	}
	m := &images.Manifest{Built: time.Now().UTC(), Kernel: k.Package, KernelVersion: k.DebVersion, Firmware: fw, FirmwareMissing: fwMissing,
		InitramfsUncompressed: raw.Size()}
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(k.ModDir(), f))
		if err != nil {
			return err
		}
		m.Modules = append(m.Modules, images.Module{Name: images.ModName(f), File: f, Package: k.Package, Version: k.DebVersion, Size: fi.Size()})
	}
	for _, name := range names {
		a, err := images.Hash(out, name)
		if err != nil {
			return err
		}
		m.Artefacts = append(m.Artefacts, a)
	}
	if err := m.Write(out); err != nil {
		return err
	}
	for _, a := range m.Artefacts {
		fmt.Printf("%-16s %10d bytes (%s)  sha256 %s\n", a.Name, a.Size, unlock.HumanBytes(a.Size), a.SHA256)
	}
	var fwBytes int64
	for _, f := range fw {
		fwBytes += f.Size
	}
	fmt.Printf("%d modules, %d firmware files (%s), initramfs %s uncompressed\n", len(m.Modules), len(fw), unlock.HumanBytes(fwBytes), unlock.HumanBytes(raw.Size()))
	fmt.Printf("image built in %s: %s\n", time.Since(start).Round(time.Second), out)
	return nil
}
