package tftp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/pin/tftp/v3"
)

// Server serves a fixed set of files from one folder.
type Server struct {
	Addr  string   // default 0.0.0.0:69 (not ":69": that binds IPv6 and clamps blksize)
	Dir   string   // folder holding the loaders
	Files []string // the only names served
	Log   *slog.Logger
	// OnSent is called after each complete transfer.
	OnSent func(peer net.UDPAddr, file string, bytes int64, took time.Duration)

	root *os.Root
	conn net.PacketConn
}

// Listen opens the folder and binds the socket, so that configuration
// errors surface before Serve.
func (s *Server) Listen() error {
	root, err := os.OpenRoot(s.Dir)
	if err != nil {
		return fmt.Errorf("tftp: %w", err)
	}
	for _, f := range s.Files {
		if _, err := root.Stat(f); err != nil {
			root.Close()
			return fmt.Errorf("tftp: loader %q: %w", f, err)
		}
	}
	addr := s.Addr
	if addr == "" {
		addr = "0.0.0.0:69"
	}
	conn, err := net.ListenPacket("udp4", addr)
	if err != nil {
		root.Close()
		return fmt.Errorf("tftp: %w", err)
	}
	s.root, s.conn = root, conn
	return nil
}

// LocalAddr is the bound address (after Listen).
func (s *Server) LocalAddr() net.Addr { return s.conn.LocalAddr() }

// Serve runs until ctx is done.
func (s *Server) Serve(ctx context.Context) error {
	if s.conn == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	defer s.root.Close()
	srv := tftp.NewServer(s.read, nil) // nil write handler: every WRQ is refused
	srv.SetTimeout(2 * time.Second)
	srv.SetRetries(5)
	srv.SetBlockSize(1468)
	s.Log.Info("tftp serving", "addr", s.conn.LocalAddr().String(), "files", strings.Join(s.Files, ","))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.conn) }()
	select {
	case <-ctx.Done():
		srv.Shutdown()
		<-errc
		return nil
	case err := <-errc:
		return fmt.Errorf("tftp: %w", err)
	}
}

// ErrNotServed is sent to clients asking for anything but a listed loader.
var ErrNotServed = errors.New("file not served here")

// Allowed reports whether name is one of the files to serve. Names are
// compared exactly after dropping one leading slash (some firmware sends
// "/ipxe.efi"); anything with another slash or a dot-dot is refused.
func Allowed(files []string, name string) (string, bool) {
	name = strings.TrimPrefix(name, "/")
	if name == "" || strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." {
		return "", false
	}
	for _, f := range files {
		if f == name {
			return name, true
		}
	}
	return "", false
}

func (s *Server) read(name string, rf io.ReaderFrom) error {
	peer := rf.(tftp.OutgoingTransfer).RemoteAddr()
	log := s.Log.With("peer", peer.String(), "file", name)
	clean, ok := Allowed(s.Files, name)
	if !ok {
		log.Warn("tftp: refused request for a file not served")
		return ErrNotServed
	}
	f, err := s.root.Open(clean)
	if err != nil {
		log.Error("tftp: open", "err", err)
		return ErrNotServed
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		log.Error("tftp: stat", "err", err)
		return ErrNotServed
	}
	start := time.Now()
	// tsize from the stat, and the file read in large pieces: unbuffered,
	// every block would cost a read system call of its own.
	rf.(tftp.OutgoingTransfer).SetSize(fi.Size())
	n, err := rf.ReadFrom(bufio.NewReaderSize(f, 256<<10))
	if err != nil {
		log.Info("tftp: transfer ended early", "bytes", n, "err", err)
		return err
	}
	log.Info("tftp: sent", "bytes", n, "took", time.Since(start).String())
	if s.OnSent != nil {
		s.OnSent(peer, clean, n, time.Since(start))
	}
	return nil
}
