package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/boot/dhcp"
	"github.com/lifeboat-boot/lifeboat/pxe/operator/notify"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
)

// Duration is a time.Duration written as "90s" or "5m" in the config.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"5m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Config is lifeboatd's configuration: a JSON file (see
// lifeboatd.example.json), each key overridable by the environment
// (LIFEBOATD_HTTP_PORT=8081, LIFEBOATD_UNLOCK_MAX_TRIES=3) and by flags
// (-http_port 8081, -unlock.max_tries 3), flags winning.
type Config struct {
	Interface     string     `json:"interface"`      // where DHCP is answered (not needed with dhcp_mode "off")
	DHCPMode      string     `json:"dhcp_mode"`      // "full" (addresses from reservations), "proxy" (boot information only) or "off" (the site's DHCP points hosts here)
	ServerIP      netip.Addr `json:"server_ip"`      // this server's address on that segment
	HTTPPort      int        `json:"http_port"`      // boot listener port
	TFTPDir       string     `json:"tftp_dir"`       // folder with undionly.kpxe, ipxe.efi, snponly.efi (default image_dir/tftp)
	BIOSLoader    string     `json:"bios_loader"`    // first stage for BIOS PXE
	UEFILoader    string     `json:"uefi_loader"`    // first stage for UEFI PXE
	ImageDir      string     `json:"image_dir"`      // output of 'make image'
	KernelCmdline string     `json:"kernel_cmdline"` // for the RAM image
	Database      string     `json:"database"`       // the store: inventory, boots, event log, tokens (SQLite)
	Inventory     string     `json:"inventory"`      // optional hosts file, imported (added or replaced) at every start
	APIListen     string     `json:"api_listen"`     // operator API and /metrics; "" turns it off
	APITLSCert    string     `json:"api_tls_cert"`   // PEM certificate (chain) for the operator API
	APITLSKey     string     `json:"api_tls_key"`    // its PEM private key (a file path: the key is never in the config)
	TokenTTL      Duration   `json:"token_ttl"`
	LeaseTime     Duration   `json:"lease_time"`
	SSHCAKey      string     `json:"ssh_ca_key"`   // the host-certificate CA's private key, made at first start (default: beside the database)
	AgentPort     int        `json:"agent_port"`   // the agent API's TLS port on server_ip
	AgentKey      string     `json:"agent_key"`    // the agent API's TLS and signing key, made at first start (default: beside the database)
	AgentURL      string     `json:"agent_url"`    // how agents reach the agent API (default https://server_ip:agent_port)
	SSHCAHosts    string     `json:"ssh_ca_hosts"` // known_hosts pattern of the @cert-authority line customers get, e.g. "*.rescue.example.net,10.1.*" (never "*"; default: server_ip's /24, and *.rescue_domain)
	DHCPRelays    string     `json:"dhcp_relays"`  // relay agents (giaddr) answered through, comma-separated addresses or prefixes: "10.9.0.1,10.88.0.0/16"
	// VLANs are the tagged boot networks DHCP is answered on too, for
	// hosts whose inventory entry names one (vlan): comma-separated
	// TAG:INTERFACE:ADDRESS, this server's address on that VLAN, e.g.
	// "120:eth1.120:10.9.120.1".
	VLANs string `json:"vlans"`
	// FirstStagePool is where those hosts' firmware and iPXE, which do not
	// tag, get an address on interface for the seconds of their first
	// stage: "10.9.0.200-10.9.0.239/24".
	FirstStagePool  string   `json:"first_stage_pool"`
	RescueDomain    string   `json:"rescue_domain"`    // host certificates name NAME.rescue_domain (and the host's IP), never a bare name
	HostCertTTL     Duration `json:"host_cert_ttl"`    // validity of a boot's host certificate
	SecretKey       string   `json:"secret_key"`       // seals webhook secrets in the database, made at first start (default: beside the database)
	RecordingsDir   string   `json:"recordings_dir"`   // rescue shells' recordings (default: "recordings" beside the database)
	ProviderName    string   `json:"provider_name"`    // the provider's name as customers know it, on the approval page
	AuditKey        string   `json:"audit_key"`        // ed25519 key that signs checkpoints of the audit chain, made at first start (default: beside the database; keep it off the database's backups)
	CheckpointEvery Duration `json:"checkpoint_every"` // how often the chain's head is signed when it moved (default 1m)
	// OperatorsChangeCustomers: the provider's contract lets operators
	// change customers' notice channels, policies, keys and tokens
	// themselves (each told on the customer's existing channels first);
	// false (the default): operators propose, customers accept.
	OperatorsChangeCustomers bool `json:"operators_change_customers"`
	SMTP                     struct {
		Host         string `json:"host"` // "" leaves e-mail notices waiting in the outbox
		Port         int    `json:"port"`
		From         string `json:"from"`
		Username     string `json:"username"`
		PasswordFile string `json:"password_file"`
		RequireTLS   bool   `json:"require_tls"`
		CAFile       string `json:"ca_file"`
	} `json:"smtp"`
	NoticeRetry Duration `json:"notice_retry"` // wait after a notice's first failed delivery; it doubles up to an hour
	// The customer listener: the approval page of rescue grants. "" turns
	// it off (grants that need approval then cannot be approved).
	CustomerListen  string `json:"customer_listen"`
	CustomerURL     string `json:"customer_url"` // how customers reach it, for the links in notices (default from customer_listen)
	CustomerTLSCert string `json:"customer_tls_cert"`
	CustomerTLSKey  string `json:"customer_tls_key"`
	Unlock          struct {
		MaxTries int      `json:"max_tries"`
		Lockout  Duration `json:"lockout"`
	} `json:"unlock"`
	LogLevel string `json:"log_level"` // debug, info, warn, error
}

func DefaultConfig() *Config {
	c := &Config{
		HTTPPort: 8080, AgentPort: 8443, BIOSLoader: "undionly.kpxe", UEFILoader: "ipxe.efi",
		ImageDir: "build/image", KernelCmdline: "console=tty0 console=ttyS0,115200 panic=30",
		Database: "/var/lib/lifeboat/lifeboat.db", APIListen: "127.0.0.1:8081",
		TokenTTL: Duration(10 * time.Minute), LeaseTime: Duration(time.Hour), LogLevel: "info",
		HostCertTTL: Duration(12 * time.Hour), NoticeRetry: Duration(10 * time.Second),
	}
	c.SMTP.Port = 25
	c.Unlock.MaxTries, c.Unlock.Lockout = 5, Duration(5*time.Minute)
	return c
}

// LoadConfig reads the file at path over the defaults, then applies the
// environment and the flag overrides (key → value, in the order given).
func LoadConfig(path string, env []string, flags []Override) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c := DefaultConfig()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	keys := configKeys(c)
	byEnv := map[string]string{} // LIFEBOATD_UNLOCK_MAX_TRIES → unlock.max_tries
	for k := range keys {
		byEnv[EnvName(k)] = k
	}
	for _, kv := range env {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "LIFEBOATD_") || name == "LIFEBOATD_CONFIG" {
			continue
		}
		k, ok := byEnv[name]
		if !ok {
			return nil, fmt.Errorf("environment: %s is not a configuration key (see lifeboatd -help)", name)
		}
		if err := setField(keys[k], val); err != nil {
			return nil, fmt.Errorf("environment %s: %w", name, err)
		}
	}
	for _, o := range flags {
		f, ok := keys[o.Key]
		if !ok {
			return nil, fmt.Errorf("flag -%s: not a configuration key", o.Key)
		}
		if err := setField(f, o.Val); err != nil {
			return nil, fmt.Errorf("flag -%s: %w", o.Key, err)
		}
	}
	if c.TFTPDir == "" {
		c.TFTPDir = filepath.Join(c.ImageDir, "tftp")
	}
	if c.AgentKey == "" {
		c.AgentKey = filepath.Join(filepath.Dir(c.Database), "agent_key")
	}
	if c.AuditKey == "" {
		c.AuditKey = filepath.Join(filepath.Dir(c.Database), "audit_key")
	}
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = Duration(time.Minute)
	}
	if c.SSHCAKey == "" {
		c.SSHCAKey = filepath.Join(filepath.Dir(c.Database), "ssh_ca_key")
	}
	if c.SecretKey == "" {
		c.SecretKey = filepath.Join(filepath.Dir(c.Database), "secret.key")
	}
	if c.RecordingsDir == "" {
		c.RecordingsDir = filepath.Join(filepath.Dir(c.Database), "recordings")
	}
	if c.CustomerURL == "" && c.CustomerListen != "" {
		scheme := "http"
		if c.CustomerTLSCert != "" {
			scheme = "https"
		}
		c.CustomerURL = scheme + "://" + c.CustomerListen
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if c.SSHCAHosts == "" {
		c.SSHCAHosts = DefaultCAHosts(c.ServerIP, c.RescueDomain)
		vlans, _ := c.VLANNets()
		for _, v := range vlans {
			c.SSHCAHosts += "," + DefaultCAHosts(v.ServerIP, "")
		}
	}
	return c, nil
}

// Relays parses dhcp_relays.
func (c *Config) Relays() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(c.DHCPRelays, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if a, err := netip.ParseAddr(f); err == nil && a.Is4() {
			out = append(out, netip.PrefixFrom(a, 32))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil || !p.Addr().Is4() {
			return nil, fmt.Errorf("dhcp_relays: %q is not an IPv4 address or prefix", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// VLANNet is a tagged boot network lifeboatd answers DHCP on.
type VLANNet struct {
	Tag       int
	Interface string
	ServerIP  netip.Addr // this server's address there
}

// VLANNets parses vlans.
func (c *Config) VLANNets() ([]VLANNet, error) {
	var out []VLANNet
	seen := map[int]bool{}
	for _, f := range strings.Split(c.VLANs, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		parts := strings.Split(f, ":")
		if len(parts) != 3 {
			return nil, fmt.Errorf("vlans: %q: want TAG:INTERFACE:ADDRESS, e.g. 120:eth1.120:10.9.120.1", f)
		}
		tag, err := strconv.Atoi(parts[0])
		if err != nil || tag < 1 || tag > 4094 || strconv.Itoa(tag) != parts[0] {
			return nil, fmt.Errorf("vlans: %q: the tag %q is not 1..4094", f, parts[0])
		}
		if seen[tag] {
			return nil, fmt.Errorf("vlans: VLAN %d is listed twice", tag)
		}
		seen[tag] = true
		if parts[1] == "" || parts[1] == c.Interface || strings.ContainsAny(parts[1], " /") {
			return nil, fmt.Errorf("vlans: %q: name the VLAN's own interface (not interface)", f)
		}
		ip, err := netip.ParseAddr(parts[2])
		if err != nil || !ip.Is4() || ip == c.ServerIP {
			return nil, fmt.Errorf("vlans: %q: %q is not this server's IPv4 address on that VLAN", f, parts[2])
		}
		out = append(out, VLANNet{Tag: tag, Interface: parts[1], ServerIP: ip})
	}
	return out, nil
}

// DefaultCAHosts is the @cert-authority pattern when ssh_ca_hosts is not
// set: the addresses of the boot network's /24 (where hosts in lifeboat
// are reached) and the rescue domain's names; never "*", which would have
// customers trust lifeboat's CA for their production hosts too.
func DefaultCAHosts(server netip.Addr, domain string) string {
	var pats []string
	if server.Is4() {
		b := server.As4()
		pats = append(pats, fmt.Sprintf("%d.%d.%d.*", b[0], b[1], b[2]))
	}
	if domain != "" {
		pats = append(pats, "*."+domain)
	}
	return strings.Join(pats, ",")
}

// Override is one configuration key set from the command line.
type Override struct{ Key, Val string }

// Keys lists every configuration key, nested ones as "unlock.max_tries",
// sorted: the flags lifeboatd takes.
func Keys() []string {
	return slices.Sorted(maps.Keys(configKeys(DefaultConfig())))
}

// configKeys maps every key, nested ones as "unlock.max_tries", to its
// field in c.
func configKeys(c *Config) map[string]reflect.Value {
	out := map[string]reflect.Value{}
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			f := v.Field(i)
			if f.Kind() == reflect.Struct && t.Field(i).Type.PkgPath() == "" {
				walk(prefix+name+".", f)
				continue
			}
			out[prefix+name] = f
		}
	}
	walk("", reflect.ValueOf(c).Elem())
	return out
}

// EnvName is a key's environment variable: unlock.max_tries is
// LIFEBOATD_UNLOCK_MAX_TRIES.
func EnvName(key string) string {
	return "LIFEBOATD_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// setField sets a field from its text form: strings as they are, ints as
// numbers, anything else (durations, addresses) as its JSON string form.
func setField(f reflect.Value, val string) error {
	switch f.Kind() {
	case reflect.String:
		f.SetString(val)
		return nil
	case reflect.Bool:
		b, err := strconv.ParseBool(val)
		if err != nil {
			return fmt.Errorf("%q: want true or false", val)
		}
		f.SetBool(b)
		return nil
	case reflect.Int:
		n, err := strconv.Atoi(val)
		if err != nil {
			return fmt.Errorf("%q: want a whole number", val)
		}
		f.SetInt(int64(n))
		return nil
	}
	q, _ := json.Marshal(val)
	if err := json.Unmarshal(q, f.Addr().Interface()); err != nil {
		return fmt.Errorf("%q: %v", val, err)
	}
	return nil
}

func (c *Config) check() error {
	var errs []error
	switch c.DHCPMode {
	case "":
		c.DHCPMode = "full"
	case "full", "proxy", "off":
	default:
		errs = append(errs, fmt.Errorf("dhcp_mode %q: want \"full\", \"proxy\" or \"off\"", c.DHCPMode))
	}
	if c.Interface == "" && c.DHCPMode != "off" {
		errs = append(errs, errors.New("interface: name the interface to answer DHCP on"))
	}
	if !c.ServerIP.Is4() {
		errs = append(errs, errors.New("server_ip: this server's IPv4 address on that interface is required"))
	}
	for _, p := range strings.Split(c.SSHCAHosts, ",") {
		if p = strings.TrimSpace(p); p == "*" || p == "*.*" || (c.SSHCAHosts != "" && p == "") || strings.ContainsAny(p, " \t\n") {
			errs = append(errs, fmt.Errorf("ssh_ca_hosts %q: %q would have customers' ssh trust lifeboat's CA for hosts it does not boot (their production hosts too); name the rescue addresses and names, e.g. \"10.77.0.*,*.rescue.example.net\"", c.SSHCAHosts, p))
			break
		}
	}
	if _, err := c.Relays(); err != nil {
		errs = append(errs, err)
	}
	vlans, err := c.VLANNets()
	if err != nil {
		errs = append(errs, err)
	}
	if c.FirstStagePool != "" {
		if _, err := dhcp.ParsePool(c.FirstStagePool, 0); err != nil {
			errs = append(errs, err)
		}
	} else if len(vlans) > 0 && c.DHCPMode == "full" {
		errs = append(errs, errors.New("first_stage_pool: hosts on vlans need untagged addresses for their firmware's PXE; give a range on interface, e.g. 10.9.0.200-10.9.0.239/24"))
	}
	if len(vlans) > 0 && c.DHCPMode != "full" {
		errs = append(errs, fmt.Errorf("vlans: a tagged host's untagged first stage needs dhcp_mode \"full\" (with %q the site would give it an address lifeboatd cannot tie to the host)", c.DHCPMode))
	}
	if c.RescueDomain != "" && !store.ValidName(c.RescueDomain) {
		errs = append(errs, fmt.Errorf("rescue_domain %q: want a DNS name, e.g. rescue.example.net", c.RescueDomain))
	}
	if c.HTTPPort <= 0 || c.HTTPPort > 65535 {
		errs = append(errs, fmt.Errorf("http_port %d: want 1..65535", c.HTTPPort))
	}
	if c.AgentPort <= 0 || c.AgentPort > 65535 || c.AgentPort == c.HTTPPort {
		errs = append(errs, fmt.Errorf("agent_port %d: want 1..65535, not http_port", c.AgentPort))
	}
	if u, err := url.Parse(c.AgentURL); c.AgentURL != "" && (err != nil || u.Scheme != "https" || u.Host == "") {
		errs = append(errs, fmt.Errorf("agent_url %q: want https://HOST:PORT (agents speak TLS only)", c.AgentURL))
	}
	if c.Database == "" {
		errs = append(errs, errors.New("database: path of the store is required"))
	}
	if (c.APITLSCert == "") != (c.APITLSKey == "") {
		errs = append(errs, errors.New("api_tls_cert and api_tls_key: set both, or neither"))
	}
	if (c.CustomerTLSCert == "") != (c.CustomerTLSKey == "") {
		errs = append(errs, errors.New("customer_tls_cert and customer_tls_key: set both, or neither"))
	}
	if c.CustomerListen != "" {
		ap, err := netip.ParseAddrPort(c.CustomerListen)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("customer_listen %q: want an address and port like 192.0.2.1:8443", c.CustomerListen))
		case !ap.Addr().IsLoopback() && c.CustomerTLSCert == "":
			errs = append(errs, fmt.Errorf("customer_listen %s is not a loopback address: set customer_tls_cert and customer_tls_key, or approval links would cross the network in the clear", c.CustomerListen))
		}
		if u, err := url.Parse(c.CustomerURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" {
			errs = append(errs, fmt.Errorf("customer_url %q: want a base URL like https://rescue.example.net", c.CustomerURL))
		}
	}
	if c.APIListen != "" {
		ap, err := netip.ParseAddrPort(c.APIListen)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("api_listen %q: want an address and port like 127.0.0.1:8081", c.APIListen))
		case !ap.Addr().IsLoopback() && c.APITLSCert == "":
			errs = append(errs, fmt.Errorf("api_listen %s is not a loopback address: set api_tls_cert and api_tls_key, or operator tokens would cross the network in the clear", c.APIListen))
		}
	}
	if strings.ContainsAny(c.KernelCmdline, "\n\r\x00") || strings.Contains(c.KernelCmdline, "||") ||
		strings.Contains(c.KernelCmdline, "&&") || strings.Contains(c.KernelCmdline, "${") {
		errs = append(errs, errors.New("kernel_cmdline: must be one line of kernel parameters, without iPXE operators (||, &&, ${...})"))
	}
	if strings.Contains(c.KernelCmdline, "lifeboat.token") {
		errs = append(errs, errors.New("kernel_cmdline: boot tokens never go on the command line"))
	}
	if d := time.Duration(c.HostCertTTL); d < 10*time.Minute || d > 24*time.Hour {
		errs = append(errs, fmt.Errorf("host_cert_ttl %s: want 10m..24h (a boot's certificate lasts hours, not days)", d))
	}
	if d := time.Duration(c.NoticeRetry); d < 100*time.Millisecond || d > time.Hour {
		errs = append(errs, fmt.Errorf("notice_retry %s: want 100ms..1h", d))
	}
	if c.Unlock.MaxTries < 1 {
		errs = append(errs, errors.New("unlock.max_tries must be at least 1"))
	}
	if c.SMTP.Host != "" {
		if err := c.smtp().Check(); err != nil {
			errs = append(errs, err)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// smtp returns the mail settings for the notice relay (nil: none).
func (c *Config) smtp() *notify.SMTP {
	if c.SMTP.Host == "" {
		return nil
	}
	m := c.SMTP
	return &notify.SMTP{Host: m.Host, Port: m.Port, From: m.From, Username: m.Username, PasswordFile: m.PasswordFile,
		RequireTLS: m.RequireTLS, CAFile: m.CAFile}
}
