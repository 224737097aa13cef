package agent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/keys/agenttls"
)

func TestReadBootParams(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "boot.json")
	_ = os.WriteFile(p, []byte(`{"server":"http://10.0.0.1:8080","boot":"b-1","mac":"52:54:00:00:00:01","host":"h","token":"tok"}`), 0o600)
	bp, err := ReadBootParams(p)
	if err != nil || bp.Token != "tok" || bp.Boot != "b-1" {
		t.Fatalf("ReadBootParams = %+v, %v", bp, err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Error("the token file was left in the image")
	}
	for _, body := range []string{`{`, `{"server":"x"}`} {
		_ = os.WriteFile(p, []byte(body), 0o600)
		if _, err := ReadBootParams(p); err == nil {
			t.Errorf("ReadBootParams(%s) accepted", body)
		}
	}
	if _, err := ReadBootParams(filepath.Join(dir, "none")); err == nil || !strings.Contains(err.Error(), "iPXE script") {
		t.Errorf("missing file: %v, want a hint", err)
	}
}

func TestCheckinRetriesOnlyNetworkErrors(t *testing.T) {
	var calls atomic.Int32
	keys, err := agenttls.Load(filepath.Join(t.TempDir(), "agent_key"), netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte(`{"error":"boot token already used"}`))
	}))
	srv.TLS = keys.TLSConfig()
	srv.StartTLS()
	defer srv.Close()
	hk, _ := HostKey()
	p := &agentapi.BootParams{Server: srv.URL, ServerKey: keys.PublicKey(), Boot: "b", MAC: "m", Token: "t"}
	_, err = Checkin(context.Background(), p, hk.PublicKey(), net.IPv4(10, 0, 0, 10), agentapi.BootTrust{Firmware: "bios", SecureBoot: "off", Lockdown: "none"}, slog.New(slog.DiscardHandler))
	if !errors.Is(err, agentapi.ErrRefused) || !strings.Contains(err.Error(), "already used") || calls.Load() != 1 {
		t.Errorf("refused check-in: %v after %d calls, want one call and the server's reason", err, calls.Load())
	}
}

// TestQuietStopsHeartbeats: Quiet ends KeepAlive at once, before the jump,
// and may be called more than once.
func TestQuietStopsHeartbeats(t *testing.T) {
	a := &Agent{Client: &agentapi.Client{HTTP: &http.Client{}}, Config: &agentapi.CheckinResponse{}, Log: slog.New(slog.DiscardHandler)}
	done := make(chan struct{})
	go func() { a.KeepAlive(context.Background()); close(done) }()
	a.Quiet()
	a.Quiet()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("heartbeats went on after Quiet")
	}
}
