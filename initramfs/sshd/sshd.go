package sshd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Handler runs one session's dialog and returns its exit status. Its ctx
// is cancelled when the client has closed the connection, that is, once it
// has received everything including the exit status: work that must wait for
// the customer to be gone (the kexec) waits on it.
type Handler func(ctx context.Context, rw io.ReadWriter, pty bool, actor string) int

// Server is the unlock SSH server.
type Server struct {
	HostKey      ssh.Signer
	Authorized   []ssh.PublicKey
	LoginTimeout time.Duration // default 30s
	MaxConns     int           // default 8
	Log          *slog.Logger
	// OnLogin records a login; if it fails the connection is closed.
	OnLogin func(ctx context.Context, user, fingerprint, remote string) error
	Session Handler

	cfg *ssh.ServerConfig
}

const fpExt = "pubkey-fp"

func (s *Server) config() *ssh.ServerConfig {
	allowed := map[string]bool{}
	for _, k := range s.Authorized {
		allowed[string(k.Marshal())] = true
	}
	cfg := &ssh.ServerConfig{
		MaxAuthTries: 3,
		PublicKeyCallback: func(c ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if !allowed[string(k.Marshal())] {
				return nil, errors.New("key not authorised for this host")
			}
			return &ssh.Permissions{Extensions: map[string]string{fpExt: ssh.FingerprintSHA256(k)}}, nil
		},
		ServerVersion: "SSH-2.0-lifeboat",
		BannerCallback: func(ssh.ConnMetadata) string {
			return "lifeboat: unlock environment. Log in with the key your provider has on file.\n"
		},
	}
	cfg.AddHostKey(s.HostKey)
	return cfg
}

// Serve accepts connections until ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.cfg = s.config()
	if s.LoginTimeout == 0 {
		s.LoginTimeout = 30 * time.Second
	}
	if s.MaxConns == 0 {
		s.MaxConns = 8
	}
	go func() { <-ctx.Done(); ln.Close() }()
	sem := make(chan struct{}, s.MaxConns)
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
		select {
		case sem <- struct{}{}:
		default:
			s.Log.Warn("ssh: too many connections, refusing", "remote", nc.RemoteAddr().String())
			nc.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.conn(ctx, nc)
		}()
	}
}

func (s *Server) conn(ctx context.Context, nc net.Conn) {
	defer nc.Close()
	remote := nc.RemoteAddr().String()
	log := s.Log.With("remote", remote)
	// The whole handshake, authentication included, must finish in time:
	// a client that stalls cannot hold a slot.
	_ = nc.SetDeadline(time.Now().Add(s.LoginTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(nc, s.cfg)
	if err != nil {
		log.Info("ssh: login failed", "err", err)
		return
	}
	defer sc.Close()
	_ = nc.SetDeadline(time.Time{})
	fp := sc.Permissions.Extensions[fpExt]
	log = log.With("user", sc.User(), "key", fp)
	if err := s.OnLogin(ctx, sc.User(), fp, remote); err != nil {
		log.Error("ssh: login not recorded, closing", "err", err)
		return
	}
	log.Info("ssh: logged in")
	// Ends when the connection does (the loop below returns).
	cctx, gone := context.WithCancel(ctx)
	defer gone()
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "only sessions are offered")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		go s.session(cctx, ch, creqs, fp)
	}
}

func (s *Server) session(ctx context.Context, ch ssh.Channel, reqs <-chan *ssh.Request, actor string) {
	defer ch.Close()
	pty := false
	for req := range reqs {
		switch req.Type {
		case "pty-req":
			pty = true
			_ = req.Reply(true, nil)
		case "window-change", "env":
			_ = req.Reply(req.Type == "window-change", nil)
		case "shell", "exec":
			cmd := ""
			if req.Type == "exec" {
				var p struct{ Command string }
				if err := ssh.Unmarshal(req.Payload, &p); err != nil {
					_ = req.Reply(false, nil)
					return
				}
				cmd = p.Command
			}
			_ = req.Reply(true, nil)
			code := 127
			if cmd == "" || cmd == "unlock" {
				go discard(reqs)
				code = s.Session(ctx, ch, pty, actor)
			} else {
				fmt.Fprintf(ch.Stderr(), "lifeboat: unknown command %q; the only command here is \"unlock\"\n", cmd)
			}
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ C uint32 }{uint32(code)}))
			_ = ch.Close()
			return
		default:
			_ = req.Reply(false, nil)
		}
	}
}

func discard(reqs <-chan *ssh.Request) {
	for r := range reqs {
		if r.WantReply {
			_ = r.Reply(r.Type == "window-change", nil)
		}
	}
}
