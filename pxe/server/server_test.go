package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/boot/tftp"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/store/sqlite"
)

// TestListenerLimits: a client that opens a connection and sends nothing
// is cut off after the header timeout, and past the connection cap a new
// connection waits until one closes, rather than the server holding more.
func TestListenerLimits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- serveHTTP(ctx, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }),
			slog.New(slog.DiscardHandler), limits{header: 2 * time.Second, read: 3 * time.Second, write: time.Second, idle: time.Second, conns: 2})
	}()
	addr := ln.Addr().String()
	silent := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Two silent clients fill the cap: a third's request waits.
	a, b := silent(), silent()
	defer a.Close()
	defer b.Close()
	time.Sleep(100 * time.Millisecond) // both accepted
	c := silent()
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := br.Peek(1); err == nil {
		t.Fatal("a third connection was served past the cap of two")
	}
	// One leaves: the third is served.
	a.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the third request once a connection closed: %v, %v", resp, err)
	}
	// The other silent one is cut off after the header timeout.
	start := time.Now()
	_ = b.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := b.Read(make([]byte, 1)); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("a silent connection was held for %s (%v), want it closed after the header timeout", time.Since(start), err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serveHTTP: %v", err)
	}
}

// TestFirstStageFetch: TFTP serves (and records, before sending) only a
// host whose boot is in progress; a reserved host between boots and an
// address not reserved are refused, but in proxy mode an unknown address
// is served unrecorded, and with dhcp_mode off a known host outside a boot.
func TestFirstStageFetch(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	inv, err := store.ParseInventory([]byte(`{"hosts":[{"name":"web1","mac":"52:54:00:00:00:01","ip":"10.0.0.5","authorized_keys":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl c"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Apply(ctx, store.Change{Put: inv.Hosts()}, "test"); err != nil {
		t.Fatal(err)
	}
	steps, err := db.NewSteps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	host, other := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("10.0.0.66")
	fetch := func(mode string, peer netip.Addr) error {
		return firstStageFetch(ctx, db, steps, mode)(peer, "undionly.kpxe", 1000)
	}
	for _, tt := range []struct {
		mode string
		peer netip.Addr
		ok   bool
	}{{"full", other, false}, {"proxy", other, true}, {"full", host, false}, {"proxy", host, false}, {"off", host, true}} {
		if err := fetch(tt.mode, tt.peer); (err == nil) != tt.ok || (err != nil && !errors.Is(err, tftp.ErrNoBoot)) {
			t.Errorf("%s mode, %s, no boot: %v, want ok=%v", tt.mode, tt.peer, err, tt.ok)
		}
	}
	b, _, err := steps.Begin(ctx, "52:54:00:00:00:01", "web1", store.ClientFirmware, "bios", audit.Event{Code: audit.BootStart})
	if err != nil {
		t.Fatal(err)
	}
	if err := fetch("full", host); err != nil {
		t.Fatalf("a boot in progress: %v", err)
	}
	steps.Reached("52:54:00:00:00:01", b.ID, store.StageScript)
	if err := fetch("full", host); !errors.Is(err, tftp.ErrNoBoot) {
		t.Errorf("a boot past its first stage: %v, want ErrNoBoot", err)
	}
	evs, err := db.Events(ctx, store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var fetched []string
	for _, e := range evs {
		if e.Code == audit.FirstStageFetch {
			fetched = append(fetched, e.Boot)
		}
	}
	if len(fetched) != 2 || fetched[0] != "" || fetched[1] != b.ID {
		t.Errorf("first-stage records, by boot: %q; want one outside a boot (mode off) and one of %s", fetched, b.ID)
	}
}
