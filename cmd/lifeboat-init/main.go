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
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/lifeboat-boot/lifeboat/initramfs/agent"
	"github.com/lifeboat-boot/lifeboat/initramfs/sshd"
	"github.com/lifeboat-boot/lifeboat/pxe/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/audit"
	"github.com/lifeboat-boot/lifeboat/unlock"
	"github.com/lifeboat-boot/lifeboat/unlock/handoff"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(ctx, log); err != nil {
		fmt.Printf("lifeboat: FATAL: %v\n", err)
		fmt.Printf("lifeboat: rebooting in 60 seconds so that the host can try again\n")
		time.Sleep(60 * time.Second)
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger) error {
	// Keep room for a 1 GiB argon2id derivation: let the GC work harder
	// rather than grow the heap past what the RAM image can spare.
	debug.SetMemoryLimit(unlock.MemAvailable() / 10 * 8) // divide first: the fallback is 1<<62
	if _, err := unlock.UseHugePages(unlock.THPPath); err != nil {
		log.Warn("key derivation will be slower", "err", err)
	}
	start := time.Now()
	n, errs := agent.LoadModules(agent.ModulesFile, log)
	for _, e := range errs {
		log.Warn("module not loaded", "err", e)
	}
	log.Info("modules loaded", "count", n, "took", time.Since(start).Round(time.Millisecond).String())

	p, err := agent.ReadBootParams("/" + agentapi.BootFile)
	if err != nil {
		return err
	}
	log = log.With("host", p.Host, "boot", p.Boot)
	ip, err := agent.Network(ctx, p.MAC, log)
	if err != nil {
		return err
	}
	key, err := agent.HostKey()
	if err != nil {
		return err
	}
	a, err := agent.Checkin(ctx, p, key.PublicKey(), ip, log)
	if err != nil {
		return err
	}
	served, err := agent.CertifiedHostKey(key, a.Config.HostCertificate)
	if err != nil {
		return err
	}
	var authorized []ssh.PublicKey
	for _, k := range a.Config.AuthorizedKeys {
		pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k))
		if err != nil {
			log.Warn("skipping unparsable authorised key", "err", err)
			continue
		}
		authorized = append(authorized, pk)
	}
	limiter := &unlock.Limiter{MaxTries: a.Config.Unlock.MaxTries, Lockout: a.Config.Unlock.Lockout}
	if limiter.MaxTries == 0 {
		limiter.MaxTries, limiter.Lockout = 5, 5*time.Minute
	}
	unsealer := &unlock.Unsealer{}
	var disksReady <-chan struct{} // set once SSH listens
	srv := &sshd.Server{
		HostKey: served, Authorized: authorized, Log: log,
		OnLogin: func(ctx context.Context, user, fp, remote string) error {
			return a.Report(ctx, audit.SSHLogin, fp, map[string]string{"user": user, "remote": remote})
		},
		Session: func(ctx context.Context, rw io.ReadWriter, pty bool, actor string) int {
			report := func(ctx context.Context, code audit.Code, d map[string]string) error {
				return a.Report(ctx, code, actor, d)
			}
			s := &unlock.Session{
				Host: p.Host, Boot: p.Boot, Unsealer: unsealer, Limiter: limiter, Report: report,
				Volumes:    func() ([]unlock.Volume, error) { return unlock.Scan("/sys/class/block", "/dev") },
				DisksReady: disksReady,
				Handoff:    handoff.Start(filepath.Join(os.TempDir(), "lifeboat-mnt"), report),
			}
			code := s.Run(ctx, rw, pty)
			if jump := s.Jump(); jump != nil {
				// Jump once the client has closed the connection, that
				// is, once it has every byte and the exit status (or after
				// 10 s if it hangs): the kexec stops the network stack,
				// and output still queued in it would be lost.
				go func() {
					select {
					case <-ctx.Done():
					case <-time.After(10 * time.Second):
					}
					jump()
				}()
			}
			return code
		},
	}
	ln, err := net.Listen("tcp", ":22")
	if err != nil {
		return err
	}
	// The disks' drivers load while the customer logs in and types.
	disksReady = agent.StorageDrivers(agent.StorageModulesFile, log)
	fmt.Printf("lifeboat: %s (boot %s) is ready for unlock: ssh root@%s\n", p.Host, p.Boot, ip)
	fmt.Printf("lifeboat: host key %s (made in RAM for this boot", ssh.FingerprintSHA256(key.PublicKey()))
	if a.Config.HostCertificate != "" {
		fmt.Print(", certified by the provider's SSH CA")
	}
	fmt.Println(")")
	log.Info("ssh ready", "since_start", time.Since(start).Round(time.Millisecond).String())
	return srv.Serve(ctx, ln)
}
