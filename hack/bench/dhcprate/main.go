// Command dhcprate measures lifeboatd's DHCP exchange rate in full mode with
// perfdhcp (from Debian's kea-admin): lifeboatd in one network namespace,
// perfdhcp in another, joined by a veth pair, an inventory holding every
// MAC perfdhcp will use. It prints perfdhcp's report. A benchmark, not a
// test: nothing here asserts a time.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func main() {
	clients := flag.Int("clients", 1000, "distinct clients (inventory size)")
	rate := flag.Int("rate", 500, "exchanges per second to offer")
	secs := flag.Int("seconds", 10, "test length")
	flag.Parse()
	if err := run(*clients, *rate, *secs); err != nil {
		fmt.Fprintf(os.Stderr, "dhcprate: %v\n", err)
		os.Exit(1)
	}
}

func run(clients, rate, secs int) error {
	if _, err := exec.LookPath("perfdhcp"); err != nil {
		return fmt.Errorf("perfdhcp not found: apt-get install kea-admin")
	}
	root, _ := os.Getwd()
	dir, err := os.MkdirTemp("", "dhcprate")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, cli := fmt.Sprintf("lbb-s%d", os.Getpid()), fmt.Sprintf("lbb-c%d", os.Getpid())
	defer exec.Command("ip", "netns", "del", srv).Run()
	defer exec.Command("ip", "netns", "del", cli).Run()
	for _, c := range [][]string{
		{"ip", "netns", "add", srv}, {"ip", "netns", "add", cli},
		{"ip", "-n", srv, "link", "add", "vs", "type", "veth", "peer", "name", "vc", "netns", cli},
		{"ip", "-n", srv, "addr", "add", "10.88.0.1/16", "dev", "vs"},
		{"ip", "-n", srv, "link", "set", "vs", "up"}, {"ip", "-n", cli, "link", "set", "vc", "up"},
		// perfdhcp acts as a relay agent: it needs an address (its giaddr).
		{"ip", "-n", cli, "addr", "add", "10.88.255.254/16", "dev", "vc"},
	} {
		if err := sh(c...); err != nil {
			return err
		}
	}
	// perfdhcp varies the low bytes of its base MAC 00:0c:01:02:03:04 over
	// the number of clients; reserve an address for each.
	type host struct {
		Name           string   `json:"name"`
		MAC            string   `json:"mac"`
		IP             string   `json:"ip"`
		Prefix         int      `json:"prefix"`
		AuthorizedKeys []string `json:"authorized_keys"`
	}
	var inv struct {
		Hosts []host `json:"hosts"`
	}
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bench"
	base := net.HardwareAddr{0x00, 0x0c, 0x01, 0x02, 0x03, 0x04}
	for i := 0; i < clients+256; i++ {
		m := make(net.HardwareAddr, 6)
		copy(m, base)
		v := uint32(base[3])<<16 | uint32(base[4])<<8 | uint32(base[5])
		v += uint32(i)
		m[3], m[4], m[5] = byte(v>>16), byte(v>>8), byte(v)
		inv.Hosts = append(inv.Hosts, host{fmt.Sprintf("h%d", i), m.String(), fmt.Sprintf("10.88.%d.%d", 1+i/250, 1+i%250), 16, []string{key}})
	}
	b, _ := json.Marshal(inv)
	_ = os.WriteFile(filepath.Join(dir, "hosts.json"), b, 0o600)
	cfg, _ := json.Marshal(map[string]any{"interface": "vs", "server_ip": "10.88.0.1", "image_dir": filepath.Join(root, "build", "image"),
		"inventory": filepath.Join(dir, "hosts.json"), "database": filepath.Join(dir, "lifeboat.db"), "api_listen": "", "log_level": "warn"})
	_ = os.WriteFile(filepath.Join(dir, "lifeboatd.json"), cfg, 0o600)
	bin := filepath.Join(dir, "lifeboatd")
	if err := sh("go", "build", "-o", bin, "./cmd/lifeboatd"); err != nil {
		return err
	}
	var slog bytes.Buffer
	d := exec.Command("ip", "netns", "exec", srv, bin, "-config", filepath.Join(dir, "lifeboatd.json"))
	d.Stdout, d.Stderr = &slog, &slog
	if err := d.Start(); err != nil {
		return err
	}
	defer func() { _ = d.Process.Signal(syscall.SIGTERM); _ = d.Wait() }()
	// Ready once the DHCP socket is bound (the inventory is imported into
	// the store first, which takes a moment for a thousand hosts).
	start := time.Now()
	for {
		out, _ := exec.Command("ip", "netns", "exec", srv, "ss", "-Hlun", "sport = :67").Output()
		if len(bytes.TrimSpace(out)) > 0 {
			break
		}
		if time.Since(start) > time.Minute {
			return fmt.Errorf("lifeboatd did not start:\n%s", slog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("lifeboatd ready in %s (%d hosts imported into the store)\n", time.Since(start).Round(10*time.Millisecond), clients+256)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+30)*time.Second)
	defer cancel()
	p := exec.CommandContext(ctx, "ip", "netns", "exec", cli, "perfdhcp", "-4", "-l", "vc", "-r", fmt.Sprint(rate),
		"-R", fmt.Sprint(clients), "-p", fmt.Sprint(secs))
	out, err := p.CombinedOutput()
	fmt.Printf("lifeboatd full mode, %d reservations, offered %d DORA/s for %d s:\n%s", len(inv.Hosts), rate, secs, out)
	if err != nil {
		// perfdhcp exits 3 when packets were lost: a result, not a failure.
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
			return fmt.Errorf("perfdhcp: %w\nlifeboatd log:\n%s", err, slog.String())
		}
	}
	if strings.Contains(slog.String(), "unknown MAC") {
		fmt.Println("note: some perfdhcp MACs were not in the inventory")
	}
	return nil
}
