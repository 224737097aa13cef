package tftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-boot/lifeboat/hack/paths"
)

func TestAllowed(t *testing.T) {
	files := []string{"undionly.kpxe", "ipxe.efi"}
	tests := map[string]bool{
		"undionly.kpxe": true, "/ipxe.efi": true, "snponly.efi": false, "../ipxe.efi": false,
		"a/../ipxe.efi": false, "": false, "..": false, "ipxe.efi\x00": false, "\\ipxe.efi": false,
	}
	for name, want := range tests {
		if _, got := Allowed(files, name); got != want {
			t.Errorf("Allowed(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestServeWithCurl fetches a loader with curl's TFTP client (blksize 1468,
// as iPXE asks), and checks that other names and writes are refused.
func TestServeWithCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is required")
	}
	dir := t.TempDir()
	data := make([]byte, 300_000) // bigger than 65535 blocks of 512? no: several hundred blocks at 1468
	_, _ = rand.Read(data)
	_ = os.WriteFile(filepath.Join(dir, "undionly.kpxe"), data, 0o644)
	_ = os.WriteFile(filepath.Join(dir, "secret"), []byte("no"), 0o644)
	var mu sync.Mutex
	var sent []string
	refuse := false
	s := &Server{Addr: "127.0.0.1:0", Dir: dir, Files: []string{"undionly.kpxe"}, Log: slog.New(slog.DiscardHandler),
		Record: func(peer netip.Addr, f string, n int64) error {
			mu.Lock()
			defer mu.Unlock()
			if refuse {
				return errors.New("event log down")
			}
			if peer != netip.MustParseAddr("127.0.0.1") || n != int64(len(data)) {
				t.Errorf("Record(%s, %s, %d)", peer, f, n)
			}
			sent = append(sent, f)
			return nil
		}}
	serve(t, s)
	url := "tftp://" + s.LocalAddr().String() + "/"
	out := filepath.Join(t.TempDir(), "got")
	if b, err := exec.Command("curl", "-sS", "--max-time", "20", "--tftp-blksize", "1468", "-o", out, url+"undionly.kpxe").CombinedOutput(); err != nil {
		t.Fatalf("curl: %v\n%s", err, b)
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want the %d bytes of the file", len(got), len(data))
	}
	for _, name := range []string{"secret", "..%2Fsecret"} {
		if b, err := exec.Command("curl", "-sS", "--max-time", "10", "-o", "/dev/null", url+name).CombinedOutput(); err == nil {
			t.Errorf("curl %s succeeded, want refusal: %s", name, b)
		}
	}
	up := filepath.Join(t.TempDir(), "up")
	_ = os.WriteFile(up, []byte("x"), 0o644)
	if err := exec.Command("curl", "-sS", "--max-time", "10", "-T", up, url+"undionly.kpxe").Run(); err == nil {
		t.Error("a TFTP write was accepted")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "undionly.kpxe")); !bytes.Equal(b, data) {
		t.Error("the loader was changed")
	}
	// A fetch that cannot be recorded is not served.
	mu.Lock()
	refuse = true
	mu.Unlock()
	_ = os.Remove(out)
	if b, err := exec.Command("curl", "-sS", "--max-time", "10", "-o", out, url+"undionly.kpxe").CombinedOutput(); err == nil {
		t.Errorf("curl with the event log down: %v %s, want a refusal", err, b)
	}
	if fi, err := os.Stat(out); err == nil && fi.Size() > 0 {
		t.Errorf("%d bytes were sent though the fetch was not recorded", fi.Size())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 1 || sent[0] != "undionly.kpxe" {
		t.Errorf("Record calls = %v", sent)
	}
}

func FuzzAllowed(f *testing.F) {
	f.Add("undionly.kpxe")
	f.Add("../undionly.kpxe")
	f.Add("/ipxe.efi\x00")
	f.Fuzz(func(t *testing.T, name string) {
		got, ok := Allowed([]string{"undionly.kpxe", "ipxe.efi"}, name)
		if ok && got != "undionly.kpxe" && got != "ipxe.efi" {
			t.Fatalf("Allowed(%q) = %q", name, got)
		}
	})
}

// TestHostileNames sends 200+ traversal and odd names as raw RRQ packets;
// the answer to each must be an ERROR, never DATA or OACK. The served folder
// holds a link that points out of it, listed as a file to serve.
func TestHostileNames(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "root")
	_ = os.MkdirAll(dir, 0o755)
	_ = os.WriteFile(filepath.Join(base, "secret"), []byte("secret"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "undionly.kpxe"), []byte("loader"), 0o644)
	_ = os.Symlink("../secret", filepath.Join(dir, "link.efi"))
	s := &Server{Addr: "127.0.0.1:0", Dir: dir, Files: []string{"undionly.kpxe"}, Log: slog.New(slog.DiscardHandler)}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	// The link is never served, even if an operator lists it.
	s.Files = append(s.Files, "link.efi")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	names := append(paths.Hostile([]string{"undionly.kpxe"}, "secret"), "link.efi", "/link.efi")
	if len(names) < 200 {
		t.Fatalf("only %d names", len(names))
	}
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 2048)
	for _, n := range append(names, "undionly.kpxe") {
		pkt := append([]byte{0, 1}, n...)
		pkt = append(append(pkt, 0), "octet\x00"...)
		if _, err := c.WriteTo(pkt, s.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		k, from, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("%q: no answer: %v", n, err)
		}
		op := int(buf[0])<<8 | int(buf[1])
		if before, _, _ := strings.Cut(n, "\x00"); n != "undionly.kpxe" && (before == "undionly.kpxe" || before == "/undionly.kpxe") {
			// On the wire a NUL ends the file name: this is a request for
			// the loader itself. Finish it and go on.
			_, _ = c.WriteTo([]byte{0, 4, buf[2], buf[3]}, from)
			continue
		}
		if n == "undionly.kpxe" {
			if op != 3 || string(buf[4:k]) != "loader" {
				t.Fatalf("the real loader was not served (op %d)", op)
			}
			// Acknowledge the single block so the transfer ends cleanly.
			_, _ = c.WriteTo([]byte{0, 4, buf[2], buf[3]}, from)
			continue
		}
		if op != 5 {
			t.Errorf("%q: answer opcode %d (%q), want ERROR", n, op, buf[4:k])
		}
	}
}

// TestLoaderReplaced: loaders are served from memory, but a loader replaced
// on disk is served anew at the next request, even when the new file has
// the old one's size and modification time (copied with cp -p), by rename
// or rewritten in place.
func TestLoaderReplaced(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ipxe.efi")
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	write := func(data string, rename bool) {
		t.Helper()
		dst := p
		if rename {
			dst = p + ".new"
		}
		if err := os.WriteFile(dst, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(dst, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		if rename {
			if err := os.Rename(dst, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("version-1", false)
	s := &Server{Addr: "127.0.0.1:0", Dir: dir, Files: []string{"ipxe.efi"}, Log: slog.New(slog.DiscardHandler)}
	serve(t, s)
	fetch := func() string {
		t.Helper()
		out := filepath.Join(t.TempDir(), "got")
		if b, err := exec.Command("curl", "-sS", "--max-time", "20", "-o", out, "tftp://"+s.LocalAddr().String()+"/ipxe.efi").CombinedOutput(); err != nil {
			t.Fatalf("curl: %v\n%s", err, b)
		}
		b, _ := os.ReadFile(out)
		return string(b)
	}
	if got := fetch(); got != "version-1" {
		t.Fatalf("first fetch: %q", got)
	}
	write("version-2", true) // same size, same mtime, new inode
	if got := fetch(); got != "version-2" {
		t.Fatalf("after a replace by rename: %q, want version-2", got)
	}
	time.Sleep(50 * time.Millisecond) // a later change time (file times tick in jiffies)
	write("version-3", false)         // same size, same mtime, same inode
	if got := fetch(); got != "version-3" {
		t.Fatalf("after a rewrite in place: %q, want version-3", got)
	}
}

// TestLoaderTooBig: TFTP is for first-stage loaders; a kernel-sized file
// listed by mistake is refused at start with a message saying why.
func TestLoaderTooBig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, MaxLoaderSize+1); err != nil { // sparse
		t.Fatal(err)
	}
	s := &Server{Addr: "127.0.0.1:0", Dir: dir, Files: []string{"vmlinuz"}, Log: slog.New(slog.DiscardHandler)}
	err := s.Listen()
	if err == nil || !strings.Contains(err.Error(), "kernels go over HTTP") {
		t.Fatalf("Listen with a %d-byte file: %v, want a refusal that says why", MaxLoaderSize+1, err)
	}
}

// TestRefusedPeersLogOncePerBurst: fifty requests from a peer with no boot
// in progress get fifty refusals and no data, and one log line.
func TestRefusedPeersLogOncePerBurst(t *testing.T) {
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "undionly.kpxe"), []byte("loader"), 0o644)
	var log bytes.Buffer
	var mu sync.Mutex
	s := &Server{Addr: "127.0.0.1:0", Dir: dir, Files: []string{"undionly.kpxe"}, Log: slog.New(slog.NewTextHandler(&syncWriter{w: &log, mu: &mu}, nil)),
		Record: func(netip.Addr, string, int64) error {
			return fmt.Errorf("%w: 127.0.0.1 is not a reserved address", ErrNoBoot)
		}}
	serve(t, s)
	rrq := append([]byte{0, 1}, []byte("undionly.kpxe\x00octet\x00")...)
	for i := range 50 {
		l, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if _, err := l.WriteTo(rrq, s.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 600)
		_ = l.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := l.ReadFrom(buf)
		l.Close()
		if err != nil || n < 4 || buf[1] != 5 { // opcode 5: ERROR
			t.Fatalf("request %d: %d bytes %x, %v; want an ERROR", i, n, buf[:n], err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(log.String(), "tftp: refused"); n != 1 {
		t.Errorf("%d log lines for 50 refusals, want 1:\n%s", n, log.String())
	}
}

type syncWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// serve listens and serves s until the test ends, and checks that Serve
// then returns cleanly.
func serve(t *testing.T, s *Server) {
	t.Helper()
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}
