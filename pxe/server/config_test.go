package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The shipped example must stay a valid configuration.
func TestExampleConfig(t *testing.T) {
	c, err := LoadConfig("../../cmd/lifeboatd/lifeboatd.example.json", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.DHCPMode != "full" || c.TFTPDir != "/var/lib/lifeboat/image/tftp" {
		t.Errorf("config = %+v", c)
	}
}

func TestBadConfig(t *testing.T) {
	tests := map[string]string{
		`{"interface":"eth1","server_ip":"192.0.2.1","inventory":"h","database":"d","dhcp_mode":"sideways"}`:              `dhcp_mode "sideways"`,
		`{"interface":"eth1","server_ip":"192.0.2.1","inventory":"h","database":"d","kernel_cmdline":"quiet || shell"}`:   "without iPXE operators",
		`{"interface":"eth1","server_ip":"192.0.2.1","inventory":"h","database":"d","kernel_cmdline":"lifeboat.token=x"}`: "never go on the command line",
		`{"server_ip":"192.0.2.1","inventory":"h","database":"d"}`:                                                        "interface: name the interface",
		`{"interface":"eth1","server_ip":"2001:db8::1","inventory":"h","database":"d"}`:                                   "IPv4 address",
		`{"interface":"eth1","server_ip":"192.0.2.1","inventory":"h","database":"d","token_ttl":"soon"}`:                  "invalid duration",
		`{"interface":"eth1","server_ip":"192.0.2.1","inventory":"h","database":"d","colour":"red"}`:                      "unknown field",
		`{"interface":"eth1","server_ip":"192.0.2.1","api_listen":"0.0.0.0:8081"}`:                                        "in the clear",
		`{"interface":"eth1","server_ip":"192.0.2.1","api_tls_cert":"c"}`:                                                 "set both, or neither",
		`{"server_ip":"192.0.2.1","dhcp_mode":"off","api_listen":"localhost"}`:                                            "api_listen \"localhost\"",
		`{"interface":"eth1","server_ip":"192.0.2.1","database":"d","vlans":"120:eth1.120:10.9.120.1"}`:                   "first_stage_pool: hosts on vlans need",
		`{"interface":"eth1","server_ip":"192.0.2.1","database":"d","vlans":"5000:eth1.5000:10.9.120.1"}`:                 "the tag \"5000\" is not 1..4094",
		`{"interface":"eth1","server_ip":"192.0.2.1","database":"d","vlans":"120:eth1:10.9.120.1"}`:                       "the VLAN's own interface",
		`{"interface":"eth1","server_ip":"192.0.2.1","database":"d","vlans":"120:eth1.120"}`:                              "want TAG:INTERFACE:ADDRESS",
		`{"interface":"eth1","server_ip":"192.0.2.1","database":"d","vlans":"120:a:10.9.120.1,120:b:10.9.121.1"}`:         "VLAN 120 is listed twice",
		`{"interface":"eth1","server_ip":"192.0.2.1","database":"d","first_stage_pool":"192.0.2.9-192.0.2.1/24"}`:         "the last address is before the first",
		`{"server_ip":"192.0.2.1","database":"d","dhcp_mode":"off","vlans":"120:eth1.120:10.9.120.1"}`:                    "needs dhcp_mode \"full\"",
	}
	for doc, want := range tests {
		p := filepath.Join(t.TempDir(), "c.json")
		_ = os.WriteFile(p, []byte(doc), 0o600)
		if _, err := LoadConfig(p, nil, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadConfig(%s) = %v, want an error containing %q", doc, err, want)
		}
	}
}

// TestOverrides: the environment beats the file and flags beat both; a
// bad or unknown override is an error that names it.
func TestOverrides(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.json")
	_ = os.WriteFile(p, []byte(`{"interface":"eth1","server_ip":"192.0.2.1","http_port":8080,"unlock":{"max_tries":5}}`), 0o600)
	env := []string{"PATH=/bin", "LIFEBOATD_HTTP_PORT=9000", "LIFEBOATD_UNLOCK_MAX_TRIES=7", "LIFEBOATD_TOKEN_TTL=2m", "LIFEBOATD_SERVER_IP=192.0.2.9"}
	c, err := LoadConfig(p, env, []Override{{"http_port", "9100"}, {"unlock.lockout", "90s"}, {"dhcp_mode", "off"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPPort != 9100 || c.Unlock.MaxTries != 7 || time.Duration(c.TokenTTL) != 2*time.Minute ||
		time.Duration(c.Unlock.Lockout) != 90*time.Second || c.ServerIP.String() != "192.0.2.9" || c.DHCPMode != "off" {
		t.Errorf("config = %+v", c)
	}
	for _, tc := range []struct {
		env  []string
		o    []Override
		want string
	}{
		{[]string{"LIFEBOATD_COLOUR=red"}, nil, "LIFEBOATD_COLOUR is not a configuration key"},
		{[]string{"LIFEBOATD_HTTP_PORT=eighty"}, nil, "LIFEBOATD_HTTP_PORT"},
		{nil, []Override{{"token_ttl", "soon"}}, "flag -token_ttl"},
		{nil, []Override{{"http_port", "0"}}, "http_port 0"},
	} {
		if _, err := LoadConfig(p, tc.env, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadConfig(%v, %v) = %v, want %q", tc.env, tc.o, err, tc.want)
		}
	}
}

func TestNoticeAndCAConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "c.json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := `"dhcp_mode": "off", "server_ip": "127.0.0.1", "database": "` + dir + `/db/lifeboat.db"`
	c, err := LoadConfig(write(`{`+base+`}`), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.SSHCAKey != dir+"/db/ssh_ca_key" || c.SecretKey != dir+"/db/secret.key" || c.smtp() != nil {
		t.Fatalf("defaults: ca %q, secret %q, smtp %+v", c.SSHCAKey, c.SecretKey, c.smtp())
	}
	for body, want := range map[string]string{
		`"host_cert_ttl": "720h"`:                                  "hours, not days",
		`"notice_retry": "1ms"`:                                    "notice_retry",
		`"smtp": {"host": "mail.example.net"}`:                     "smtp.from",
		`"smtp": {"host": "m", "from": "a@b", "username": "u"}`:    "smtp.password_file",
		`"smtp": {"host": "m", "from": "a@b", "ca_file": "/nope"}`: "smtp.ca_file",
		`"smtp": {"host": "m", "from": "a@b", "port": 70000}`:      "smtp.port",
	} {
		if _, err := LoadConfig(write(`{`+base+`, `+body+`}`), nil, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error about %s", body, err, want)
		}
	}
	// The SMTP password comes from a file, and can be overridden like any key.
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	c, err = LoadConfig(write(`{`+base+`, "smtp": {"host": "m", "from": "a@b", "username": "u", "password_file": "`+pw+`"}}`),
		[]string{"LIFEBOATD_SMTP_REQUIRE_TLS=true"}, []Override{{"smtp.port", "587"}})
	if err != nil {
		t.Fatal(err)
	}
	if s := c.smtp(); s.Port != 587 || !s.RequireTLS || s.Check() != nil {
		t.Fatalf("smtp = %+v", s)
	}
}

// TestCAHosts: the @cert-authority pattern is never "*": by default the
// boot network's /24 and the rescue domain; "*" set by hand is refused
// with what to write instead.
func TestCAHosts(t *testing.T) {
	dir := t.TempDir()
	load := func(extra string) (*Config, error) {
		p := filepath.Join(dir, "c.json")
		body := `{"interface":"br0","server_ip":"10.77.0.1","database":"` + filepath.Join(dir, "db") + `"` + extra + `}`
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return LoadConfig(p, nil, nil)
	}
	c, err := load("")
	if err != nil || c.SSHCAHosts != "10.77.0.*" {
		t.Fatalf("default ssh_ca_hosts = %q, %v", c.SSHCAHosts, err)
	}
	c, err = load(`,"rescue_domain":"rescue.example.net"`)
	if err != nil || c.SSHCAHosts != "10.77.0.*,*.rescue.example.net" {
		t.Fatalf("ssh_ca_hosts with a rescue domain = %q, %v", c.SSHCAHosts, err)
	}
	c, err = load(`,"vlans":"120:br0.120:10.77.120.1","first_stage_pool":"10.77.0.200-10.77.0.209/24"`)
	if err != nil || c.SSHCAHosts != "10.77.0.*,10.77.120.*" {
		t.Fatalf("ssh_ca_hosts with a VLAN = %q, %v", c.SSHCAHosts, err)
	}
	for _, bad := range []string{`"*"`, `"10.77.0.*,*"`, `"*.*"`} {
		if _, err := load(`,"ssh_ca_hosts":` + bad); err == nil || !strings.Contains(err.Error(), "production hosts") {
			t.Errorf("ssh_ca_hosts %s: %v, want it refused", bad, err)
		}
	}
}
