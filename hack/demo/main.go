package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/lifeboat-boot/lifeboat/hack/fixture"
	"github.com/lifeboat-boot/lifeboat/hack/rig"
	"github.com/lifeboat-boot/lifeboat/hack/vm"
	"github.com/lifeboat-boot/lifeboat/images"
)

// The demo passphrase is public on purpose: it unlocks a throwaway disk.
const demoPassphrase = "lifeboat-demo"

func main() {
	firmware := flag.String("firmware", "bios", "firmware of the demo host: bios or uefi")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *firmware); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func say(format string, a ...any) { fmt.Printf("==> "+format+"\n", a...) }

func run(ctx context.Context, firmware string) error {
	root, _ := os.Getwd()
	dir, err := filepath.Abs(filepath.Join("build", "demo"))
	if err != nil {
		return err
	}
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	say("building the demo host's disk: /boot + LUKS2 (argon2id) root")
	k, err := images.FetchKernel(filepath.Join(root, "build", "cache"), "linux-image-amd64")
	if err != nil {
		return err
	}
	disk, err := fixture.Build(fixture.Options{Kernel: k, Dir: filepath.Join(dir, "disk"), Passphrase: []byte(demoPassphrase),
		Marker: "Hello from inside the encrypted root file system", PBKDFMemoryKiB: 64 * 1024, PBKDFTime: 4})
	if err != nil {
		return err
	}
	host := rig.Host{Name: "demo-host", Firmware: firmware, MAC: "52:54:00:de:00:01", IP: "10.77.0.10"}
	say("starting lifeboatd in a network namespace (log: %s)", filepath.Join(dir, "lifeboatd.log"))
	r, err := rig.Start(rig.Options{Root: root, Dir: dir, Hosts: []rig.Host{host}, LogLevel: "info"})
	if err != nil {
		return err
	}
	defer func() {
		_ = os.WriteFile(filepath.Join(dir, "lifeboatd.log"), []byte(r.ServerLog.String()), 0o644)
		if err := r.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		}
		say("cleaned up: namespace %s removed, lifeboatd stopped", r.NS.Name)
	}()
	tap, err := r.NS.AddTap()
	if err != nil {
		return err
	}
	qctx, cancel := context.WithTimeout(ctx, 2*time.Hour)
	defer cancel()
	m := &vm.Host{Name: host.Name, Firmware: firmware, MAC: host.MAC, Disk: disk.Path, MemMiB: 1536, Dir: dir}
	say("powering on a %s host under QEMU (console: %s)", strings.ToUpper(firmware), filepath.Join(dir, host.Name+"-console.log"))
	start := time.Now()
	vmRun, err := m.Start(qctx, r.NS, tap)
	if err != nil {
		return err
	}
	defer vmRun.Kill()
	line, err := vmRun.Console.WaitFor(qctx, 10*time.Minute, "is ready for unlock", "FATAL")
	if err != nil {
		return err
	}
	if strings.Contains(line, "FATAL") {
		return fmt.Errorf("the host did not come up: %s", line)
	}
	say("the host reached the unlock prompt %s after power-on", time.Since(start).Round(time.Second))
	sshCmd := "ip netns exec " + r.NS.Name + " ssh " + strings.Join(r.SSHArgs(host.IP), " ")
	say("to unlock it, run as root:\n\n    %s\n\n    and type the demo passphrase: %s\n", sshCmd, demoPassphrase)

	if term.IsTerminal(int(os.Stdin.Fd())) {
		say("connecting for you now")
		ssh := r.NS.Command(qctx, "ssh", r.SSHArgs(host.IP)...)
		ssh.Stdin, ssh.Stdout, ssh.Stderr = os.Stdin, os.Stdout, os.Stderr
		_ = ssh.Run()
	} else {
		say("no terminal on stdin: waiting for you to unlock from another shell (Ctrl-C ends the demo)")
	}
	say("waiting for the host's own OS to boot...")
	line, err = vmRun.Console.WaitFor(qctx, 30*time.Minute, "TESTOS-MARKER:", "TESTOS-FAIL:")
	if err != nil {
		return err
	}
	say("the host's OS says: %s", line)
	if strings.Contains(line, "TESTOS-FAIL") {
		return fmt.Errorf("the OS did not open its root")
	}
	say("done: the OS opened its LUKS root with the key handed over in memory, and never asked for the passphrase")
	return nil
}
