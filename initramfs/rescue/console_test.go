package rescue

import (
	"bufio"
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/keys/consolecode"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// consoleRig is a console grant whose console is a pty: the test types at
// its master side as a technician at the keyboard.
type consoleRig struct {
	c       *Console
	master  *os.File
	mu      sync.Mutex
	reports []string
	srv     *server
	screen  *syncBuf
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func newConsoleRig(t *testing.T) *consoleRig {
	ShellPath = "/bin/sh"
	master, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close(); tty.Close() })
	g := &agentapi.RescueGrant{ID: "g-1", Scope: "console", Staff: "hands", Ticket: "DC-7", Until: time.Now().Add(time.Hour)}
	g.ConsoleCodeHash = consolecode.Hash(g.ID, "1234-5678")
	r := &consoleRig{master: master, srv: &server{}, screen: &syncBuf{}}
	staff := &Staff{Host: "web1", Grant: g, Guard: &Guard{Left: time.Hour},
		Report: func(_ context.Context, code audit.Code, d map[string]string) error {
			r.mu.Lock()
			r.reports = append(r.reports, string(code)+":"+d["tries_left"])
			r.mu.Unlock()
			return nil
		},
		Sink: func(string) Sink { return r.srv.sink }}
	r.c = &Console{Host: "web1", Grant: g, Devices: []string{tty.Name()}, Staff: staff}
	go func() { _, _ = io.Copy(r.screen, master) }()
	return r
}

func (r *consoleRig) waitScreen(t *testing.T, s string) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !strings.Contains(r.screen.String(), s); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("console never showed %q:\n%s", s, r.screen.String())
		}
	}
}

// waitCount waits until the console has shown s n times.
func (r *consoleRig) waitCount(t *testing.T, s string, n int) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); strings.Count(r.screen.String(), s) < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("console showed %q fewer than %d times:\n%s", s, n, r.screen.String())
		}
	}
}

func TestConsoleCode(t *testing.T) {
	r := newConsoleRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { r.c.Run(ctx); close(done) }()
	r.waitScreen(t, "one-time code: ")
	r.waitScreen(t, "grant g-1 (ticket DC-7, asked by hands)")
	// A wrong code, and the right one typed ahead: neither is echoed.
	io.WriteString(r.master, "9999-0000\n1234 5678\n")
	r.waitScreen(t, "wrong code; 4 tries left")
	r.waitScreen(t, "Input is not recorded")
	// Whole codes are looked for: a bare "1234" turns up in timestamps
	// such as 0.012345.
	if screen := r.screen.String(); strings.Contains(screen, "9999-0000") || strings.Contains(screen, "1234 5678") {
		t.Errorf("a typed code was echoed:\n%s", r.screen.String())
	}
	io.WriteString(r.master, "echo console-$((40+2))\n")
	r.waitScreen(t, "console-42")
	io.WriteString(r.master, "exit\n")
	r.waitScreen(t, "the code is used up")
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("console still served after its shell")
	}
	r.mu.Lock()
	got := strings.Join(r.reports, " ")
	r.mu.Unlock()
	if got != "rescue.console_refused:4 rescue.console: rescue.shell_end:" {
		t.Errorf("reports: %s", got)
	}
	r.srv.mu.Lock()
	rec := string(r.srv.data)
	r.srv.mu.Unlock()
	if !strings.Contains(rec, "console-42") || strings.Contains(rec, "1234 5678") || strings.Contains(rec, "9999-0000") {
		t.Errorf("recording: %q", rec)
	}
}

func TestConsoleLocksAfterWrongCodes(t *testing.T) {
	r := newConsoleRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { r.c.Run(ctx); close(done) }()
	in := bufio.NewWriter(r.master)
	for i := range MaxCodeTries {
		r.waitCount(t, "one-time code: ", i+1) // the prompt for this try is up
		in.WriteString("0000-000" + string(rune('0'+i)) + "\n")
		in.Flush()
	}
	r.waitScreen(t, "locked for the rest of this grant")
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("locked console still served")
	}
	// Even the right code is refused now.
	if ok, left := r.c.check("1234-5678"); ok || left != 0 {
		t.Errorf("right code after the lock: %v %d", ok, left)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reports) != MaxCodeTries || r.reports[len(r.reports)-1] != "rescue.console_refused:0" {
		t.Errorf("reports %v", r.reports)
	}
}
