package server

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
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
