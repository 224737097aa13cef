package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The shipped example must stay a valid configuration.
func TestExampleConfig(t *testing.T) {
	c, err := loadConfig("lifeboatd.example.json")
	if err != nil {
		t.Fatal(err)
	}
	if c.DHCPMode != "full" || c.TFTPDir != "/var/lib/lifeboat/image/tftp" {
		t.Errorf("config = %+v", c)
	}
}

func TestBadConfig(t *testing.T) {
	tests := map[string]string{
		`{"interface":"eth1","server_ip":"192.0.2.1","inventory":"h","event_log":"e","dhcp_mode":"sideways"}`:              `dhcp_mode "sideways"`,
		`{"interface":"eth1","server_ip":"192.0.2.1","inventory":"h","event_log":"e","kernel_cmdline":"quiet || shell"}`:   "without iPXE operators",
		`{"interface":"eth1","server_ip":"192.0.2.1","inventory":"h","event_log":"e","kernel_cmdline":"lifeboat.token=x"}`: "never go on the command line",
		`{"server_ip":"192.0.2.1","inventory":"h","event_log":"e"}`:                                                        "interface: name the interface",
		`{"interface":"eth1","server_ip":"2001:db8::1","inventory":"h","event_log":"e"}`:                                   "IPv4 address",
		`{"interface":"eth1","server_ip":"192.0.2.1","inventory":"h","event_log":"e","token_ttl":"soon"}`:                  "invalid duration",
		`{"interface":"eth1","server_ip":"192.0.2.1","inventory":"h","event_log":"e","colour":"red"}`:                      "unknown field",
	}
	for doc, want := range tests {
		p := filepath.Join(t.TempDir(), "c.json")
		_ = os.WriteFile(p, []byte(doc), 0o600)
		if _, err := loadConfig(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("loadConfig(%s) = %v, want an error containing %q", doc, err, want)
		}
	}
}
