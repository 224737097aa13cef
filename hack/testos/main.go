package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anatol/devmapper.go"
	"github.com/anatol/luks.go"
	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"

	"github.com/lifeboat-boot/lifeboat/unlock"
)

func main() {
	_ = os.MkdirAll("/dev", 0o755)
	_ = unix.Mount("devtmpfs", "/dev", "devtmpfs", 0, "")
	if c, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		os.Stdout, os.Stderr = c, c
	}
	if err := run(); err != nil {
		fmt.Printf("TESTOS-FAIL: %v\n", err)
	}
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func run() error {
	for _, m := range [][3]string{{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}} {
		_ = os.MkdirAll(m[1], 0o755)
		if err := unix.Mount(m[0], m[1], m[2], 0, ""); err != nil {
			return fmt.Errorf("mount %s: %w", m[1], err)
		}
	}
	fmt.Println("TESTOS: booted")
	if f, err := os.Open("/etc/testos/modules"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if m := strings.TrimSpace(sc.Text()); m != "" {
				if err := kmodule.Probe(m, ""); err != nil {
					fmt.Printf("TESTOS: module %s: %v\n", m, err)
				}
			}
		}
		f.Close()
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	// Every volume named on the command line is opened with the key file
	// lifeboat handed over for it, as systemd's initrd would; the root is
	// mounted last and its marker printed last, after the other volumes'.
	type volume struct{ uuid, name string }
	var vols []volume
	for _, f := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(f, "rd.luks.name="); ok {
			uuid, name, _ := strings.Cut(v, "=")
			vols = append(vols, volume{uuid, name})
		}
	}
	if len(vols) == 0 {
		return fmt.Errorf("no rd.luks.name=UUID=NAME on the command line: %s", cmdline)
	}
	var rootMarker string
	for _, v := range vols {
		marker, err := openAndRead(v.uuid, v.name)
		if err != nil {
			return err
		}
		if v.name == "root" {
			rootMarker = marker
			continue
		}
		fmt.Printf("TESTOS-VOLUME %s: %s\n", v.name, marker)
	}
	if rootMarker == "" {
		return fmt.Errorf("no volume named root on the command line: %s", cmdline)
	}
	fmt.Printf("TESTOS-MARKER: %s\n", rootMarker)
	return nil
}

// openAndRead opens the LUKS volume uuid as name with its handed-over key
// file, mounts it read-only and returns the text of its file "marker".
func openAndRead(uuid, name string) (string, error) {
	keyPath := "/etc/cryptsetup-keys.d/" + name + ".key"
	key, err := os.ReadFile(keyPath)
	if err != nil {
		return "", fmt.Errorf("no key file %s: a real OS would now ask for the passphrase", keyPath)
	}
	fmt.Printf("TESTOS: key file %s present (%d bytes)\n", keyPath, len(key))
	dev, h, err := findLUKS(uuid, 30*time.Second)
	if err != nil {
		return "", err
	}
	if err := open(dev, h, name, key); err != nil {
		return "", fmt.Errorf("unlock %s (LUKS%d %s) with the key file: %w", dev, h.Version, h.Encryption, err)
	}
	fmt.Printf("TESTOS: opened %s (LUKS%d %s)\n", name, h.Version, h.Encryption)
	info, err := devmapper.InfoByName(name)
	if err != nil {
		return "", err
	}
	node := fmt.Sprintf("/dev/dm-%d", unix.Minor(info.DevNo))
	mnt := "/mnt/" + name
	_ = os.MkdirAll(mnt, 0o755)
	if err := unix.Mount(node, mnt, "ext4", unix.MS_RDONLY, ""); err != nil {
		return "", fmt.Errorf("mount %s: %w", node, err)
	}
	marker, err := os.ReadFile(mnt + "/marker")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(marker)), nil
}

// open maps the volume dev as name with key, as systemd-cryptsetup would:
// with the LUKS library, or, for a LUKS1 volume in a CBC mode (which it
// does not open), with lifeboat's unlock package. Either way the kernel's
// dm-crypt then decrypts data the fixture encrypted on its own, so a wrong
// key cannot show the marker.
func open(dev string, h *unlock.Header, name string, key []byte) error {
	if h.Version == 1 && strings.HasPrefix(h.Mode, "cbc-") {
		u, err := (&unlock.Unsealer{}).Unseal(context.Background(), unlock.Volume{Path: dev, Header: h}, key, nil)
		if err != nil {
			return err
		}
		return u.Key.SetupMapper(name)
	}
	d, err := luks.Open(dev)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.UnlockAny(key, name)
}

func findLUKS(uuid string, wait time.Duration) (string, *unlock.Header, error) {
	deadline := time.Now().Add(wait)
	for {
		ents, _ := os.ReadDir("/sys/class/block")
		for _, e := range ents {
			p := filepath.Join("/dev", e.Name())
			f, err := os.Open(p)
			if err != nil {
				continue
			}
			h, err := unlock.ReadHeader(f)
			f.Close()
			if err == nil && strings.EqualFold(h.UUID, uuid) {
				return p, h, nil
			}
		}
		if time.Now().After(deadline) {
			return "", nil, fmt.Errorf("no LUKS volume with UUID %s appeared", uuid)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
