package sshd

import (
	"bufio"
	"context"
	"crypto/ed25519"
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
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/keys/authkeys"

	"golang.org/x/crypto/ssh"
)

type rig struct {
	addr                    *net.TCPAddr
	dir, auth, other, staff string
	authFP, staffFP         string
	staffDone               chan struct{}
	mu                      sync.Mutex
	logins                  []string
	refused                 []string
	ended                   int
	waiting                 chan struct{} // a "wait" session has begun
}

// until waits (10 s at most) for cond, checked under r.mu.
func (r *rig) until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("after 10 s, still not %s", what)
		}
	}
}

func keygen(t *testing.T, path string) ssh.PublicKey {
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(path + ".pub")
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func start(t *testing.T) *rig {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	hk, _ := ssh.NewSignerFromKey(priv)
	return startWith(t, hk)
}

func startWith(t *testing.T, hk ssh.Signer) *rig {
	r := &rig{dir: t.TempDir()}
	r.auth, r.other, r.staff = filepath.Join(r.dir, "auth"), filepath.Join(r.dir, "other"), filepath.Join(r.dir, "staff")
	authPub := keygen(t, r.auth)
	keygen(t, r.other)
	staffPub := keygen(t, r.staff)
	r.authFP, r.staffFP = ssh.FingerprintSHA256(authPub), ssh.FingerprintSHA256(staffPub)
	r.staffDone, r.waiting = make(chan struct{}), make(chan struct{}, 8)
	s := &Server{HostKey: hk, Authorized: []authkeys.Key{{PublicKey: authPub}}, LoginTimeout: time.Second, Log: slog.New(slog.DiscardHandler),
		Staff: staffPub, StaffDone: r.staffDone,
		OnLogin: func(_ context.Context, role, user, fp, _ string) error {
			r.mu.Lock()
			r.logins = append(r.logins, role+" "+user+" "+fp)
			r.mu.Unlock()
			return nil
		},
		OnRefused: func(fps []string, _ string) {
			r.mu.Lock()
			r.refused = append(r.refused, fps...)
			r.mu.Unlock()
		},
		Session: func(ctx context.Context, q *Request) int {
			if q.Command == "wait" {
				r.waiting <- struct{}{}
				<-ctx.Done()
				return 0
			}
			if q.Command != "unlock" {
				fmt.Fprintf(q.Stderr, "unknown command %q\n", q.Command)
				return 127
			}
			line, _ := bufio.NewReader(q.RW).ReadString('\n')
			fmt.Fprintf(q.RW, "actor=%s role=%s pty=%v got=%s", q.Actor, q.Role, q.PTY, line)
			go func() {
				<-ctx.Done() // the session's end is signalled, as the hand-off needs
				r.mu.Lock()
				r.ended++
				r.mu.Unlock()
			}()
			return 7
		}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().(*net.TCPAddr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return r
}

func (r *rig) ssh(stdin string, args ...string) (string, int) {
	return r.sshStrict([]string{"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"}, stdin, args...)
}

// sshStrict runs the OpenSSH client with the given host-key options.
func (r *rig) sshStrict(hostKeyOpts []string, stdin string, args ...string) (string, int) {
	base := append([]string{"-p", fmt.Sprint(r.addr.Port), "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
		"-o", "ConnectTimeout=10"}, hostKeyOpts...)
	cmd := exec.Command("ssh", append(base, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	return string(out), code
}

func TestOpenSSHClient(t *testing.T) {
	r := start(t)
	out, code := r.ssh("hello\n", "-i", r.auth, "root@127.0.0.1", "unlock")
	if code != 7 || !strings.Contains(out, "actor="+r.authFP+" role=customer pty=false got=hello") {
		t.Fatalf("unlock: exit %d\n%s", code, out)
	}

	// CVE-2024-45337: a key offered but not authorised must not become the
	// identity; the one that authenticated does.
	out, code = r.ssh("x\n", "-i", r.other, "-i", r.auth, "root@127.0.0.1", "unlock")
	if code != 7 || !strings.Contains(out, "actor="+r.authFP) {
		t.Fatalf("two keys offered: exit %d\n%s", code, out)
	}

	if out, code = r.ssh("", "-i", r.other, "root@127.0.0.1", "unlock"); code != 255 {
		t.Errorf("unauthorised key: exit %d, want 255\n%s", code, out)
	}
	if out, code = r.ssh("", "-o", "PreferredAuthentications=password,keyboard-interactive", "root@127.0.0.1"); code != 255 {
		t.Errorf("password login: exit %d, want 255\n%s", code, out)
	}
	if out, code = r.ssh("", "-i", r.auth, "root@127.0.0.1", "cat /etc/shadow"); code != 127 || !strings.Contains(out, `unknown command "cat /etc/shadow"`) {
		t.Errorf("other command: exit %d\n%s", code, out)
	}
	r.until(t, "2 sessions signalled their end", func() bool { return r.ended >= 2 })
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended != 2 {
		t.Errorf("%d sessions signalled their end, want 2", r.ended)
	}
	if len(r.logins) != 3 {
		t.Errorf("logins recorded = %v, want 3 (the refused ones are not logins)", r.logins)
	}
	for _, l := range r.logins {
		if l != "customer root "+r.authFP {
			t.Errorf("login recorded as %q", l)
		}
	}
}

// TestStaffKey: the grant's key logs in as staff while the grant lasts; its
// end closes the connection and refuses the key from then on, and a refused
// key is reported.
func TestStaffKey(t *testing.T) {
	r := start(t)
	out, code := r.ssh("hi\n", "-i", r.staff, "root@127.0.0.1", "unlock")
	if code != 7 || !strings.Contains(out, "role=staff") || !strings.Contains(out, "actor="+r.staffFP) {
		t.Fatalf("staff login: exit %d\n%s", code, out)
	}
	waiting := make(chan int)
	go func() { _, code := r.ssh("", "-i", r.staff, "root@127.0.0.1", "wait"); waiting <- code }()
	select {
	case <-r.waiting: // the staff session is open
	case <-time.After(10 * time.Second):
		t.Fatal("the staff session did not begin")
	}
	close(r.staffDone)
	select {
	case code := <-waiting:
		if code == 0 {
			t.Errorf("session at the grant's end exited 0, want the connection cut")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the grant's end did not close the staff connection")
	}
	if out, code = r.ssh("", "-i", r.staff, "root@127.0.0.1", "unlock"); code != 255 {
		t.Errorf("staff key after the grant: exit %d\n%s", code, out)
	}
	if _, code = r.ssh("x\n", "-i", r.auth, "root@127.0.0.1", "unlock"); code != 7 {
		t.Errorf("customer after the grant: exit %d", code)
	}
	r.ssh("", "-i", r.other, "root@127.0.0.1", "unlock")
	r.until(t, "2 refusals reported", func() bool { return len(r.refused) >= 2 })
	r.mu.Lock()
	defer r.mu.Unlock()
	want := []string{r.staffFP, ssh.FingerprintSHA256(mustPub(t, r.other))}
	if fmt.Sprint(r.refused) != fmt.Sprint(want) {
		t.Errorf("refused keys reported %v, want %v", r.refused, want)
	}
}

func mustPub(t *testing.T, path string) ssh.PublicKey {
	b, _ := os.ReadFile(path + ".pub")
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestLoginDeadline(t *testing.T) {
	r := start(t)
	c, err := net.Dial("tcp", r.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	_, err = io.Copy(io.Discard, c) // read the banner, then wait for the close
	if err != nil {
		t.Fatalf("connection not closed by the server: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("idle pre-auth connection held for %s, want about the 1 s login timeout", d)
	}
}

// TestOnlyModernAlgorithms: the OpenSSH client gets in with its defaults
// and with each algorithm the server offers, and is turned away when it
// insists on one that x/crypto would otherwise accept (the NIST curves,
// group14 with SHA-1, CTR and CBC ciphers).
func TestOnlyModernAlgorithms(t *testing.T) {
	r := start(t)
	login := func(opts ...string) (string, int) {
		args := []string{"-i", r.auth}
		for _, o := range opts {
			args = append(args, "-o", o)
		}
		return r.ssh("x\n", append(args, "-v", "root@127.0.0.1", "unlock")...)
	}
	if out, code := login(); code != 7 {
		t.Fatalf("default client: exit %d\n%s", code, out)
	}
	for _, ok := range []string{"KexAlgorithms=curve25519-sha256", "Ciphers=aes128-gcm@openssh.com", "Ciphers=aes256-gcm@openssh.com",
		"Ciphers=chacha20-poly1305@openssh.com"} {
		if out, code := login(ok); code != 7 {
			t.Errorf("%s: exit %d\n%s", ok, code, out)
		}
	}
	for _, weak := range []string{"KexAlgorithms=ecdh-sha2-nistp256", "KexAlgorithms=ecdh-sha2-nistp521", "KexAlgorithms=diffie-hellman-group14-sha1",
		"KexAlgorithms=diffie-hellman-group14-sha256", "Ciphers=aes128-ctr", "Ciphers=aes256-cbc"} {
		if out, code := login(weak); code != 255 || !strings.Contains(out, "no matching") {
			t.Errorf("%s: exit %d, want a refusal for no matching algorithm\n%q", weak, code, out)
		}
	}
}

// TestSSHAudit: ssh-audit (Debian's) finds nothing to fail or warn about
// in the unlock server, but algorithms newer than it knows.
func TestSSHAudit(t *testing.T) {
	if _, err := exec.LookPath("ssh-audit"); err != nil {
		t.Fatal("ssh-audit is required (make deps)")
	}
	r := start(t)
	out, _ := exec.Command("ssh-audit", "-n", "-b", "-p", fmt.Sprint(r.addr.Port), "127.0.0.1").CombinedOutput()
	var bad []string
	for _, l := range strings.Split(string(out), "\n") {
		if (strings.Contains(l, "[fail]") || strings.Contains(l, "[warn]")) && !strings.Contains(l, "unknown algorithm") {
			bad = append(bad, strings.TrimSpace(l))
		}
	}
	if !strings.Contains(string(out), "curve25519-sha256") {
		t.Fatalf("ssh-audit did not audit the server:\n%s", out)
	}
	if len(bad) > 0 {
		t.Errorf("ssh-audit found %d problems:\n%s", len(bad), strings.Join(bad, "\n"))
	}
}

// TestConnectionCapReportedPerBurst: connections over the limits are
// turned away with a line saying why, and reported twice per burst (its
// start, then its count), not once each and not silently.
func TestConnectionCapReportedPerBurst(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	hk, _ := ssh.NewSignerFromKey(priv)
	var mu sync.Mutex
	var reports []int
	s := &Server{HostKey: hk, LoginTimeout: 5 * time.Second, Limits: Limits{PerSource: 1}, BurstQuiet: 200 * time.Millisecond, Log: slog.New(slog.DiscardHandler),
		OnCapped: func(n int, _ string) { mu.Lock(); reports = append(reports, n); mu.Unlock() },
		Session:  func(context.Context, *Request) int { return 0 }}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	hold, err := net.Dial("tcp", ln.Addr().String()) // takes the one slot until its login times out
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	if _, err := bufio.NewReader(hold).ReadString('\n'); err != nil { // the server's version line: the slot is taken
		t.Fatal(err)
	}
	for range 6 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		said, _ := io.ReadAll(c)
		if strings.Contains(string(said), "SSH-2.0") || !strings.Contains(string(said), "too many unfinished logins from your address") {
			t.Errorf("a connection over the cap was answered %q", said)
		}
		c.Close()
	}
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		got := fmt.Sprint(reports)
		mu.Unlock()
		if got == "[1 6]" {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("reports %s, want [1 6]: the burst's start, then its count", got)
		}
	}
}

// TestSessionsPerConnection: one connection opens at most MaxSessions
// sessions at once (parallel channels were parallel passphrase guesses);
// the next is refused with a reason, and a slot freed is usable again.
func TestSessionsPerConnection(t *testing.T) {
	r := start(t)
	b, err := os.ReadFile(r.auth)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", r.addr.String(), &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}) // the host key is not what this test checks
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var open []ssh.Channel
	for range MaxSessions {
		ch, reqs, err := c.OpenChannel("session", nil)
		if err != nil {
			t.Fatalf("session %d: %v", len(open)+1, err)
		}
		go ssh.DiscardRequests(reqs)
		open = append(open, ch)
	}
	_, _, err = c.OpenChannel("session", nil)
	var oce *ssh.OpenChannelError
	if !errors.As(err, &oce) || oce.Reason != ssh.ResourceShortage || !strings.Contains(oce.Message, "at most") {
		t.Fatalf("session %d: %v, want refused for resource shortage", MaxSessions+1, err)
	}
	open[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ch, reqs, err := c.OpenChannel("session", nil)
		if err == nil {
			go ssh.DiscardRequests(reqs)
			ch.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a freed session slot stayed taken: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAdmission: the limits, decided: per source, overall, logged in, and
// the penalty of a source whose connections time out idle.
func TestAdmission(t *testing.T) {
	a := newAdmission(Limits{MaxStartups: 3, PerSource: 2, MaxConns: 1, Penalty: 10 * time.Second, MaxPenalty: 25 * time.Second})
	x, y, z := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	now := time.Unix(1000, 0)
	steps := []struct {
		src  netip.Addr
		ok   bool
		why  string
		note string
	}{
		{x, true, "", "first from x"},
		{x, true, "", "second from x"},
		{x, false, refusedPerSource, "third from x"},
		{y, true, "", "y, while x holds two"},
		{z, false, refusedStartups, "overall full"},
	}
	for _, s := range steps {
		if ok, why := a.start(s.src, now); ok != s.ok || why != s.why {
			t.Errorf("%s: %v %q, want %v %q", s.note, ok, why, s.ok, s.why)
		}
	}
	// x's two time out idle: 20 s of penalty, capped at 25.
	a.done(x, false, true, now)
	a.done(x, false, true, now)
	if ok, why := a.start(x, now.Add(19*time.Second)); ok || why != refusedPenalty {
		t.Errorf("x during its penalty: %v %q", ok, why)
	}
	if ok, _ := a.start(z, now); !ok {
		t.Error("z once x's places are free")
	}
	if ok, _ := a.start(x, now.Add(21*time.Second)); !ok {
		t.Error("x after its penalty")
	}
	// Logged in: at most MaxConns; the next is refused, and freed by end.
	if !a.done(y, true, false, now) {
		t.Error("y's login")
	}
	if a.done(z, true, false, now) {
		t.Error("a second login over MaxConns")
	}
	a.end()
	if a.pending[y] != 0 || a.total != 1 || a.authed != 0 {
		t.Errorf("counts after all: pending %v total %d authed %d", a.pending, a.total, a.authed)
	}
}

// TestIdleConnectionsDoNotKeepTheCustomerOut: another machine holds 200
// idle TCP connections to the SSH port, reopening each as soon as it is
// closed; the customer, from another address, still gets in every time.
func TestIdleConnectionsDoNotKeepTheCustomerOut(t *testing.T) {
	r := start(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var opened, refusedLines atomic.Int64
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: time.Second}
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				c, err := d.DialContext(ctx, "tcp", r.addr.String())
				if err != nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				opened.Add(1)
				// Idle: read whatever comes until the server closes it.
				b, _ := io.ReadAll(c)
				if strings.HasPrefix(string(b), "lifeboat: ") {
					refusedLines.Add(1)
				}
				c.Close()
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	time.Sleep(500 * time.Millisecond) // the flood is on
	for i := range 3 {
		start := time.Now()
		out, code := r.ssh("hello\n", "-i", r.auth, "root@127.0.0.1", "unlock")
		if code != 7 || !strings.Contains(out, "got=hello") {
			t.Fatalf("customer try %d during the flood: exit %d\n%s", i+1, code, out)
		}
		t.Logf("customer try %d during 200 idle connections: logged in and served in %s", i+1, time.Since(start).Round(time.Millisecond))
	}
	if opened.Load() < 200 || refusedLines.Load() == 0 {
		t.Errorf("the flood: %d connections opened, %d refused with a reason", opened.Load(), refusedLines.Load())
	}
}

// TestFromOptionHonoured: a customer key with from= logs in only from the
// addresses it names.
func TestFromOptionHonoured(t *testing.T) {
	_, hpriv, _ := ed25519.GenerateKey(rand.Reader)
	hk, _ := ssh.NewSignerFromKey(hpriv)
	_, cpriv, _ := ed25519.GenerateKey(rand.Reader)
	ck, _ := ssh.NewSignerFromKey(cpriv)
	for _, tc := range []struct {
		from string
		ok   bool
	}{{"10.9.9.9", false}, {"127.0.0.0/8,!127.0.0.2", true}, {"!127.0.0.1,127.*", false}} {
		line := `from="` + tc.from + `" ` + string(ssh.MarshalAuthorizedKey(ck.PublicKey()))
		ak, err := authkeys.Parse(line)
		if err != nil {
			t.Fatal(err)
		}
		s := &Server{HostKey: hk, Authorized: []authkeys.Key{ak}, LoginTimeout: 5 * time.Second, Log: slog.New(slog.DiscardHandler),
			OnLogin: func(context.Context, string, string, string, string) error { return nil },
			Session: func(context.Context, *Request) int { return 0 }}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Serve(ctx, ln) }()
		c, err := ssh.Dial("tcp", ln.Addr().String(), &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(ck)},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second}) // the host key is not what this test checks
		if (err == nil) != tc.ok {
			t.Errorf("from=%q, login from 127.0.0.1: %v, want ok %v", tc.from, err, tc.ok)
		}
		if c != nil {
			c.Close()
		}
		cancel()
		<-done
	}
}
