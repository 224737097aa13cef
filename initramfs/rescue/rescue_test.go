package rescue

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-boot/lifeboat/initramfs/rescue/shadow"
	"github.com/lifeboat-boot/lifeboat/initramfs/sshd"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// server is a Sink that fails now and then, as a flaky network would.
type server struct {
	mu    sync.Mutex
	data  []byte
	calls int
}

func (s *server) sink(_ context.Context, off int64, p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls%3 == 0 {
		return errors.New("network down")
	}
	if off != int64(len(s.data)) {
		return fmt.Errorf("offset %d, have %d", off, len(s.data))
	}
	s.data = append(s.data, p...)
	return nil
}

func TestRecorderStreamsAsciicast(t *testing.T) {
	srv := &server{}
	rec := &Recorder{Sink: srv.sink, FlushEvery: 5 * time.Millisecond}
	rec.Start(context.Background(), Header{Width: 100, Height: 30, Title: "grant g1"})
	var want strings.Builder
	for i := range 200 {
		s := fmt.Sprintf("line %d \x1b[1mbold\x1b[0m\r\n", i)
		want.WriteString(s)
		if _, err := rec.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
		if i == 100 {
			_ = rec.Resize(120, 40)
		}
		if i%50 == 0 {
			time.Sleep(20 * time.Millisecond) // let pieces go out mid-session
		}
	}
	n, err := rec.Close(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if n != int64(len(srv.data)) || srv.calls < 3 {
		t.Errorf("sent %d, server has %d after %d calls", n, len(srv.data), srv.calls)
	}
	// The digest the end record carries is of what the server holds.
	if sum := sha256.Sum256(srv.data); rec.Sum() != hex.EncodeToString(sum[:]) {
		t.Errorf("Sum %s, the server's bytes hash to %x", rec.Sum(), sum)
	}
	h, out, resizes := parseCast(t, srv.data)
	if h.Version != 2 || h.Width != 100 || h.Height != 30 || h.Title != "grant g1" {
		t.Errorf("header %+v", h)
	}
	if out != want.String() {
		t.Errorf("replayed output differs:\n%q\nwant\n%q", out, want.String())
	}
	if fmt.Sprint(resizes) != "[120x40]" {
		t.Errorf("resizes %v", resizes)
	}
	if _, err := rec.Write([]byte("late")); err == nil {
		t.Error("write after Close accepted")
	}
}

func TestRecorderRefusesWhenServerGone(t *testing.T) {
	rec := &Recorder{Sink: func(context.Context, int64, []byte) error { return errors.New("down") }, FlushEvery: time.Millisecond, MaxUnsent: 1024}
	rec.Start(context.Background(), Header{Width: 80, Height: 24})
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = rec.Write(bytes.Repeat([]byte("x"), 100))
	}
	if !errors.Is(err, ErrUnrecorded) {
		t.Fatalf("writes kept being accepted with the server gone: %v", err)
	}
	if _, err := rec.Close(50 * time.Millisecond); !errors.Is(err, ErrUnrecorded) {
		t.Errorf("Close = %v", err)
	}
}

func parseCast(t *testing.T, data []byte) (Header, string, []string) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	var h Header
	if !sc.Scan() || json.Unmarshal(sc.Bytes(), &h) != nil {
		t.Fatalf("no header in %q", data)
	}
	var out strings.Builder
	var resizes []string
	last := 0.0
	for sc.Scan() {
		var ev []any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || len(ev) != 3 {
			t.Fatalf("bad event line %q: %v", sc.Text(), err)
		}
		ts := ev[0].(float64)
		if ts < last {
			t.Errorf("time goes back: %v after %v", ts, last)
		}
		last = ts
		switch ev[1] {
		case "o":
			out.WriteString(ev[2].(string))
		case "r":
			resizes = append(resizes, ev[2].(string))
		}
	}
	return h, out.String(), resizes
}

// pipeRW is the client's side of a session as the handler sees it.
type pipeRW struct {
	io.Reader
	io.Writer
}

func TestShellRecordsOutputNotInput(t *testing.T) {
	ShellPath = "/bin/sh"
	srv := &server{}
	rec := &Recorder{Sink: srv.sink, FlushEvery: 5 * time.Millisecond}
	rec.Start(context.Background(), Header{Width: 80, Height: 24})
	inR, inW := io.Pipe()
	var client bytes.Buffer
	var cmu sync.Mutex
	q := &sshd.Request{RW: pipeRW{inR, writerFunc(func(p []byte) (int, error) { cmu.Lock(); defer cmu.Unlock(); return client.Write(p) })},
		Stderr: io.Discard, PTY: true, Term: "xterm", Size: sshd.WinSize{Cols: 80, Rows: 24}}
	done := make(chan int)
	go func() { done <- Shell(context.Background(), q, rec, "banner: grant g1\r\n") }()
	seen := func(what string) {
		t.Helper()
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			cmu.Lock()
			ok := strings.Contains(client.String(), what)
			cmu.Unlock()
			if ok {
				return
			}
			if time.Now().After(end) {
				t.Fatalf("the client never saw %q", what)
			}
		}
	}
	// A password typed at a prompt with echo off must not be recorded. The
	// secret is typed only once echo is off (the shell says so: its echoed
	// command line reads NO""ECHO, not NOECHO).
	fmt.Fprint(inW, "stty -echo; echo NO\"\"ECHO; read secret; stty echo; echo got-${#secret}-chars\n")
	seen("NOECHO")
	fmt.Fprint(inW, "hunter2-secret\n")
	seen("got-14-chars")
	fmt.Fprint(inW, "exit 3\n")
	select {
	case code := <-done:
		if code != 3 {
			t.Errorf("exit %d, want 3", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shell did not end")
	}
	if _, err := rec.Close(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	_, out, _ := parseCast(t, srv.data)
	srv.mu.Unlock()
	if !strings.Contains(out, "banner: grant g1") || !strings.Contains(out, "got-14-chars") {
		t.Errorf("recording lacks the session's output:\n%q", out)
	}
	if strings.Contains(out, "hunter2") {
		t.Errorf("typed secret in the recording:\n%q", out)
	}
	cmu.Lock()
	if !strings.Contains(client.String(), "got-14-chars") {
		t.Errorf("client did not see the output: %q", client.String())
	}
	cmu.Unlock()
}

func TestShellEndsWithContext(t *testing.T) {
	ShellPath = "/bin/sh"
	rec := &Recorder{Sink: (&server{}).sink}
	rec.Start(context.Background(), Header{Width: 80, Height: 24})
	inR, _ := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	var once sync.Once
	q := &sshd.Request{RW: pipeRW{inR, writerFunc(func(p []byte) (int, error) { once.Do(func() { close(started) }); return len(p), nil })},
		Stderr: io.Discard}
	done := make(chan int)
	go func() { done <- Shell(ctx, q, rec, "banner\r\n") }()
	select {
	case <-started: // the banner is out: the shell runs
	case <-time.After(10 * time.Second):
		t.Fatal("the shell did not start")
	}
	cancel() // the grant ended
	select {
	case code := <-done:
		if code == 0 {
			t.Errorf("killed shell exited 0")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the shell outlived its grant")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestResetPassword(t *testing.T) {
	dir := t.TempDir()
	_ = os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	orig := "root:*:19000:0:99999:7:::\nalice:$6$old$hash:19001:0:99999:7:::\n"
	_ = os.WriteFile(filepath.Join(dir, "etc", "shadow"), []byte(orig), 0o640)
	_ = os.WriteFile(filepath.Join(dir, "etc", "login.defs"), []byte("ENCRYPT_METHOD SHA512\n"), 0o644)
	var reported []map[string]string
	r := &Reset{User: "alice",
		FindRoot: func() (*Root, error) { return &Root{Device: "/dev/test", Dir: dir, Name: "Test OS"}, nil },
		Report: func(_ context.Context, code audit.Code, d map[string]string) error {
			if code != audit.RescuePasswordReset {
				t.Errorf("reported %s", code)
			}
			reported = append(reported, d)
			return nil
		}}
	var out bytes.Buffer
	code := r.Run(context.Background(), pipeRW{strings.NewReader("typed-password-1\n"), &out}, false)
	if code != ExitOK {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	got, _ := os.ReadFile(filepath.Join(dir, "etc", "shadow"))
	lines := strings.Split(string(got), "\n")
	fields := strings.Split(lines[1], ":")
	if ok, _ := shadow.Verify(fields[1], []byte("typed-password-1")); !ok || !strings.HasPrefix(fields[1], "$6$") {
		t.Errorf("new hash %q does not verify with SHA-512 crypt", fields[1])
	}
	if lines[0] != "root:*:19000:0:99999:7:::" || strings.Join(fields[2:], ":") != "19001:0:99999:7:::" {
		t.Errorf("other bytes changed:\n%s", got)
	}
	if len(reported) != 1 || reported[0]["user"] != "alice" || len(reported[0]["shadow_after"]) != 64 {
		t.Errorf("reported %v", reported)
	}
	for _, v := range reported[0] {
		if strings.Contains(v, "$6$") || strings.Contains(v, "typed-password") {
			t.Errorf("secret in the audit record: %v", reported[0])
		}
	}
	if strings.Contains(out.String(), "typed-password") {
		t.Errorf("typed password echoed:\n%s", out.String())
	}

	// Generated: shown once.
	out.Reset()
	if code := r.Run(context.Background(), pipeRW{strings.NewReader("\n"), &out}, false); code != ExitOK {
		t.Fatalf("generated: exit %d\n%s", code, out.String())
	}
	i := strings.Index(out.String(), "shown this once")
	if i < 0 {
		t.Fatalf("no generated password shown:\n%s", out.String())
	}

	// Refused: server did not record it, so nothing is written.
	before, _ := os.ReadFile(filepath.Join(dir, "etc", "shadow"))
	r.Report = func(context.Context, audit.Code, map[string]string) error { return errors.New("server down") }
	out.Reset()
	if code := r.Run(context.Background(), pipeRW{strings.NewReader("another-password\n"), &out}, false); code != ExitFailed {
		t.Errorf("unrecorded reset: exit %d", code)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "etc", "shadow")); !bytes.Equal(before, after) {
		t.Error("file written although the server did not record the reset")
	}

	// Encrypted root: refused, with what to do.
	var codes []audit.Code
	r.Report = func(_ context.Context, c audit.Code, _ map[string]string) error { codes = append(codes, c); return nil }
	r.FindRoot = func() (*Root, error) { return nil, fmt.Errorf("%w (/dev/vda2)", ErrEncrypted) }
	out.Reset()
	if code := r.Run(context.Background(), pipeRW{strings.NewReader("x\n"), &out}, false); code != ExitEncrypted || !strings.Contains(out.String(), "ask the customer") {
		t.Errorf("encrypted: exit %d\n%s", code, out.String())
	}
	if fmt.Sprint(codes) != fmt.Sprint([]audit.Code{audit.RescueResetRefused}) {
		t.Errorf("reported %v", codes)
	}
	for _, u := range []string{"", "../x", "a:b", "Robert'); DROP"} {
		r.User = u
		if code := r.Run(context.Background(), pipeRW{strings.NewReader(""), io.Discard}, false); code != ExitUsage {
			t.Errorf("user %q: exit %d", u, code)
		}
	}
}

type unrecorded struct{}

func (unrecorded) Write(p []byte) (int, error) { return len(p), nil }
func (unrecorded) Resize(uint32, uint32) error { return nil }

// BenchmarkShellOutput measures a shell printing 16 MiB of text through the
// pty to the client, recorded (asciicast events streamed to a sink) and not:
// the recording's cost on shell throughput, as the person at the client
// sees it (the end of the recording is sent after the session, untimed).
func BenchmarkShellOutput(b *testing.B) {
	ShellPath = "/bin/sh"
	file := filepath.Join(b.TempDir(), "text")
	line := []byte(strings.Repeat("lifeboat rescue shell output ", 3) + "\n")
	if err := os.WriteFile(file, bytes.Repeat(line, (16<<20)/len(line)), 0o644); err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, rec func() (Recording, func())) {
		b.SetBytes(16 << 20)
		for range b.N {
			r, done := rec()
			inR, inW := io.Pipe()
			q := &sshd.Request{RW: pipeRW{inR, io.Discard}, Stderr: io.Discard, PTY: true}
			go fmt.Fprintf(inW, "cat %s; exit 0\n", file)
			if code := Shell(context.Background(), q, r, ""); code != 0 {
				b.Fatalf("exit %d", code)
			}
			// The shell's output has reached the client: what the
			// person at it waits for. The rest of the recording is
			// sent after the session.
			b.StopTimer()
			done()
			b.StartTimer()
			inW.Close()
		}
	}
	b.Run("unrecorded", func(b *testing.B) { run(b, func() (Recording, func()) { return unrecorded{}, func() {} }) })
	b.Run("recorded", func(b *testing.B) {
		run(b, func() (Recording, func()) {
			var n int64
			rec := &Recorder{Sink: func(_ context.Context, _ int64, p []byte) error { n += int64(len(p)); return nil }, MaxUnsent: 64 << 20}
			rec.Start(context.Background(), Header{Width: 80, Height: 24})
			return rec, func() {
				if _, err := rec.Close(10 * time.Second); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// The end of the client's input ends the shell, as Ctrl-D would.
func TestShellEndsAtEndOfInput(t *testing.T) {
	ShellPath = "/bin/sh"
	rec := &Recorder{Sink: (&server{}).sink}
	rec.Start(context.Background(), Header{Width: 80, Height: 24})
	q := &sshd.Request{RW: pipeRW{strings.NewReader("echo hi\n"), io.Discard}, Stderr: io.Discard}
	done := make(chan int)
	go func() { done <- Shell(context.Background(), q, rec, "") }()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the shell kept waiting after the input ended")
	}
}

// FuzzEventEncoding: whatever a shell prints, the event line is valid JSON
// and decodes to the output (invalid UTF-8 as U+FFFD, as encoding/json has it).
func FuzzEventEncoding(f *testing.F) {
	f.Add([]byte("plain \x1b[1mbold\x1b[0m \"q\" \\ \t\r\n"))
	f.Add([]byte{0xff, 0xfe, 'a', 0xe2, 0x82, 0x00, 0x7f})
	f.Add([]byte("ünïcödé \u2028 🚑"))
	f.Fuzz(func(t *testing.T, data []byte) {
		line := appendEvent(nil, 1500*time.Millisecond, "o", data)
		var ev []any
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		want, _ := json.Marshal(string(data))
		var w string
		_ = json.Unmarshal(want, &w)
		if len(ev) != 3 || ev[0].(float64) != 1.5 || ev[1] != "o" || ev[2] != w {
			t.Fatalf("%q decodes to %v, want %q", line, ev, w)
		}
	})
}
