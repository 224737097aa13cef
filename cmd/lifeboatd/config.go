package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
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

// Config is lifeboatd's configuration file (JSON).
type Config struct {
	Interface     string     `json:"interface"`      // where DHCP is answered
	DHCPMode      string     `json:"dhcp_mode"`      // "full" (addresses from reservations) or "proxy" (boot information only)
	ServerIP      netip.Addr `json:"server_ip"`      // this server's address on that segment
	HTTPPort      int        `json:"http_port"`      // boot listener port
	TFTPDir       string     `json:"tftp_dir"`       // folder with undionly.kpxe, ipxe.efi, snponly.efi (default image_dir/tftp)
	BIOSLoader    string     `json:"bios_loader"`    // first stage for BIOS PXE
	UEFILoader    string     `json:"uefi_loader"`    // first stage for UEFI PXE
	ImageDir      string     `json:"image_dir"`      // output of 'make image'
	KernelCmdline string     `json:"kernel_cmdline"` // for the RAM image
	Inventory     string     `json:"inventory"`      // hosts file
	EventLog      string     `json:"event_log"`      // append-only JSON lines
	TokenTTL      Duration   `json:"token_ttl"`
	LeaseTime     Duration   `json:"lease_time"`
	Unlock        struct {
		MaxTries int      `json:"max_tries"`
		Lockout  Duration `json:"lockout"`
	} `json:"unlock"`
	LogLevel string `json:"log_level"` // debug, info, warn, error
}

func loadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c := &Config{
		HTTPPort: 8080, BIOSLoader: "undionly.kpxe", UEFILoader: "ipxe.efi",
		ImageDir: "build/image", KernelCmdline: "console=tty0 console=ttyS0,115200 panic=30",
		TokenTTL: Duration(10 * time.Minute), LeaseTime: Duration(time.Hour), LogLevel: "info",
	}
	c.Unlock.MaxTries, c.Unlock.Lockout = 5, Duration(5*time.Minute)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if c.TFTPDir == "" {
		c.TFTPDir = filepath.Join(c.ImageDir, "tftp")
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

func (c *Config) check() error {
	var errs []error
	if c.Interface == "" {
		errs = append(errs, errors.New("interface: name the interface to answer DHCP on"))
	}
	switch c.DHCPMode {
	case "":
		c.DHCPMode = "full"
	case "full", "proxy":
	default:
		errs = append(errs, fmt.Errorf("dhcp_mode %q: want \"full\" or \"proxy\"", c.DHCPMode))
	}
	if !c.ServerIP.Is4() {
		errs = append(errs, errors.New("server_ip: this server's IPv4 address on that interface is required"))
	}
	if c.HTTPPort <= 0 || c.HTTPPort > 65535 {
		errs = append(errs, fmt.Errorf("http_port %d: want 1..65535", c.HTTPPort))
	}
	if c.Inventory == "" {
		errs = append(errs, errors.New("inventory: path of the hosts file is required"))
	}
	if c.EventLog == "" {
		errs = append(errs, errors.New("event_log: path of the event log is required"))
	}
	if strings.ContainsAny(c.KernelCmdline, "\n\r\x00") || strings.Contains(c.KernelCmdline, "||") ||
		strings.Contains(c.KernelCmdline, "&&") || strings.Contains(c.KernelCmdline, "${") {
		errs = append(errs, errors.New("kernel_cmdline: must be one line of kernel parameters, without iPXE operators (||, &&, ${...})"))
	}
	if strings.Contains(c.KernelCmdline, "lifeboat.token") {
		errs = append(errs, errors.New("kernel_cmdline: boot tokens never go on the command line"))
	}
	if c.Unlock.MaxTries < 1 {
		errs = append(errs, errors.New("unlock.max_tries must be at least 1"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}
