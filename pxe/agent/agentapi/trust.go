package agentapi

import (
	"fmt"
	"slices"
)

// BootTrust is what the RAM image can see of how it was started, for the
// customer: whether the firmware enforced Secure Boot, and whether the
// kernel runs locked down. It says nothing it cannot see: that no one
// verified the RAM image as a whole is the server's to add (Line).
type BootTrust struct {
	Firmware   string `json:"firmware"`    // "uefi" or "bios"
	SecureBoot string `json:"secure_boot"` // "on", "off" or "unknown"; "off" on BIOS
	Lockdown   string `json:"lockdown"`    // "none", "integrity", "confidentiality" or "unknown"
}

// The words each field may hold: the server takes nothing else.
var (
	TrustFirmware   = []string{"uefi", "bios"}
	TrustSecureBoot = []string{"on", "off", "unknown"}
	TrustLockdown   = []string{"none", "integrity", "confidentiality", "unknown"}
)

// Check refuses a field outside its words.
func (t BootTrust) Check() error {
	for _, f := range []struct {
		name, v string
		ok      []string
	}{{"firmware", t.Firmware, TrustFirmware}, {"secure_boot", t.SecureBoot, TrustSecureBoot}, {"lockdown", t.Lockdown, TrustLockdown}} {
		if !slices.Contains(f.ok, f.v) {
			return fmt.Errorf("trust: %s %q: want one of %v", f.name, f.v, f.ok)
		}
	}
	return nil
}

// Line says the boot's trust in one plain line, for the customer. Today's
// RAM image is never verified as a whole before it runs: iPXE checks
// nothing, and no signed unified image is built yet.
func (t BootTrust) Line() string {
	sb := "Secure Boot: " + t.SecureBoot
	if t.Firmware == "bios" {
		sb = "Secure Boot: off (BIOS firmware)"
	}
	return fmt.Sprintf("%s; kernel lockdown: %s; image: not verified (nothing checked lifeboat's RAM image before it ran)", sb, t.Lockdown)
}
