package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/lifeboat-boot/lifeboat/initramfs/agent"
	"github.com/lifeboat-boot/lifeboat/initramfs/rescue"
	"github.com/lifeboat-boot/lifeboat/initramfs/sshd"
	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
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
		OnLogin: func(ctx context.Context, role, user, fp, remote string) error {
			return a.Report(ctx, audit.SSHLogin, fp, map[string]string{"user": user, "remote": remote, "role": role})
		},
		OnRefused: refusals(a, log),
	}
	var staff *rescue.Staff
	if a.Config.Mode == "rescue" {
		if staff, err = rescueSession(ctx, a, srv, func() <-chan struct{} { return disksReady }, log); err != nil {
			return err
		}
	}
	srv.Session = func(ctx context.Context, q *sshd.Request) int {
		if q.Role == sshd.RoleStaff {
			return staff.Run(ctx, q)
		}
		if q.Command != "" && q.Command != "unlock" {
			fmt.Fprintf(q.Stderr, "lifeboat: unknown command %q; the only command here is \"unlock\"\n", q.Command)
			return 127
		}
		report := func(ctx context.Context, code audit.Code, d map[string]string) error {
			return a.Report(ctx, code, q.Actor, d)
		}
		// In a rescue boot the volumes open in place, for the grant's
		// work; otherwise the host's own OS takes over.
		h := handoff.Start(filepath.Join(os.TempDir(), "lifeboat-mnt"), report)
		if staff != nil {
			h = rescue.OpenInPlace(staff.Grant)
		}
		s := &unlock.Session{
			Host: p.Host, Boot: p.Boot, Unsealer: unsealer, Limiter: limiter, Report: report,
			Volumes:    func() ([]unlock.Volume, error) { return unlock.Scan("/sys/class/block", "/dev") },
			DisksReady: disksReady,
			Handoff:    h,
		}
		code := s.Run(ctx, q.RW, q.PTY)
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
	}
	ln, err := net.Listen("tcp", ":22")
	if err != nil {
		return err
	}
	// The disks' drivers load while the customer logs in and types.
	disksReady = agent.StorageDrivers(agent.StorageModulesFile, log)
	if staff != nil {
		g := staff.Grant
		fmt.Printf("lifeboat: %s (boot %s) is in RESCUE under grant %s (%s) for %s, ticket %s, until %s: ssh root@%s\n",
			p.Host, p.Boot, g.ID, g.Scope, g.Staff, g.Ticket, g.Until.UTC().Format(time.RFC3339), ip)
	} else {
		fmt.Printf("lifeboat: %s (boot %s) is ready for unlock: ssh root@%s\n", p.Host, p.Boot, ip)
	}
	fmt.Printf("lifeboat: host key %s (made in RAM for this boot", ssh.FingerprintSHA256(key.PublicKey()))
	if a.Config.HostCertificate != "" {
		fmt.Print(", certified by the provider's SSH CA")
	}
	fmt.Println(")")
	log.Info("ssh ready", "since_start", time.Since(start).Round(time.Millisecond).String())
	return srv.Serve(ctx, ln)
}

// rescueSession sets up a rescue boot: the grant's staff key is let in
// until the grant ends, and at its end the session is recorded as over and
// the host reboots (into its default mode: the server has ended the grant).
func rescueSession(ctx context.Context, a *agent.Agent, srv *sshd.Server, disksReady func() <-chan struct{}, log *slog.Logger) (*rescue.Staff, error) {
	g := a.Config.Grant
	if g == nil {
		fmt.Println("lifeboat: this rescue boot's grant ended before the host checked in; rebooting into the host's default mode")
		return nil, errors.New("rescue boot without a live grant")
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(g.StaffKey))
	if err != nil {
		return nil, fmt.Errorf("rescue grant %s: staff key: %w", g.ID, err)
	}
	guard := &rescue.Guard{Left: g.Left, Poll: func(ctx context.Context) (string, error) {
		st, err := a.Client.Grant(ctx, a.Config.ReportToken, g.ID)
		if err != nil {
			return "", err
		}
		return st.State, nil
	}}
	done := make(chan struct{})
	srv.Staff, srv.StaffDone = key, done
	staff := &rescue.Staff{Host: a.Config.Host, Grant: g, Guard: guard,
		Report: func(ctx context.Context, code audit.Code, d map[string]string) error {
			return a.Report(ctx, code, ssh.FingerprintSHA256(key), d)
		},
		FindRoot: func() (*rescue.Root, error) {
			// The disks' drivers load in the background once SSH is up.
			select {
			case <-disksReady():
			case <-time.After(2 * time.Minute):
				return nil, errors.New("the disk drivers are still loading after 2 minutes")
			}
			return rescue.FindRoot(filepath.Join(os.TempDir(), "lifeboat-root"))
		},
		Sink: func(name string) rescue.Sink {
			return func(ctx context.Context, off int64, data []byte) error {
				return a.Client.Record(ctx, a.Config.ReportToken, name, off, data)
			}
		},
	}
	gctx, endGrant := context.WithCancel(ctx)
	if g.Scope == "console" {
		c := &rescue.Console{Host: a.Config.Host, Grant: g, Staff: staff, Devices: rescue.ActiveConsoles("/sys/class/tty/console/active")}
		go c.Run(gctx)
	}
	go func() {
		why := guard.Wait(ctx)
		if why == "" {
			endGrant()
			return
		}
		endGrant()  // the console shell, if any, is killed
		close(done) // staff connections close; the key is refused from now on
		fmt.Printf("lifeboat: the rescue session of grant %s is over: %s. Rebooting.\n", g.ID, why)
		rctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := a.Report(rctx, audit.RescueEnd, "agent", map[string]string{"grant": g.ID, "reason": why}); err != nil {
			log.Error("rescue end not recorded", "err", err)
		}
		cancel()
		time.Sleep(2 * time.Second) // let the staff member's client read its last lines
		unix.Sync()
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	}()
	return staff, nil
}

// refusals reports keys that were turned away, at most 20 per boot: enough
// to see who tried, too few for a scanner to flood the log.
func refusals(a *agent.Agent, log *slog.Logger) func([]string, string) {
	var n atomic.Int32
	return func(fps []string, remote string) {
		if n.Add(1) > 20 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Report(ctx, audit.SSHRefused, "", map[string]string{"keys": strings.Join(fps, ","), "remote": remote}); err != nil {
			log.Warn("refused login not recorded", "err", err)
		}
	}
}
