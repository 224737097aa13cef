package sshd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/pxe/keys/authkeys"
)

// Roles of a login: the customer (the keys on file for the host), or the
// staff member of the rescue grant this boot serves.
const (
	RoleCustomer = "customer"
	RoleStaff    = "staff"
)

// WinSize is a terminal's size.
type WinSize struct{ Cols, Rows uint32 }

// Request is one session's command and its streams.
type Request struct {
	RW      io.ReadWriter // stdin and stdout
	Stderr  io.Writer
	PTY     bool
	Term    string
	Size    WinSize        // at the pty request
	Resize  <-chan WinSize // later window changes (dropped if not read)
	Actor   string         // the key's SHA-256 fingerprint
	Role    string         // RoleCustomer or RoleStaff
	Command string         // "" for a login shell, else the exec command
}

// Handler runs one session's command and returns its exit status. Its ctx
// is cancelled when the client has closed the connection, that is, once it
// has received everything including the exit status: work that must wait for
// the customer to be gone (the kexec) waits on it. For a staff session it is
// cancelled too when the grant ends.
type Handler func(ctx context.Context, r *Request) int

// Server is the RAM image's SSH server.
type Server struct {
	HostKey      ssh.Signer
	Authorized   []authkeys.Key // the customer's keys, with their from= restrictions
	LoginTimeout time.Duration  // default 30s
	// BannerTimeout is how long a new connection may stay silent: an SSH
	// client sends its version at once (default 10 s).
	BannerTimeout time.Duration
	Limits        Limits
	Log           *slog.Logger
	// Staff is the key of the rescue grant's staff member, nil without a
	// grant; StaffDone is closed when the grant ends: from then on the key
	// is refused and its connections are closed.
	Staff     ssh.PublicKey
	StaffDone <-chan struct{}
	// OnLogin records a login; if it fails the connection is closed.
	OnLogin func(ctx context.Context, role, user, fingerprint, remote string) error
	// OnRefused records a connection that offered only keys not let in.
	OnRefused func(fingerprints []string, remote string)
	// OnCapped records connections turned away by the Limits: once when
	// a burst begins (n 1) and once when it has been quiet for BurstQuiet
	// (n the burst's count), never per connection.
	OnCapped   func(n int, firstRemote string)
	BurstQuiet time.Duration // default 10 s
	Session    Handler
}

// Algorithms are the only ones the unlock server offers: a passphrase
// crosses these connections, so only key exchanges with forward secrecy on
// curves nobody doubts (and the post-quantum hybrid first), AEAD ciphers,
// and encrypt-then-MAC MACs (used by no AEAD cipher; kept for clients that
// ask for them by name). x/crypto's defaults also offer the NIST curves,
// diffie-hellman-group14-sha1 and the encrypt-and-MAC hmac-sha1 family.
var Algorithms = ssh.Config{
	KeyExchanges: []string{ssh.KeyExchangeMLKEM768X25519, ssh.KeyExchangeCurve25519},
	Ciphers:      []string{ssh.CipherChaCha20Poly1305, ssh.CipherAES256GCM, ssh.CipherAES128GCM},
	MACs:         []string{ssh.HMACSHA256ETM, ssh.HMACSHA512ETM},
}

const fpExt = "pubkey-fp"

const roleExt = "role"

// config is made per connection: refused is that connection's list of keys
// offered and turned away.
func (s *Server) config(refused *[]string) *ssh.ServerConfig {
	allowed := map[string]authkeys.Key{}
	for _, k := range s.Authorized {
		allowed[string(k.Marshal())] = k
	}
	cfg := &ssh.ServerConfig{
		MaxAuthTries: 3,
		PublicKeyCallback: func(c ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			fp := ssh.FingerprintSHA256(k)
			role := ""
			ak, isCustomer := allowed[string(k.Marshal())]
			switch {
			case isCustomer && ak.Allows(source(c.RemoteAddr())):
				role = RoleCustomer
			case s.Staff != nil && string(k.Marshal()) == string(s.Staff.Marshal()) && !closed(s.StaffDone):
				role = RoleStaff
			default:
				if len(*refused) < 8 && !slices.Contains(*refused, fp) {
					*refused = append(*refused, fp)
				}
				return nil, errors.New("key not authorised for this host")
			}
			return &ssh.Permissions{Extensions: map[string]string{fpExt: fp, roleExt: role}}, nil
		},
		Config:        Algorithms,
		ServerVersion: "SSH-2.0-lifeboat",
		BannerCallback: func(ssh.ConnMetadata) string {
			if s.Staff != nil {
				return "lifeboat: rescue environment under a time-limited grant. Every login is recorded and the customer is told.\n"
			}
			return "lifeboat: unlock environment. Log in with the key your provider has on file.\n"
		},
	}
	cfg.AddHostKey(s.HostKey)
	return cfg
}

func closed(c <-chan struct{}) bool {
	if c == nil {
		return false
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Serve accepts connections until ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.LoginTimeout == 0 {
		s.LoginTimeout = 30 * time.Second
	}
	if s.BannerTimeout == 0 {
		s.BannerTimeout = 10 * time.Second
	}
	adm := newAdmission(s.Limits)
	go func() { <-ctx.Done(); ln.Close() }()
	capped := &burst{quiet: cmp.Or(s.BurstQuiet, 10*time.Second), report: func(n int, first string) {
		s.Log.Warn("ssh: connections refused: too many at once", "count", n, "first_remote", first,
			"max_startups", adm.lim.MaxStartups, "per_source", adm.lim.PerSource, "max_logged_in", adm.lim.MaxConns)
		if s.OnCapped != nil {
			s.OnCapped(n, first)
		}
	}}
	defer capped.stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("ssh accept: %w", err)
		}
		src := source(nc.RemoteAddr())
		if ok, why := adm.start(src, time.Now()); !ok {
			capped.add(nc.RemoteAddr().String())
			s.Log.Debug("ssh: connection refused", "remote", nc.RemoteAddr().String(), "why", why)
			refuse(nc, why)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.conn(ctx, nc, adm, src)
		}()
	}
}

// refuse says why before it closes: what a person with nc or ssh -v sees
// (RFC 4253 lets a server send lines before its version).
func refuse(nc net.Conn, why string) {
	msg := map[string]string{
		refusedPenalty:   "lifeboat: connections from your address sat idle until they timed out; try again in a minute\r\n",
		refusedPerSource: "lifeboat: too many unfinished logins from your address; finish or close one\r\n",
		refusedStartups:  "lifeboat: too many logins are starting at once; try again in a few seconds\r\n",
	}[why]
	_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(nc, msg)
	nc.Close()
}

// firstByte is a connection that must say something within its banner
// deadline, then has until the login deadline.
type firstByte struct {
	net.Conn
	login time.Time
	heard bool
}

func (c *firstByte) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.heard {
		c.heard = true
		_ = c.Conn.SetReadDeadline(c.login)
	}
	return n, err
}

func (s *Server) conn(ctx context.Context, nc net.Conn, adm *admission, src netip.Addr) {
	defer nc.Close()
	remote := nc.RemoteAddr().String()
	log := s.Log.With("remote", remote)
	// The whole handshake, authentication included, must finish in time,
	// and a connection that says nothing is cut sooner: a client that
	// stalls cannot hold a place.
	now := time.Now()
	login := now.Add(s.LoginTimeout)
	_ = nc.SetWriteDeadline(login)
	_ = nc.SetReadDeadline(now.Add(min(s.BannerTimeout, s.LoginTimeout)))
	var refused []string
	sc, chans, reqs, err := ssh.NewServerConn(&firstByte{Conn: nc, login: login}, s.config(&refused))
	if err != nil {
		var ne net.Error
		timedOut := errors.As(err, &ne) && ne.Timeout()
		adm.done(src, false, timedOut, time.Now())
		log.Info("ssh: login failed", "err", err, "refused_keys", refused, "timed_out", timedOut)
		if len(refused) > 0 && s.OnRefused != nil {
			s.OnRefused(refused, remote)
		}
		return
	}
	defer sc.Close()
	if !adm.done(src, true, false, time.Now()) {
		log.Warn("ssh: logged in, but too many sessions are logged in: closing")
		return
	}
	defer adm.end()
	_ = nc.SetDeadline(time.Time{})
	fp, role := sc.Permissions.Extensions[fpExt], sc.Permissions.Extensions[roleExt]
	log = log.With("user", sc.User(), "key", fp, "role", role)
	if err := s.OnLogin(ctx, role, sc.User(), fp, remote); err != nil {
		log.Error("ssh: login not recorded, closing", "err", err)
		return
	}
	log.Info("ssh: logged in")
	// Ends when the connection does (the loop below returns).
	cctx, gone := context.WithCancel(ctx)
	defer gone()
	if role == RoleStaff {
		// The grant's end closes the staff member's connection, whatever
		// runs in it.
		go func() {
			select {
			case <-s.StaffDone:
				log.Info("ssh: grant ended, closing the staff connection")
				sc.Close()
			case <-cctx.Done():
			}
		}()
	}
	go ssh.DiscardRequests(reqs)
	// Sessions at once per connection: an unlock dialog needs one, a
	// staff member a shell and a copy beside it. More would only be
	// parallel guesses, or load.
	open := make(chan struct{}, MaxSessions)
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "only sessions are offered")
			continue
		}
		select {
		case open <- struct{}{}:
		default:
			_ = nch.Reject(ssh.ResourceShortage, fmt.Sprintf("at most %d sessions at once on one connection", MaxSessions))
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			<-open
			continue
		}
		go func() { defer func() { <-open }(); s.session(cctx, ch, creqs, fp, role) }()
	}
}

// MaxSessions is how many session channels one connection may have open.
const MaxSessions = 2

func (s *Server) session(ctx context.Context, ch ssh.Channel, reqs <-chan *ssh.Request, actor, role string) {
	defer ch.Close()
	r := &Request{RW: ch, Stderr: ch.Stderr(), Actor: actor, Role: role}
	resize := make(chan WinSize, 4)
	r.Resize = resize
	for req := range reqs {
		switch req.Type {
		case "pty-req":
			var p struct {
				Term             string
				Cols, Rows, W, H uint32
				Modes            string
			}
			if err := ssh.Unmarshal(req.Payload, &p); err != nil {
				_ = req.Reply(false, nil)
				continue
			}
			r.PTY, r.Term, r.Size = true, p.Term, WinSize{Cols: p.Cols, Rows: p.Rows}
			_ = req.Reply(true, nil)
		case "window-change":
			if ws, ok := winSize(req.Payload); ok {
				r.Size = ws
			}
			_ = req.Reply(true, nil)
		case "env":
			_ = req.Reply(false, nil) // nothing from the client's environment
		case "shell", "exec":
			if req.Type == "exec" {
				var p struct{ Command string }
				if err := ssh.Unmarshal(req.Payload, &p); err != nil {
					_ = req.Reply(false, nil)
					return
				}
				r.Command = p.Command
			}
			_ = req.Reply(true, nil)
			go later(reqs, resize)
			code := s.Session(ctx, r)
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ C uint32 }{uint32(code)}))
			_ = ch.Close()
			return
		default:
			_ = req.Reply(false, nil)
		}
	}
}

func winSize(payload []byte) (WinSize, bool) {
	var p struct{ Cols, Rows, W, H uint32 }
	if ssh.Unmarshal(payload, &p) != nil {
		return WinSize{}, false
	}
	return WinSize{Cols: p.Cols, Rows: p.Rows}, true
}

// later answers the requests that come once the command runs, passing
// window changes on.
func later(reqs <-chan *ssh.Request, resize chan<- WinSize) {
	for r := range reqs {
		if r.Type == "window-change" {
			if ws, ok := winSize(r.Payload); ok {
				select {
				case resize <- ws:
				default:
				}
			}
		}
		if r.WantReply {
			_ = r.Reply(r.Type == "window-change", nil)
		}
	}
}

// burst counts events that come in bursts (connections over the cap) and
// reports a burst twice: at its first event, and with its count once it
// has been quiet for quiet. A flood costs two records, not one each.
type burst struct {
	quiet  time.Duration
	report func(n int, first string)

	mu    sync.Mutex
	n     int
	first string
	timer *time.Timer
}

func (b *burst) add(remote string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	if b.n == 1 {
		b.first = remote
		go b.report(1, remote)
		b.timer = time.AfterFunc(b.quiet, b.flush)
		return
	}
	b.timer.Reset(b.quiet)
}

func (b *burst) flush() {
	b.mu.Lock()
	n, first := b.n, b.first
	b.n, b.first = 0, ""
	b.mu.Unlock()
	if n > 1 {
		b.report(n, first)
	}
}

func (b *burst) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.timer != nil {
		b.timer.Stop()
	}
}
