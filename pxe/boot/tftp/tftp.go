package tftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/lifeboat-boot/lifeboat/pxe/metrics"
)

// Server serves a fixed set of files from one folder.
type Server struct {
	Addr  string   // default 0.0.0.0:69 (not ":69": that binds IPv6 and clamps blksize)
	Dir   string   // folder holding the loaders
	Files []string // the only names served
	Log   *slog.Logger
	// Record is called before each transfer, with the file's size: the
	// fetch is recorded before it is served, as every boot step is. An
	// error refuses the request (the client retries or gives up); one
	// wrapping ErrNoBoot is a peer that may not fetch now, counted and
	// logged once a minute with the count, not once each.
	Record func(peer netip.Addr, file string, size int64) error

	root  *os.Root
	conn  net.PacketConn
	mu    sync.Mutex
	cache map[string]cached

	refusedMu   sync.Mutex
	refused     int // since the last log line
	refusedLast time.Time
}

// ErrNoBoot refuses a peer that has no boot in progress: TFTP is the boot
// network's plainest service, and lifeboatd serves it only to the hosts it
// is booting.
var ErrNoBoot = errors.New("no boot in progress for this address")

// noteRefused logs refused peers once a minute, with how many there were.
func (s *Server) noteRefused(peer net.Addr, file string, err error) {
	metrics.TFTPTransfers.WithLabelValues("refused").Inc()
	s.refusedMu.Lock()
	defer s.refusedMu.Unlock()
	s.refused++
	if time.Since(s.refusedLast) < time.Minute {
		return
	}
	s.Log.Warn("tftp: refused: no boot in progress (further refusals are counted, and logged once a minute)",
		"peer", peer.String(), "file", file, "refused", s.refused, "reason", err.Error())
	s.refused, s.refusedLast = 0, time.Now()
}

// Listen opens the folder and binds the socket, so that configuration
// errors surface before Serve.
func (s *Server) Listen() error {
	root, err := os.OpenRoot(s.Dir)
	if err != nil {
		return fmt.Errorf("tftp: %w", err)
	}
	s.root = root
	for _, f := range s.Files {
		if _, err := s.loader(f); err != nil {
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
	s.conn = conn
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

// ErrNotRecorded is sent when the fetch could not be recorded.
var ErrNotRecorded = errors.New("server cannot record the boot now; try again")

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
	clean, ok := Allowed(s.Files, name)
	if !ok {
		s.Log.Warn("tftp: refused request for a file not served", "peer", peer.String(), "file", name)
		return ErrNotServed
	}
	data, err := s.loader(clean)
	if err != nil {
		s.Log.Error("tftp: read loader", "peer", peer.String(), "file", clean, "err", err)
		return ErrNotServed
	}
	if s.Record != nil {
		ip, _ := netip.AddrFromSlice(peer.IP)
		if err := s.Record(ip.Unmap(), clean, int64(len(data))); errors.Is(err, ErrNoBoot) {
			s.noteRefused(&peer, clean, err)
			return ErrNoBoot
		} else if err != nil {
			s.Log.Error("tftp: not serving: the fetch could not be recorded", "peer", peer.String(), "file", clean, "err", err)
			return ErrNotRecorded
		}
	}
	start := time.Now()
	rf.(tftp.OutgoingTransfer).SetSize(int64(len(data)))
	n, err := rf.ReadFrom(bytes.NewReader(data))
	if err != nil {
		s.Log.Info("tftp: transfer ended early", "peer", peer.String(), "file", clean, "bytes", n, "err", err)
		return err
	}
	took := time.Since(start)
	metrics.TFTPTransfers.WithLabelValues("sent").Inc()
	metrics.TFTPBytes.Add(float64(n))
	s.Log.Info("tftp: sent", "peer", peer.String(), "file", clean, "bytes", n, "took", took.String())
	return nil
}

// cached is one loader held in memory, with what its file was when read.
type cached struct {
	stamp stamp
	data  []byte
}

// stamp tells one version of a file from another: size and modification
// time, and on Linux the inode and change time too, so that a loader copied
// over with its old mtime kept (cp -p, rsync -t) is still read again.
type stamp struct {
	size       int64
	mod        time.Time
	ino        uint64
	ctimeNanos int64
}

func stampOf(fi os.FileInfo) stamp {
	st := stamp{size: fi.Size(), mod: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino, st.ctimeNanos = sys.Ino, sys.Ctim.Nano()
	}
	return st
}

// loader returns the bytes of a served file. The loaders are small (under a
// megabyte) and asked for by every host at every boot, so they are held in
// memory: a request costs one stat instead of an open, a read and a buffer
// per transfer, whose allocations ran the garbage collector every few
// requests. A transfer also sends one version of the file from start to
// end, even if the file is replaced meanwhile. A replaced file (a rebuilt
// image) is read again at the next request.
func (s *Server) loader(name string) ([]byte, error) {
	fi, err := s.root.Stat(name)
	if err != nil {
		return nil, err
	}
	st := stampOf(fi)
	s.mu.Lock()
	c, ok := s.cache[name]
	s.mu.Unlock()
	if ok && c.stamp.size == st.size && c.stamp.mod.Equal(st.mod) && c.stamp.ino == st.ino && c.stamp.ctimeNanos == st.ctimeNanos {
		return c.data, nil
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	if fi.Size() > MaxLoaderSize {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d a first-stage loader may be (kernels go over HTTP)", name, fi.Size(), MaxLoaderSize)
	}
	f, err := s.root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxLoaderSize+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > MaxLoaderSize {
		return nil, fmt.Errorf("%s grew past %d bytes while being read", name, MaxLoaderSize)
	}
	s.mu.Lock()
	if s.cache == nil {
		s.cache = map[string]cached{}
	}
	s.cache[name] = cached{stamp: st, data: data}
	s.mu.Unlock()
	return data, nil
}

// MaxLoaderSize bounds a served file: TFTP is for first-stage loaders only.
const MaxLoaderSize = 32 << 20
