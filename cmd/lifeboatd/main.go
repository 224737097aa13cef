package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lifeboat-boot/lifeboat/pxe/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/dhcp"
	"github.com/lifeboat-boot/lifeboat/pxe/httpboot"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/tftp"
)

var version = "dev"

func main() {
	configPath := flag.String("config", "/etc/lifeboat/lifeboatd.json", "configuration file")
	check := flag.Bool("check-config", false, "check the configuration and inventory, then exit")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println("lifeboatd", version)
		return
	}
	cfg, err := loadConfig(*configPath)
	if err == nil && *check {
		_, err = store.LoadInventory(cfg.Inventory)
		if err == nil {
			fmt.Println("configuration OK")
			return
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "lifeboatd: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "lifeboatd: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg *Config) error {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	inv, err := store.LoadInventory(cfg.Inventory)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.EventLog), 0o750); err != nil {
		return err
	}
	events, err := store.OpenEventLog(cfg.EventLog)
	if err != nil {
		return err
	}
	defer events.Close()
	boots := store.NewBoots()
	base := fmt.Sprintf("http://%s", netip.AddrPortFrom(cfg.ServerIP, uint16(cfg.HTTPPort)))

	hb := &httpboot.Server{
		BaseURL: base, Inventory: inv, Boots: boots, Events: events, Log: log,
		Image:    httpboot.Image{Dir: cfg.ImageDir, Kernel: "vmlinuz", Initramfs: "initramfs.cpio", Cmdline: cfg.KernelCmdline},
		TokenTTL: time.Duration(cfg.TokenTTL),
		Unlock:   agentapi.UnlockPolicy{MaxTries: cfg.Unlock.MaxTries, Lockout: time.Duration(cfg.Unlock.Lockout)},
	}
	handler, err := hb.Handler()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp4", netip.AddrPortFrom(cfg.ServerIP, uint16(cfg.HTTPPort)).String())
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}

	ts := &tftp.Server{
		Addr: netip.AddrPortFrom(cfg.ServerIP, 69).String(), Dir: cfg.TFTPDir,
		Files: []string{cfg.BIOSLoader, cfg.UEFILoader}, Log: log,
		OnSent: func(peer net.UDPAddr, file string, n int64, took time.Duration) {
			ip, _ := netip.AddrFromSlice(peer.IP)
			h, ok := inv.LookupIP(ip.Unmap())
			if !ok {
				return
			}
			ev := audit.Event{Code: audit.FirstStageFetch, MAC: h.MAC, Host: h.Name, Actor: "system",
				Details: map[string]string{"file": file, "bytes": fmt.Sprint(n), "took": took.String()}}
			if b, ok := boots.Current(h.MAC); ok {
				ev.Boot = b.ID
				boots.Advance(h.MAC, b.ID, store.StageFirstStage)
			}
			if err := events.Emit(ctx, ev); err != nil {
				log.Error("event log failed", "err", err)
			}
		},
	}
	if err := ts.Listen(); err != nil {
		ln.Close()
		return err
	}

	ds := &dhcp.Server{
		Iface: cfg.Interface, Inventory: inv, Boots: boots, Events: events, Log: log,
		Self: dhcp.Self{
			IP:        cfg.ServerIP,
			ScriptURL: func(mac net.HardwareAddr) string { return base + "/boot/" + mac.String() + ".ipxe" },
			LoaderURL: func(name string) string { return base + "/loaders/" + name },
			Loaders:   dhcp.Loaders{BIOS: cfg.BIOSLoader, UEFI: cfg.UEFILoader},
			Lease:     time.Duration(cfg.LeaseTime),
			Proxy:     cfg.DHCPMode == "proxy",
		},
	}

	if err := ds.Listen(); err != nil {
		ln.Close()
		return err
	}

	log.Info("lifeboatd starting", "version", version, "iface", cfg.Interface, "server", base)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ds.Serve(gctx) })
	g.Go(func() error { return ts.Serve(gctx) })
	g.Go(func() error { return httpboot.Serve(gctx, ln, handler, log) })
	err = g.Wait()
	log.Info("lifeboatd stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
