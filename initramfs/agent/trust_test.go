package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
)

func TestReadTrust(t *testing.T) {
	write := func(root, rel string, b []byte) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		files map[string][]byte
		want  agentapi.BootTrust
	}{
		{"BIOS, no securityfs", nil, agentapi.BootTrust{Firmware: "bios", SecureBoot: "off", Lockdown: "unknown"}},
		{"UEFI, Secure Boot on, locked down", map[string][]byte{
			secureBootVar:              {6, 0, 0, 0, 1},
			"kernel/security/lockdown": []byte("none [integrity] confidentiality\n"),
		}, agentapi.BootTrust{Firmware: "uefi", SecureBoot: "on", Lockdown: "integrity"}},
		{"UEFI, Secure Boot off", map[string][]byte{
			secureBootVar:              {6, 0, 0, 0, 0},
			"kernel/security/lockdown": []byte("[none] integrity confidentiality\n"),
		}, agentapi.BootTrust{Firmware: "uefi", SecureBoot: "off", Lockdown: "none"}},
		{"UEFI without Secure Boot (no such variable), odd lockdown", map[string][]byte{
			"firmware/efi/efivars/Boot0000-8be4df61-93ca-11d2-aa0d-00e098032b8c": {7, 0, 0, 0, 1},
			"kernel/security/lockdown": []byte("[sideways]\n"),
		}, agentapi.BootTrust{Firmware: "uefi", SecureBoot: "off", Lockdown: "unknown"}},
		{"UEFI, efivarfs not mounted", map[string][]byte{
			"firmware/efi/systab": nil,
		}, agentapi.BootTrust{Firmware: "uefi", SecureBoot: "unknown", Lockdown: "unknown"}},
		{"UEFI, a short variable", map[string][]byte{secureBootVar: {1}}, agentapi.BootTrust{Firmware: "uefi", SecureBoot: "unknown", Lockdown: "unknown"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for rel, b := range tt.files {
				write(root, rel, b)
			}
			got := ReadTrust(root)
			if got != tt.want {
				t.Errorf("ReadTrust = %+v, want %+v", got, tt.want)
			}
			if err := got.Check(); err != nil {
				t.Errorf("the server would refuse it: %v", err)
			}
		})
	}
}
