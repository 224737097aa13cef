package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/term"

	"github.com/lifeboat-boot/lifeboat/pxe/keys/authkeys"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/initramfs/rescue"
	"github.com/lifeboat-boot/lifeboat/initramfs/sshd"
	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/store/kind"
	"github.com/lifeboat-boot/lifeboat/unlock"
)

// Boot is the RAM image once the agent has checked in: the SSH server,
// what each of its sessions runs, a rescue grant's session and its end,
// and when the host leaves lifeboat. What touches the machine (the jump
// into the OS, the restart, the disks) is injected, so that the flow is
// tested without a VM.
type Boot struct {
	Agent   *Agent
	IP      net.IP    // this boot's address, for the console's banner
	Console io.Writer // the host's console (stdout in the RAM image)
	Log     *slog.Logger

	// Volumes lists the LUKS volumes (unlock.Scan of /sys/class/block).
	Volumes func() ([]unlock.Volume, error)
	// Handoff returns what a customer's unlock does in an ordinary boot:
	// prepare the host's own OS and return the jump into it (kexec;
	// handoff.Start). report records as the session's key; shown returns
	// what Look showed the customer, which must be what is booted.
	Handoff func(report unlock.Reporter, shown func() *unlock.BootRecord) unlock.Handoff
	// Look finds what an unlock would boot (handoff.Look), to compare with
	// the last unlock's before the passphrase; nil skips it.
	Look func(ctx context.Context) (*unlock.BootRecord, error)
	// InPlace returns what an unlock does in a rescue boot: open the
	// volumes for the grant's work (rescue.OpenInPlace).
	InPlace func(g *agentapi.RescueGrant) unlock.Handoff
	// FindRoot finds the installed system for a password reset.
	FindRoot func() (*rescue.Root, error)
	// Consoles are the host's consoles, for a console grant.
	Consoles []string
	// Reboot syncs the disks and restarts the machine.
	Reboot func()
	// Quiesce, if set, runs just before the jump into the OS: nothing of
	// lifeboat's may still be on the network then (Agent.Quiet and
	// QuietNetwork in the RAM image).
	Quiesce func()

	// JumpWait bounds how long a finished unlock session's client may
	// take to close the connection before the jump (default 10 s); the
	// jump stops the network stack, and output still queued would be lost.
	JumpWait time.Duration
	// RebootWait lets a staff member's client read its last lines after
	// a rescue session ends, before the restart (default 2 s).
	RebootWait time.Duration
	// GrantPoll is how often a rescue boot asks the server for its
	// grant's state (default 3 s).
	GrantPoll time.Duration

	limiter  *unlock.Limiter
	unsealer *unlock.Unsealer
	staff    *rescue.Staff
	disks    <-chan struct{}
	ended    chan string // why the rescue session ended, once
}

// Server builds the SSH server for this boot: the customer's keys, the
// records of logins and refusals, and in a rescue boot the grant's staff
// key until the grant ends. disks is closed once the storage drivers have
// loaded. A rescue boot whose grant ended before check-in is an error: the
// host reboots into its own mode.
func (b *Boot) Server(ctx context.Context, hostKey ssh.Signer, disks <-chan struct{}) (*sshd.Server, error) {
	cfg := b.Agent.Config
	served, err := sshd.CertifiedHostKey(hostKey, cfg.HostCertificate)
	if err != nil {
		return nil, err
	}
	var authorized []authkeys.Key
	for _, k := range cfg.AuthorizedKeys {
		ak, err := authkeys.Parse(k)
		if err != nil {
			// Refused, not let in without its options.
			b.Log.Warn("authorised key not let in", "err", err)
			continue
		}
		authorized = append(authorized, ak)
	}
	b.limiter = &unlock.Limiter{MaxTries: cfg.Unlock.MaxTries, Lockout: cfg.Unlock.Lockout}
	if b.limiter.MaxTries == 0 {
		b.limiter.MaxTries, b.limiter.Lockout = 5, 5*time.Minute
	}
	b.unsealer = &unlock.Unsealer{}
	b.disks = disks
	b.ended = make(chan string, 1)
	srv := &sshd.Server{
		HostKey: served, Authorized: authorized, Log: b.Log,
		OnLogin: func(ctx context.Context, role, user, fp, remote string) error {
			return b.Agent.Report(ctx, audit.SSHLogin, fp, map[string]string{"user": user, "remote": remote, "role": role})
		},
		OnRefused: b.refusals(),
		OnCapped: func(n int, first string) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := b.Agent.Report(ctx, audit.SSHRefused, "", map[string]string{"reason": audit.ReasonConnectionLimit,
				"connections": fmt.Sprint(n), "remote": first}); err != nil {
				b.Log.Warn("refused connections not recorded", "err", err)
			}
		},
		Session: b.Session,
	}
	if cfg.Mode == "rescue" {
		if err := b.rescue(ctx, srv); err != nil {
			return nil, err
		}
	}
	return srv, nil
}

// Announce tells the console when the host is ready: at once that SSH is
// up and the disk drivers are loading, then the banner once the disks are
// listed (or after wait, with a word that they are still loading), so that
// "ready for unlock" means a login gets the prompt without waiting.
func (b *Boot) Announce(ctx context.Context, hostKey ssh.PublicKey, wait time.Duration) {
	fmt.Fprintf(b.Console, "lifeboat: %s: SSH is up; loading the disk drivers before the unlock prompt...\n", b.Agent.Params.Host)
	start := time.Now()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-b.disks:
		b.Log.Info("disks ready", "took", time.Since(start).Round(time.Millisecond).String())
	case <-t.C:
		fmt.Fprintf(b.Console, "lifeboat: the disk drivers are still loading after %s; a login waits for them\n", unlock.Duration(wait))
	case <-ctx.Done():
		return
	}
	fmt.Fprint(b.Console, b.Banner(hostKey))
}

// Banner is what the console says once the host is ready.
func (b *Boot) Banner(hostKey ssh.PublicKey) string {
	p, cfg := b.Agent.Params, b.Agent.Config
	var s strings.Builder
	if b.staff != nil {
		g := b.staff.Grant
		fmt.Fprintf(&s, "lifeboat: %s (boot %s) is in RESCUE under grant %s (%s) for %s, ticket %s, until %s: ssh root@%s\n",
			p.Host, p.Boot, g.ID, g.Scope, g.Staff, g.Ticket, g.Until.UTC().Format(time.RFC3339), b.IP)
	} else {
		fmt.Fprintf(&s, "lifeboat: %s (boot %s) is ready for unlock: ssh root@%s\n", p.Host, p.Boot, b.IP)
	}
	fmt.Fprintf(&s, "lifeboat: host key %s (made in RAM for this boot", ssh.FingerprintSHA256(hostKey))
	if cfg.HostCertificate != "" {
		s.WriteString(", certified by the provider's SSH CA")
	}
	s.WriteString(")\n")
	return s.String()
}

// Session is the SSH server's handler: the grant's staff member gets the
// rescue commands of its scope; a customer gets the unlock dialog, whose
// success either hands the host over to its OS once the session has
// closed or, in a rescue boot, opens the volumes in place.
func (b *Boot) Session(ctx context.Context, q *sshd.Request) int {
	if q.Role == sshd.RoleStaff {
		if b.staff == nil {
			fmt.Fprintln(q.Stderr, "lifeboat: this boot has no rescue grant")
			return 126
		}
		return b.staff.Run(ctx, q)
	}
	args := strings.Fields(q.Command)
	if len(args) > 0 && args[0] != "unlock" {
		fmt.Fprintf(q.Stderr, "lifeboat: unknown command %q; the only command here is \"unlock\"\n", term.Clean(q.Command))
		return 127
	}
	var opts unlock.Options
	if len(args) > 1 {
		var err error
		if opts, err = unlock.ParseOptions(args[1:]); err != nil {
			fmt.Fprintf(q.Stderr, "lifeboat: %v\n", err)
			return unlock.ExitUsage
		}
	}
	report := func(ctx context.Context, code audit.Code, d map[string]string) error {
		return b.Agent.Report(ctx, code, q.Actor, d)
	}
	var shown *unlock.BootRecord
	p := b.Agent.Params
	s := &unlock.Session{
		Host: p.Host, Boot: p.Boot, Unsealer: b.unsealer, Limiter: b.limiter, Report: report,
		Volumes: b.Volumes, DisksReady: b.disks, Options: opts,
		Handoff: b.Handoff(report, func() *unlock.BootRecord { return shown }),
	}
	if lb := b.Agent.Config.LastBoot; lb != nil && b.Look != nil {
		s.Previous = &unlock.BootRecord{Device: lb.Device, Entry: lb.Entry, Kernel: lb.Kernel, Initrd: lb.Initrd, Cmdline: lb.Cmdline, At: lb.At}
		s.Inspect = func(ctx context.Context) (*unlock.BootRecord, error) {
			r, err := b.Look(ctx)
			shown = r
			return r, err
		}
	}
	if b.staff != nil {
		g := b.staff.Grant
		s.Handoff, s.Previous, s.Inspect = b.InPlace(g), nil, nil
		s.Rescue = &unlock.RescueGrant{ID: g.ID, Staff: g.Staff, Scope: string(g.Scope), Until: g.Until}
	}
	code := s.Run(ctx, q.RW, q.PTY)
	if jump := s.Jump(); jump != nil {
		// Jump once the client has closed the connection, that is, once
		// it has every byte and the exit status (or after JumpWait if it
		// hangs).
		go func() {
			t := time.NewTimer(cmp.Or(b.JumpWait, 10*time.Second))
			defer t.Stop()
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			if b.Quiesce != nil {
				b.Quiesce()
			}
			jump()
		}()
	}
	return code
}

// Ended delivers why the rescue session ended, once its end is recorded
// and just before the restart.
func (b *Boot) Ended() <-chan string { return b.ended }

// rescue sets up a rescue boot: the grant's staff key is let in until the
// grant ends; at its end the session is recorded as over and the host
// reboots (into its own mode: the server has ended the grant).
func (b *Boot) rescue(ctx context.Context, srv *sshd.Server) error {
	a := b.Agent
	g := a.Config.Grant
	if g == nil {
		fmt.Fprintln(b.Console, "lifeboat: this rescue boot's grant ended before the host checked in; rebooting into the host's default mode")
		return errors.New("rescue boot without a live grant")
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(g.StaffKey))
	if err != nil {
		return fmt.Errorf("rescue grant %s: staff key: %w", g.ID, err)
	}
	guard := &rescue.Guard{Left: g.Left, PollEvery: b.GrantPoll, Poll: func(ctx context.Context) (kind.GrantState, error) {
		st, err := a.Client.Grant(ctx, a.Config.ReportToken, g.ID)
		if err != nil {
			return "", err
		}
		return st.State, nil
	}}
	done := make(chan struct{})
	srv.Staff, srv.StaffDone = key, done
	b.staff = &rescue.Staff{Host: a.Config.Host, Grant: g, Guard: guard,
		Report: func(ctx context.Context, code audit.Code, d map[string]string) error {
			return a.Report(ctx, code, ssh.FingerprintSHA256(key), d)
		},
		FindRoot: func() (*rescue.Root, error) {
			// The disks' drivers load in the background once SSH is up.
			select {
			case <-b.disks:
			case <-time.After(2 * time.Minute):
				return nil, errors.New("the disk drivers are still loading after 2 minutes")
			}
			return b.FindRoot()
		},
		Sink: func(name string) rescue.Sink {
			return func(ctx context.Context, off int64, data []byte) error {
				return a.Client.Record(ctx, a.Config.ReportToken, name, off, data)
			}
		},
	}
	gctx, endGrant := context.WithCancel(ctx)
	if g.Scope == "console" {
		c := &rescue.Console{Host: a.Config.Host, Grant: g, Staff: b.staff, Devices: b.Consoles}
		go c.Run(gctx)
	}
	go func() {
		why := guard.Wait(ctx)
		endGrant() // the console shell, if any, is killed
		if why == "" {
			return
		}
		close(done) // staff connections close; the key is refused from now on
		fmt.Fprintf(b.Console, "lifeboat: the rescue session of grant %s is over: %s. Rebooting.\n", g.ID, why)
		// The shells it closed store their last output and end records
		// (Recorder.Close waits 10 s at most) first: once rescue.end is
		// recorded, the server takes no more reports of this boot.
		if !b.staff.Drain(15 * time.Second) {
			b.Log.Error("a rescue shell did not store its recording before the restart")
		}
		rctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := a.Report(rctx, audit.RescueEnd, "agent", map[string]string{"grant": g.ID, "reason": why}); err != nil {
			b.Log.Error("rescue end not recorded", "err", err)
		}
		cancel()
		b.ended <- why
		time.Sleep(cmp.Or(b.RebootWait, 2*time.Second))
		b.Reboot()
	}()
	return nil
}

// refusals reports keys that were turned away, at most 20 per boot: enough
// to see who tried, too few for a scanner to flood the log.
func (b *Boot) refusals() func([]string, string) {
	var n atomic.Int32
	return func(fps []string, remote string) {
		if n.Add(1) > 20 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Agent.Report(ctx, audit.SSHRefused, "", map[string]string{"keys": strings.Join(fps, ","), "remote": remote}); err != nil {
			b.Log.Warn("refused login not recorded", "err", err)
		}
	}
}
