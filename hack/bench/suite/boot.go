package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/lifeboat-boot/lifeboat/images"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/lifeboat-boot/lifeboat/hack/rig"
	"github.com/lifeboat-boot/lifeboat/hack/vm"
)

const baselineMarker = "lifeboat-baseline: init is up"

// boot measures power-on to SSH-ready in QEMU for a BIOS and a UEFI host,
// against the same firmware, iPXE, DHCP and HTTP path and the same kernel
// booting a busybox initramfs whose init prints one line.
func (b *bench) boot() error {
	img := filepath.Join(b.root, "build", "image")
	dir, err := os.MkdirTemp("", "lifeboat-bench-boot")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	base, err := baselineImage(img, filepath.Join(dir, "baseline"))
	if err != nil {
		return err
	}
	hosts := []rig.Host{
		{Name: "bench-bios", Firmware: "bios", MAC: "52:54:00:be:00:01", IP: "10.77.0.51"},
		{Name: "bench-uefi", Firmware: "uefi", MAC: "52:54:00:be:00:02", IP: "10.77.0.52"},
	}
	variants := []struct{ name, image, marker string }{
		{"lifeboat", img, "is ready for unlock"},
		{"busybox baseline", base, baselineMarker},
	}
	times := map[string]map[string][]float64{} // variant → firmware → seconds
	sshTimes := map[string][]float64{}         // firmware → seconds to lifeboat's SSH server answering
	for round := range b.rounds {
		for _, v := range variants {
			if times[v.name] == nil {
				times[v.name] = map[string][]float64{}
			}
			wd, err := os.MkdirTemp(dir, "rig")
			if err != nil {
				return err
			}
			r, err := rig.Start(rig.Options{Root: b.root, Dir: wd, Hosts: hosts, ImageDir: v.image, LogLevel: "warn"})
			if err != nil {
				return err
			}
			for _, h := range hosts {
				d, ssh, err := powerOn(r, h, wd, v.marker, v.name == "lifeboat")
				if err != nil {
					r.Close()
					return fmt.Errorf("%s, %s: %w", v.name, h.Firmware, err)
				}
				times[v.name][h.Firmware] = append(times[v.name][h.Firmware], d.Seconds())
				if ssh > 0 {
					sshTimes[h.Firmware] = append(sshTimes[h.Firmware], ssh.Seconds())
					fmt.Printf("  round %d %-16s %-4s power-on to SSH answering: %.1f s\n", round+1, v.name, h.Firmware, ssh.Seconds())
				}
				fmt.Printf("  round %d %-16s %-4s power-on to ready: %.1f s\n", round+1, v.name, h.Firmware, d.Seconds())
			}
			if err := r.Close(); err != nil {
				return err
			}
		}
	}
	sec := section{
		title: "Power-on to SSH-ready in QEMU",
		intro: "QEMU (TCG, no KVM here; one vCPU) boots from lifeboatd through the firmware's PXE (SeaBIOS, or OVMF with the iPXE ROM), iPXE, DHCP and HTTP. " +
			"SSH-ready is when lifeboat's SSH server first answers a connection from the boot network with its banner; the unlock prompt is up once the disks are found too, when the console says so (this host has no disk: the wait for disks to settle is all there is). " +
			"The baseline takes the same path with the same kernel, but its initramfs is busybox whose init prints one line.",
		header: []string{"firmware", "lifeboat SSH-ready", "lifeboat unlock prompt up", "busybox baseline", "SSH-ready / baseline", "prompt / baseline"},
	}
	for _, fw := range []string{"bios", "uefi"} {
		s, l, bb := median(sshTimes[fw]), median(times["lifeboat"][fw]), median(times["busybox baseline"][fw])
		sec.rows = append(sec.rows, []string{fw, fmt.Sprintf("%.1f s", s), fmt.Sprintf("%.1f s", l), fmt.Sprintf("%.1f s", bb), ratio(s, bb), ratio(l, bb)})
	}
	sec.notes = append(sec.notes, "Goal: SSH-ready ≤ 1.3× the busybox baseline.")
	b.add(sec)
	return nil
}

// powerOn boots h and returns the time from QEMU's start to marker on its
// console and, with probeSSH, to its SSH server's first answer.
func powerOn(r *rig.Rig, h rig.Host, dir, marker string, probeSSH bool) (took, ssh time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	tap, err := r.NS.AddTap()
	if err != nil {
		return 0, 0, err
	}
	host := &vm.Host{Name: h.Name, Firmware: h.Firmware, MAC: h.MAC, MemMiB: 1536, Dir: dir}
	start := time.Now()
	run, err := host.Start(ctx, r.NS, tap)
	if err != nil {
		return 0, 0, err
	}
	defer run.Kill()
	sshUp := make(chan time.Duration, 1)
	if probeSSH {
		go func() { sshUp <- firstSSH(ctx, r.NS, h.IP+":22", start) }()
	}
	if _, err := run.Console.WaitFor(ctx, 8*time.Minute, marker); err != nil {
		return 0, 0, fmt.Errorf("%v; console:\n%s", err, run.Console.Text())
	}
	took = time.Since(start)
	if probeSSH {
		if ssh = <-sshUp; ssh == 0 {
			return 0, 0, fmt.Errorf("the SSH server never answered at %s:22", h.IP)
		}
	}
	if os.Getenv("BENCH_TIMELINE") != "" {
		fmt.Print(run.Console.Timeline(start))
	}
	return took, ssh, nil
}

// firstSSH connects to addr from the namespace every 100 ms until an SSH
// server answers with its banner, and returns when that was (since
// start); 0 if ctx ended first.
func firstSSH(ctx context.Context, ns *vm.NS, addr string, start time.Time) time.Duration {
	for ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		c, err := ns.Dial(dctx, "tcp", addr)
		cancel()
		if err == nil {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 8)
			n, _ := io.ReadFull(c, buf)
			c.Close()
			if n == len(buf) && bytes.HasPrefix(buf, []byte("SSH-2.0-")) {
				return time.Since(start)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return 0
}

// baselineImage makes an image folder like img, but whose initramfs is
// static busybox with an init that prints baselineMarker and powers off.
func baselineImage(img, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, f := range []string{"vmlinuz", "manifest.json"} {
		data, err := os.ReadFile(filepath.Join(img, f))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			return "", err
		}
	}
	if err := os.Symlink(filepath.Join(img, "tftp"), filepath.Join(dir, "tftp")); err != nil {
		return "", err
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return "", fmt.Errorf("busybox: %w (apt-get install busybox-static)", err)
	}
	var buf bytes.Buffer
	w := cpio.Newc.Writer(&buf)
	recs := []cpio.Record{
		cpio.Directory("dev", 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.Directory("bin", 0o755),
		cpio.StaticRecord(bb, cpio.Info{Name: "bin/busybox", Mode: 0o100755}),
		cpio.StaticFile("init", "#!/bin/busybox sh\n/bin/busybox echo '"+baselineMarker+"'\n/bin/busybox sleep 5\n/bin/busybox poweroff -f\n", 0o755),
	}
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		return "", err
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return "", err
	}
	// Under the name lifeboatd serves; the kernel tells a plain cpio from
	// a compressed one by its first bytes.
	return dir, os.WriteFile(filepath.Join(dir, images.InitramfsName), buf.Bytes(), 0o644)
}
