package tftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
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
	s := &Server{Addr: "127.0.0.1:0", Dir: dir, Files: []string{"undionly.kpxe"}, Log: slog.New(slog.DiscardHandler),
		OnSent: func(_ net.UDPAddr, f string, n int64, _ time.Duration) {
			mu.Lock()
			sent = append(sent, f)
			mu.Unlock()
		}}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
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
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 1 || sent[0] != "undionly.kpxe" {
		t.Errorf("OnSent calls = %v", sent)
	}
}
