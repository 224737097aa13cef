package agent

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
)

// secureBootVar is the UEFI global variable SecureBoot, as efivarfs names
// it: four bytes of attributes, then 1 (enforcing) or 0.
const secureBootVar = "firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

// MountTrustFS mounts what ReadTrust reads, if the image's init did not:
// efivarfs (read-only: the agent never writes a UEFI variable) and
// securityfs, under sys.
func MountTrustFS(sys string) {
	if _, err := os.Stat(filepath.Join(sys, "firmware/efi")); err == nil {
		_ = unix.Mount("efivarfs", filepath.Join(sys, "firmware/efi/efivars"), "efivarfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	}
	_ = unix.Mount("securityfs", filepath.Join(sys, "kernel/security"), "securityfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

// readable says whether efivarfs shows variables at dir: without it
// mounted, a missing variable says nothing.
func readable(dir string) bool {
	ents, err := os.ReadDir(dir)
	return err == nil && len(ents) > 0
}

// ReadTrust reads, under sys (/sys), how this boot started: UEFI or BIOS,
// Secure Boot's state, and the kernel's lockdown mode.
func ReadTrust(sys string) agentapi.BootTrust {
	t := agentapi.BootTrust{Firmware: "bios", SecureBoot: "off", Lockdown: "unknown"}
	if _, err := os.Stat(filepath.Join(sys, "firmware/efi")); err == nil {
		t.Firmware, t.SecureBoot = "uefi", "unknown"
		b, err := os.ReadFile(filepath.Join(sys, secureBootVar))
		switch {
		case err == nil && len(b) == 5 && b[4] == 1:
			t.SecureBoot = "on"
		case err == nil && len(b) == 5 && b[4] == 0:
			t.SecureBoot = "off"
		case errors.Is(err, fs.ErrNotExist) && readable(filepath.Join(sys, filepath.Dir(secureBootVar))):
			// Firmware without Secure Boot has no such variable (the
			// kernel reads it the same way).
			t.SecureBoot = "off"
		}
	}
	// "none [integrity] confidentiality": the mode in brackets.
	if b, err := os.ReadFile(filepath.Join(sys, "kernel/security/lockdown")); err == nil {
		for _, f := range strings.Fields(string(b)) {
			if m, ok := strings.CutPrefix(f, "["); ok {
				m = strings.TrimSuffix(m, "]")
				for _, w := range agentapi.TrustLockdown {
					if m == w {
						t.Lockdown = m
					}
				}
			}
		}
	}
	return t
}
