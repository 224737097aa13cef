package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-boot/lifeboat/initramfs/agent"
	"github.com/lifeboat-boot/lifeboat/initramfs/consoles"
	"github.com/lifeboat-boot/lifeboat/initramfs/rescue"
	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/unlock"
	"github.com/lifeboat-boot/lifeboat/unlock/handoff"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	// Every console the machine has: VGA, the command line's serial
	// port, and the one the firmware's SPCR table names (what IPMI
	// serial-over-LAN shows).
	cons := consoles.All(consoles.ActivePath, consoles.SPCRPath, consoles.SysTTY)
	out := consoles.Open(cons)
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	log.Info("consoles", "devices", strings.Join(consoles.Paths(cons), ","))
	if err := run(ctx, log, out, consoles.Paths(cons)); err != nil {
		fmt.Fprintf(out, "lifeboat: FATAL: %v\n", err)
		fmt.Fprintf(out, "lifeboat: rebooting in 60 seconds so that the host can try again\n")
		time.Sleep(60 * time.Second)
		reboot()
		os.Exit(1)
	}
}

func reboot() {
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}

// run brings the RAM image up to the SSH server: drivers, boot parameters,
// network, host key, check-in; agent.Boot does the rest.
func run(ctx context.Context, log *slog.Logger, out io.Writer, consoleDevs []string) error {
	// Keep room for a 1 GiB argon2id derivation: let the GC work harder
	// rather than grow the heap past what the RAM image can spare.
	debug.SetMemoryLimit(unlock.MemAvailable() / 10 * 8) // divide first: the fallback is 1<<62
	if _, err := unlock.UseHugePages(unlock.THPPath); err != nil {
		log.Warn("key derivation will be slower", "err", err)
	}
	start := time.Now()
	drivers, err := agent.NewDrivers(log)
	if err != nil {
		return err
	}
	drivers.Console = out
	drivers.Network()
	p, err := agent.ReadBootParams("/" + agentapi.BootFile)
	if err != nil {
		return err
	}
	log = log.With("host", p.Host, "boot", p.Boot)
	if p.VLAN != 0 {
		// No device asks for it: the boot network does.
		if err := drivers.Loader.Load("8021q"); err != nil {
			log.Warn("module not loaded", "module", "8021q", "err", err)
		}
	}
	ip, err := agent.Network(ctx, p.MAC, p.VLAN, log)
	if err != nil {
		return err
	}
	key, err := agent.HostKey()
	if err != nil {
		return err
	}
	agent.MountTrustFS("/sys")
	trust := agent.ReadTrust("/sys")
	log.Info("how this boot started", "firmware", trust.Firmware, "secure_boot", trust.SecureBoot, "lockdown", trust.Lockdown)
	a, err := agent.Checkin(ctx, p, key.PublicKey(), ip, trust, log)
	if err != nil {
		return err
	}
	go a.KeepAlive(ctx)
	b := &agent.Boot{Agent: a, IP: ip, Console: out, Log: log, Reboot: reboot,
		Volumes: func() ([]unlock.Volume, error) { return unlock.Scan("/sys/class/block", "/dev") },
		Handoff: func(r unlock.Reporter, shown func() *unlock.BootRecord) unlock.Handoff {
			return handoff.Start(filepath.Join(os.TempDir(), "lifeboat-mnt"), r, shown)
		},
		Look: func(ctx context.Context) (*unlock.BootRecord, error) {
			return handoff.Look(ctx, filepath.Join(os.TempDir(), "lifeboat-look"))
		},
		InPlace:  rescue.OpenInPlace,
		FindRoot: func() (*rescue.Root, error) { return rescue.FindRoot(filepath.Join(os.TempDir(), "lifeboat-root")) },
		Consoles: consoleDevs,
		Quiesce: func() {
			a.Quiet()
			if err := agent.QuietNetwork(); err != nil {
				log.Warn("network not taken down before the jump", "err", err)
			}
		},
	}
	ln, err := net.Listen("tcp", ":22")
	if err != nil {
		return err
	}
	// The disks' drivers load while the customer logs in and types.
	disks := drivers.Storage(ctx, time.Second, 20*time.Second)
	srv, err := b.Server(ctx, key, disks)
	if err != nil {
		return err
	}
	log.Info("ssh listening", "since_start", time.Since(start).Round(time.Millisecond).String())
	go b.Announce(ctx, key.PublicKey(), time.Minute)
	go func() {
		select {
		case <-disks:
		case <-ctx.Done():
			return
		}
		a.SendHardware(ctx, drivers.Hardware(p.MAC))
	}()
	return srv.Serve(ctx, ln)
}
