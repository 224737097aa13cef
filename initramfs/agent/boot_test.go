package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/initramfs/rescue"
	"github.com/lifeboat-boot/lifeboat/initramfs/sshd"
	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/store/kind"
	"github.com/lifeboat-boot/lifeboat/unlock"
	"github.com/lifeboat-boot/lifeboat/unlock/unlocktest"
)

// fakeServer is lifeboatd's agent API as the agent sees it: it keeps the
// reports and answers grant polls with state.
type fakeServer struct {
	mu      sync.Mutex
	reports []agentapi.EventReport
	state   atomic.Value // string
	// pieceDelay is how long a recording piece takes to store.
	pieceDelay time.Duration
	pieces     int
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == agentapi.EventsPath:
		var ev agentapi.EventReport
		_ = json.NewDecoder(r.Body).Decode(&ev)
		f.mu.Lock()
		defer f.mu.Unlock()
		// As lifeboatd: once the session's end is recorded, the boot's
		// token takes no more reports.
		for _, r := range f.reports {
			if r.Code == audit.RescueEnd {
				http.Error(w, "this boot has ended", http.StatusGone)
				return
			}
		}
		f.reports = append(f.reports, ev)
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(r.URL.Path, agentapi.RecordingsPath):
		time.Sleep(f.pieceDelay)
		f.mu.Lock()
		f.pieces++
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(r.URL.Path, agentapi.GrantsPath):
		_ = json.NewEncoder(w).Encode(agentapi.GrantStatus{State: kind.GrantState(f.state.Load().(string)), Left: time.Hour})
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeServer) codes() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.reports {
		out = append(out, string(r.Code)+fmt.Sprint(r.Details["reason"]))
	}
	return strings.Join(out, " ")
}

// rw is a session's connection: input from Reader, output kept. Only
// Read and Write: an embedded bytes.Buffer would lend it WriteTo, and
// io.Copy from it would read the output back as input.
type rw struct {
	Reader io.Reader
	mu     sync.Mutex
	out    bytes.Buffer
}

func (p *rw) Write(b []byte) (int, error) { p.mu.Lock(); defer p.mu.Unlock(); return p.out.Write(b) }
func (p *rw) Read(b []byte) (int, error)  { return p.Reader.Read(b) }
func (p *rw) String() string              { p.mu.Lock(); defer p.mu.Unlock(); return p.out.String() }

// machine records what the boot did to the machine.
type machine struct {
	handoffs, inPlace, jumps, reboots atomic.Int32
	quietFirst                        atomic.Int32 // Quiesce ran with no jump made yet
	srv                               *sshd.Server
}

func newBoot(t *testing.T, mode kind.Mode, grant *agentapi.RescueGrant, vols func() ([]unlock.Volume, error)) (*Boot, *fakeServer, *machine) {
	fs := &fakeServer{}
	fs.state.Store("active")
	srv := httptest.NewServer(fs)
	t.Cleanup(srv.Close)
	m := &machine{}
	a := &Agent{Params: &agentapi.BootParams{Host: "web1", Boot: "b-1"}, Client: &agentapi.Client{Base: srv.URL},
		Config: &agentapi.CheckinResponse{Host: "web1", Boot: "b-1", Mode: mode, ReportToken: "rt", Grant: grant,
			Unlock: agentapi.UnlockPolicy{MaxTries: 3, Lockout: time.Minute}}}
	b := &Boot{Agent: a, IP: net.IPv4(10, 0, 0, 5), Console: io.Discard, Log: slog.New(slog.DiscardHandler), Volumes: vols,
		Handoff: func(unlock.Reporter, func() *unlock.BootRecord) unlock.Handoff {
			return func(_ context.Context, _ []*unlock.Unsealed, out io.Writer) (func(), error) {
				m.handoffs.Add(1)
				fmt.Fprintln(out, "Booting the OS")
				return func() { m.jumps.Add(1) }, nil
			}
		},
		InPlace: func(*agentapi.RescueGrant) unlock.Handoff {
			return func(context.Context, []*unlock.Unsealed, io.Writer) (func(), error) {
				m.inPlace.Add(1)
				return nil, nil
			}
		},
		FindRoot: func() (*rescue.Root, error) { return nil, fmt.Errorf("no root in this test") },
		Reboot:   func() { m.reboots.Add(1) },
		Quiesce: func() {
			if m.jumps.Load() == 0 {
				m.quietFirst.Add(1)
			}
		},
		JumpWait: 50 * time.Millisecond, RebootWait: time.Millisecond, GrantPoll: 20 * time.Millisecond,
	}
	disks := make(chan struct{})
	close(disks)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	hk, _ := ssh.NewSignerFromKey(priv)
	ssrv, err := b.Server(context.Background(), hk, disks)
	if err != nil {
		t.Fatal(err)
	}
	m.srv = ssrv
	return b, fs, m
}

func grant(scope kind.Scope) *agentapi.RescueGrant {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, _ := ssh.NewSignerFromKey(priv)
	return &agentapi.RescueGrant{ID: "g-1", Scope: scope, Staff: "bob", Ticket: "T-1", Until: time.Now().Add(time.Hour), Left: time.Hour,
		StaffKey: string(ssh.MarshalAuthorizedKey(s.PublicKey()))}
}

// TestBootSessions: what each SSH session runs, and what the machine is
// made to do after it.
func TestBootSessions(t *testing.T) {
	dir := t.TempDir()
	img := unlocktest.LUKSImage(t, dir, "vdb.img", "right", append([]string{"--type", "luks2", "--pbkdf", "argon2id"}, unlocktest.Fast...)...)
	sys, dev := unlocktest.FakeSys(t, map[string]string{"vdb": img})
	disk := func() ([]unlock.Volume, error) { return unlock.Scan(sys, dev) }
	none := func() ([]unlock.Volume, error) { return nil, nil }
	for _, tt := range []struct {
		name    string
		mode    kind.Mode
		grant   *agentapi.RescueGrant
		vols    func() ([]unlock.Volume, error)
		role    string
		command string
		stdin   string
		exit    int
		out     string // in stdout or stderr
		// what the machine was made to do
		handoffs, inPlace, jumps int32
		reports                  string
	}{
		{name: "unknown command", mode: "unlock", vols: disk, role: sshd.RoleCustomer, command: "ls", exit: 127, out: `unknown command "ls"`},
		{name: "no volumes", mode: "unlock", vols: none, role: sshd.RoleCustomer, command: "unlock", stdin: "right\n", exit: unlock.ExitNoVolume},
		{name: "wrong passphrase", mode: "unlock", vols: disk, role: sshd.RoleCustomer, command: "unlock", stdin: "wrong\n", exit: unlock.ExitWrong,
			reports: "unlock.failure"},
		{name: "unlock hands over after the session", mode: "unlock", vols: disk, role: sshd.RoleCustomer, command: "unlock", stdin: "right\n",
			out: "Booting the OS", handoffs: 1, jumps: 1, reports: "unlock.success"},
		{name: "login shell is the unlock dialog", mode: "unlock", vols: disk, role: sshd.RoleCustomer, stdin: "right\n",
			handoffs: 1, jumps: 1, reports: "unlock.success"},
		{name: "staff key in an ordinary boot", mode: "unlock", vols: disk, role: sshd.RoleStaff, command: "shell", exit: 126, out: "no rescue grant"},
		{name: "rescue boot: a script must name the grant", mode: "rescue", grant: grant("password-reset"), vols: disk, role: sshd.RoleCustomer,
			command: "unlock", stdin: "right\n", exit: unlock.ExitRefused, out: "unlock --rescue-grant g-1"},
		{name: "rescue boot opens in place, no jump", mode: "rescue", grant: grant("password-reset"), vols: disk, role: sshd.RoleCustomer,
			command: "unlock --rescue-grant g-1", stdin: "right\n", inPlace: 1, reports: "unlock.success"},
		{name: "unknown option", mode: "unlock", vols: disk, role: sshd.RoleCustomer, command: "unlock --now", exit: unlock.ExitUsage, out: "unknown option"},
		{name: "staff outside the grant's scope", mode: "rescue", grant: grant("password-reset"), vols: disk, role: sshd.RoleStaff,
			command: "shell", exit: 127, out: "not allowed under a password-reset grant"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, fs, m := newBoot(t, tt.mode, tt.grant, tt.vols)
			ctx, closed := context.WithCancel(context.Background())
			q := &rw{Reader: strings.NewReader(tt.stdin)}
			var stderr bytes.Buffer
			code := b.Session(ctx, &sshd.Request{RW: q, Stderr: &stderr, Role: tt.role, Command: tt.command, Actor: "SHA256:k"})
			closed() // the client has closed the connection
			if code != tt.exit {
				t.Errorf("exit %d, want %d\n%s%s", code, tt.exit, q.String(), stderr.String())
			}
			if !strings.Contains(q.String()+stderr.String(), tt.out) {
				t.Errorf("output lacks %q:\n%s%s", tt.out, q.String(), stderr.String())
			}
			deadline := time.Now().Add(5 * time.Second)
			for m.jumps.Load() < tt.jumps && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if m.quietFirst.Load() != tt.jumps {
				t.Errorf("the network was quieted %d times before a jump, want %d", m.quietFirst.Load(), tt.jumps)
			}
			if m.handoffs.Load() != tt.handoffs || m.inPlace.Load() != tt.inPlace || m.jumps.Load() != tt.jumps || m.reboots.Load() != 0 {
				t.Errorf("handoffs %d, in place %d, jumps %d, reboots %d; want %d, %d, %d, 0",
					m.handoffs.Load(), m.inPlace.Load(), m.jumps.Load(), m.reboots.Load(), tt.handoffs, tt.inPlace, tt.jumps)
			}
			if got := fs.codes(); got != tt.reports {
				t.Errorf("reports %q, want %q", got, tt.reports)
			}
		})
	}
}

// TestRescueEnds: a rescue session ends when the staff member says so and
// when the server revokes the grant; each time the end is reported, with
// why, and the machine restarts. A rescue boot whose grant is gone does
// not start.
func TestRescueEnds(t *testing.T) {
	t.Run("staff ends it", func(t *testing.T) {
		b, fs, m := newBoot(t, "rescue", grant("shell"), nil)
		q := &rw{Reader: strings.NewReader("")}
		if code := b.Session(context.Background(), &sshd.Request{RW: q, Stderr: io.Discard, Role: sshd.RoleStaff, Command: "end"}); code != 0 {
			t.Fatalf("end: exit %d\n%s", code, q.String())
		}
		waitEnd(t, b, m, rescue.EndStaff)
		if !strings.Contains(fs.codes(), "rescue.end"+rescue.EndStaff) {
			t.Errorf("reports %q lack the end", fs.codes())
		}
	})
	t.Run("server revokes it", func(t *testing.T) {
		b, fs, m := newBoot(t, "rescue", grant("password-reset"), nil)
		fs.state.Store("revoked")
		waitEnd(t, b, m, rescue.EndServer+": revoked")
		if !strings.Contains(fs.codes(), "rescue.end"+rescue.EndServer+": revoked") {
			t.Errorf("reports %q lack the end", fs.codes())
		}
	})
	t.Run("server revokes it under an open shell", func(t *testing.T) {
		// The restart waits for the shell the revoke closed to store its
		// last output and its end record: the customer's evidence.
		rescue.ShellPath = "/bin/sh"
		b, fs, m := newBoot(t, "rescue", grant("shell"), nil)
		fs.pieceDelay = 400 * time.Millisecond
		b.Reboot = func() { m.reboots.Add(1) }
		ctx, closeConn := context.WithCancel(context.Background())
		in, _ := io.Pipe()
		q := &rw{Reader: in}
		go b.Session(ctx, &sshd.Request{RW: q, Stderr: io.Discard, Role: sshd.RoleStaff, Command: "shell"})
		for end := time.Now().Add(10 * time.Second); !strings.Contains(fs.codes(), "rescue.shell"); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatal("the shell did not start")
			}
		}
		fs.state.Store("revoked")
		select {
		case <-m.srv.StaffDone:
			closeConn() // as the SSH server closes the staff connections
		case <-time.After(10 * time.Second):
			t.Fatal("the rescue session did not end")
		}
		for end := time.Now().Add(20 * time.Second); m.reboots.Load() == 0; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatal("no restart")
			}
		}
		if got := fs.codes(); !strings.Contains(got, "rescue.shell_end rescue.end") {
			t.Errorf("the shell's end was not recorded before the session's: %q", got)
		}
	})
	t.Run("grant gone before check-in", func(t *testing.T) {
		var console bytes.Buffer
		b := &Boot{Agent: &Agent{Params: &agentapi.BootParams{Host: "web1"}, Config: &agentapi.CheckinResponse{Mode: "rescue"}},
			Console: &console, Log: slog.New(slog.DiscardHandler)}
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		hk, _ := ssh.NewSignerFromKey(priv)
		if _, err := b.Server(context.Background(), hk, nil); err == nil || !strings.Contains(console.String(), "rebooting into the host's default mode") {
			t.Errorf("rescue boot without a grant: %v, console %q", err, console.String())
		}
	})
}

func waitEnd(t *testing.T, b *Boot, m *machine, want string) {
	t.Helper()
	select {
	case why := <-b.Ended():
		if why != want {
			t.Errorf("ended: %q, want %q", why, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the rescue session did not end")
	}
	deadline := time.Now().Add(5 * time.Second)
	for m.reboots.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if m.reboots.Load() != 1 || m.jumps.Load() != 0 {
		t.Errorf("reboots %d, jumps %d; want 1, 0", m.reboots.Load(), m.jumps.Load())
	}
}

// TestAnnounce: the console says SSH is up at once, and "ready for unlock"
// only once the disks are listed.
func TestAnnounce(t *testing.T) {
	var mu sync.Mutex
	var console bytes.Buffer
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return console.Write(p) })
	disks := make(chan struct{})
	b := &Boot{Agent: &Agent{Params: &agentapi.BootParams{Host: "web1", Boot: "b-1"}, Config: &agentapi.CheckinResponse{}},
		IP: net.IPv4(10, 0, 0, 5), Console: w, Log: slog.New(slog.DiscardHandler), disks: disks}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	hk, _ := ssh.NewSignerFromKey(priv)
	done := make(chan struct{})
	go func() { b.Announce(context.Background(), hk.PublicKey(), time.Minute); close(done) }()
	screen := func() string { mu.Lock(); defer mu.Unlock(); return console.String() }
	for end := time.Now().Add(5 * time.Second); !strings.Contains(screen(), "SSH is up"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("no word that SSH is up")
		}
	}
	if strings.Contains(screen(), "ready for unlock") {
		t.Fatalf("ready before the disks are listed:\n%s", screen())
	}
	close(disks)
	<-done
	if !strings.Contains(screen(), "web1 (boot b-1) is ready for unlock: ssh root@10.0.0.5") {
		t.Errorf("console:\n%s", screen())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
