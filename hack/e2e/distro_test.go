//go:build e2e && distros

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-boot/lifeboat/hack/distro"
	"github.com/lifeboat-boot/lifeboat/hack/fixture"
	"github.com/lifeboat-boot/lifeboat/hack/rig"
	"github.com/lifeboat-boot/lifeboat/hack/vm"
	"github.com/lifeboat-boot/lifeboat/unlock/handoff"
)

var distroHosts = []struct {
	host    rig.Host
	recipe  distro.Recipe
	flavour handoff.Flavour
}{
	{rig.Host{Name: "debian-itools", Firmware: "bios", MAC: "52:54:00:4c:42:60", IP: "10.77.0.60"}, distro.InitramfsTools, handoff.FlavourInitramfsTools},
	{rig.Host{Name: "debian-dracut", Firmware: "uefi", MAC: "52:54:00:4c:42:70", IP: "10.77.0.70"}, distro.Dracut, handoff.FlavourSystemd},
}

// distroDisk builds (or takes from the cache) one system, checks that
// lifeboat reads its initrd as what it is, and puts it on a LUKS2 disk.
func distroDisk(t *testing.T, root, dir string, r distro.Recipe, want handoff.Flavour, pass string) (*fixture.Disk, error) {
	b, err := distro.Build(r, filepath.Join(root, "build", "cache"), t.Logf)
	if err != nil {
		return nil, err
	}
	t.Logf("%s: built in %s (cached: %v), kernel %s", r.Name, b.Took.Round(time.Second), b.Cached, b.Kernel)
	f, err := os.Open(filepath.Join(b.BootDir, "initrd.img-"+b.Kernel))
	if err != nil {
		return nil, err
	}
	in, err := handoff.Inspect(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: reading its initrd: %w", r.Name, err)
	}
	if in.Flavour != want {
		return nil, fmt.Errorf("%s: initrd read as %v (%+v), want %v", r.Name, in.Flavour, in, want)
	}
	t.Logf("%s: initrd %s, archives %d %v, crypttab %+v", r.Name, in.Flavour, in.Archives, in.Compression, in.Crypttab)
	size, err := b.RootSize()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	disk, err := fixture.Build(fixture.Options{Dir: dir, Passphrase: []byte(pass),
		PBKDFMemoryKiB: 32 * 1024, PBKDFTime: 4, UUID: b.LUKS, BootDir: b.BootDir, RootDir: b.Root, RootSize: size})
	if err != nil {
		return nil, err
	}
	t.Logf("%s: LUKS2 disk (%d MiB root) made in %s", r.Name, size>>20, time.Since(start).Round(time.Second))
	return disk, nil
}

// TestDistros: real Debian installs, debootstrapped, on LUKS2 roots, with
// initrds from initramfs-tools and from dracut, PXE-booted into lifeboat,
// unlocked over SSH, reach their login prompt without asking for the
// passphrase themselves.
func TestDistros(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()
	pass := "canary-" + rig.RandHex(12)
	// Both systems are built at once: debootstrap waits mostly on the
	// network and the disk.
	disks := make([]*fixture.Disk, len(distroHosts))
	errs := make([]error, len(distroHosts))
	var wg sync.WaitGroup
	for i, d := range distroHosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			disks[i], errs[i] = distroDisk(t, root, filepath.Join(dir, d.host.Name), d.recipe, d.flavour, pass)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	var hs []rig.Host
	for _, d := range distroHosts {
		hs = append(hs, d.host)
	}
	r := startRig(t, rig.Options{Root: root, Dir: dir, Hosts: hs})
	for i, d := range distroHosts {
		t.Run(d.recipe.Name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
			defer cancel()
			tap, err := r.NS.AddTap()
			if err != nil {
				t.Fatal(err)
			}
			h := d.host
			run := startVM(t, ctx, &vm.Host{Name: h.Name, Firmware: h.Firmware, MAC: h.MAC, Disk: disks[i].Path, MemMiB: 1536, Dir: dir}, r.NS, tap)
			defer run.Kill()
			defer func() {
				if t.Failed() {
					t.Logf("%s console:\n%s", h.Name, run.Console.Text())
				}
			}()
			if _, err := run.Console.WaitFor(ctx, 8*time.Minute, "is ready for unlock"); err != nil {
				t.Fatal(err)
			}
			cmd := r.NS.Command(ctx, "ssh", append(r.SSHArgs(h.IP, "-o", "BatchMode=yes"), "unlock")...)
			cmd.Stdin = strings.NewReader(pass + "\n")
			out, err := cmd.CombinedOutput()
			t.Logf("%s: the customer's unlock:\n%s", h.Name, out)
			if err != nil {
				t.Fatalf("unlock: %v", err)
			}
			unlocked := time.Now()
			// The login prompt: getty prints /etc/issue's line, then
			// "NAME login: " (no newline, so the issue line is waited for).
			// The OS's own prompts for a passphrase must never show.
			issue := "Debian GNU/Linux 12 lifeboat-" + d.recipe.Name + " ttyS0"
			line, err := run.Console.WaitFor(ctx, 10*time.Minute, issue, "Please unlock disk", "Please enter passphrase", "Enter passphrase for")
			if err != nil {
				t.Fatalf("no login prompt: %v", err)
			}
			if !strings.Contains(line, issue) {
				t.Fatalf("the OS asked for the passphrase itself: %s", line)
			}
			if _, err := run.Console.WaitFor(ctx, time.Second, "Cryptography Setup for root"); err != nil {
				t.Errorf("no sign of the root's dm-crypt setup on the console: %v", err)
			}
			t.Logf("%s: passphrase to login prompt: %s (%s)", h.Name, time.Since(unlocked).Round(100*time.Millisecond), strings.TrimSpace(line))
			if bytes.Contains([]byte(run.Console.Text()), []byte(pass)) {
				t.Error("passphrase on the console")
			}
		})
	}
}
