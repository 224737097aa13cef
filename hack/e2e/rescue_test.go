//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/lifeboat-boot/lifeboat/hack/fixture"
	"github.com/lifeboat-boot/lifeboat/hack/rig"
	"github.com/lifeboat-boot/lifeboat/hack/vm"
	"github.com/lifeboat-boot/lifeboat/images"
	"github.com/lifeboat-boot/lifeboat/initramfs/rescue/shadow"
	"github.com/lifeboat-boot/lifeboat/pxe/operator/notify/notifytest"
	"github.com/lifeboat-boot/lifeboat/pxe/recordings/sealed"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/store/sqlite"
)

// The installed system's files on the rescue test disks. Every byte of
// shadow but alice's hash must survive a reset.
const (
	shadowFile = "root:$y$j9T$9yDZkbHN0rTAAwz5h8vZu1$FeaRNRDiaUD3Itbf4qmg5Sb3hnNB3I9FwwDHWajMuL/:19700:0:99999:7:::\n" +
		"daemon:*:19700:0:99999:7:::\n" +
		"alice:$6$k0Dm1m6yAqJQzq0L$sCgPGvzJ7WzY5zq8p3rS0K2tYt7Jq7Zs0lKqZ8wPAb9dA8q1t3fQ1wU0pG1cC0fOQm7xHn2xqvC0VvS6lU5eT.:19701:0:99999:7:::\n" +
		"bob:!:19702::::::\n"
	passwdFile = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/bash\n"
	loginDefs  = "# from the installed system\nENCRYPT_METHOD YESCRYPT\n"
)

var rescueHosts = []rig.Host{
	{Name: "rescue-plain", Firmware: "bios", MAC: "52:54:00:4c:42:40", IP: "10.77.0.40"},
	{Name: "rescue-enc", Firmware: "uefi", MAC: "52:54:00:4c:42:50", IP: "10.77.0.50"},
}

type rescueRig struct {
	*rig.Rig
	// The customer's own API token, and the age identity their
	// recordings are sealed to.
	custToken, ageKey string
	t                 *testing.T
	dir               string
	passphrase        string
	recv              *notifytest.Receiver
	disks             map[string]*fixture.Disk
}

// TestRescue runs the rescue grants end to end: a password reset on a plain
// root under a notify policy, on an encrypted root (refused until the
// customer unlocks, then revoked mid-session), a recorded shell approved by
// the customer, and keys without a grant refused.
func TestRescue(t *testing.T) {
	t.Parallel()
	r := setupRescue(t)

	t.Run("hosts", func(t *testing.T) {
		t.Run("plain-reset-then-shell", func(t *testing.T) { t.Parallel(); r.plainFlows(t) })
		t.Run("encrypted-reset-revoked", func(t *testing.T) { t.Parallel(); r.encryptedFlow(t) })
	})
	t.Run("audit", func(t *testing.T) {
		evs, err := sqlite.ReadEvents(r.EventLog)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := audit.Verify(evs, audit.Start()); err != nil {
			t.Errorf("the audit chain does not verify: %v", err)
		}
		for _, e := range evs {
			for k, v := range e.Details {
				if strings.Contains(v, "$y$") || strings.Contains(v, "$6$") || strings.Contains(v, "new-password") || strings.Contains(v, r.passphrase) {
					t.Errorf("secret in record %d (%s) detail %s: %q", e.Seq, e.Code, k, v)
				}
			}
		}
		log := r.ServerLog.String()
		for _, s := range []string{"new-password", r.passphrase, "$y$j9T$"} {
			if strings.Contains(log, s) {
				t.Errorf("lifeboatd's log holds %q", s)
			}
		}
	})
}

func setupRescue(t *testing.T) *rescueRig {
	root := repoRoot(t)
	r := &rescueRig{t: t, dir: t.TempDir(), passphrase: "canary-" + rig.RandHex(12), disks: map[string]*fixture.Disk{}}
	k, err := images.FetchKernel(filepath.Join(root, "build", "cache"), "linux-image-amd64")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]fixture.File{
		"etc/shadow":     {Data: []byte(shadowFile), Mode: 0o640, GID: 42},
		"etc/passwd":     {Data: []byte(passwdFile), Mode: 0o644},
		"etc/login.defs": {Data: []byte(loginDefs), Mode: 0o644},
		"etc/os-release": {Data: []byte("PRETTY_NAME=\"Lifeboat Test Linux\"\n"), Mode: 0o644},
	}
	for _, h := range rescueHosts {
		r.disks[h.Name], err = fixture.Build(fixture.Options{Kernel: k, Dir: filepath.Join(r.dir, h.Name), Passphrase: []byte(r.passphrase),
			Marker: "rescue", PBKDFMemoryKiB: 32 * 1024, PBKDFTime: 4, RootFiles: files, Plain: h.Name == "rescue-plain"})
		if err != nil {
			t.Fatal(err)
		}
	}
	r.Rig = startRig(t, rig.Options{Root: root, Dir: r.dir, Hosts: rescueHosts, API: true})
	ctx := context.Background()
	names := make([]string, len(rescueHosts))
	for i, h := range rescueHosts {
		names[i] = h.Name
	}
	r.recv = customerWebhook(t, r.Rig, names...)
	// The staff keys of the test's grants, on acme's staff list.
	var fps []string
	for _, name := range []string{"staff-plain", "staff-enc"} {
		out, err := exec.Command("ssh-keygen", "-lf", r.keygen(t, name)+".pub").Output()
		if err != nil {
			t.Fatal(err)
		}
		fps = append(fps, "--key", strings.Fields(string(out))[1])
	}
	r.cli(t, append([]string{"customer", "staff", "add", "acme", "e2e", "--role", "support"}, fps...)...)
	// The customer seals their recordings to their own age key, with
	// their own token: nobody at the provider reads them.
	r.custToken = customerToken(r.Rig)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	r.ageKey = filepath.Join(r.dir, "acme-age.key")
	if err := os.WriteFile(r.ageKey, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CLI(ctx, r.custToken, "customer", "age-recipient", "acme", id.Recipient().String()); err != nil {
		t.Fatal(err)
	}
	return r
}

// play replays a recording as the customer, with their key; the operator
// cannot.
func (r *rescueRig) play(t *testing.T, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := r.CLI(ctx, "", "recording", "play", id, "--speed", "0"); err == nil || !strings.Contains(err.Error(), "sealed to the customer's age key") {
		t.Errorf("the operator replayed a sealed recording: %v\n%s", err, out)
	}
	out, err := r.CLI(ctx, r.custToken, "recording", "play", id, "--speed", "0", "--identity", r.ageKey)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// customerToken is the file of customer acme's own API token.
func customerToken(r *rig.Rig) string { return filepath.Join(r.Options.Dir, "acme-token") }

// customerWebhook adds customer acme, gives it hosts and a webhook, and
// returns the webhook's receiver (in the site's namespace), checking each
// delivery's signature.
func customerWebhook(t *testing.T, r *rig.Rig, hosts ...string) *notifytest.Receiver {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli := func(args ...string) string {
		out, err := r.CLI(ctx, "", args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	waitFor(t, 10*time.Second, func() bool { _, err := r.CLI(ctx, "", "whoami"); return err == nil })
	// The customer's own SSH key approves their grants and gets them
	// their token (a challenge signed with it), with which they add their
	// webhook.
	cli("customer", "add", "acme", "--key-file", r.Key+".pub")
	for _, h := range hosts {
		cli("host", "set", h, "--customer", "acme")
	}
	if err := os.WriteFile(customerToken(r), []byte(cli("customer", "token", "acme", "--key", r.Key)), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := r.NS.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	recv := notifytest.NewReceiverOn(ln)
	t.Cleanup(func() { recv.Close() })
	added, err := r.CLI(ctx, customerToken(r), "customer", "webhook", "add", "acme", recv.URL)
	if err != nil {
		t.Fatal(err)
	}
	secret := regexp.MustCompile(`whsec_\S+`).FindString(added)
	if secret == "" {
		t.Fatal("no webhook secret in the CLI's answer")
	}
	if err := recv.SetSecret(secret); err != nil {
		t.Fatal(err)
	}
	return recv
}

func waitFor(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !ok(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("gave up after %s", d)
		}
	}
}

func (r *rescueRig) cli(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := r.CLI(ctx, "", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// keygen makes a key pair (once) and returns its private key file.
func (r *rescueRig) keygen(t *testing.T, name string) string {
	p := filepath.Join(r.dir, name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	return p
}

// request asks for a grant and returns its ID and state.
func (r *rescueRig) request(t *testing.T, host, scope, ticket, key string) (string, string) {
	out := r.cli(t, "rescue", "request", host, "--scope", scope, "--ticket", ticket, "--reason", "customer asked on "+ticket,
		"--ttl", "30m", "--key-file", key+".pub", "--json")
	var g struct{ ID, State string }
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		t.Fatalf("rescue request: %v\n%s", err, out)
	}
	return g.ID, g.State
}

// idleFlood holds n idle TCP connections from peer to addr, reopening each
// one that is closed, until stop is called; stop says how many it opened
// and how many were turned away with lifeboat's line.
func idleFlood(ctx context.Context, peer *vm.Peer, addr string, n int) (stop func() (opened, answered int64)) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var op, ans atomic.Int64
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var c net.Conn
				err := peer.Do(func() error {
					var err error
					c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
					return err
				})
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				op.Add(1)
				stopRead := context.AfterFunc(ctx, func() { c.Close() })
				b, _ := io.ReadAll(c)
				stopRead()
				if bytes.HasPrefix(b, []byte("lifeboat: ")) {
					ans.Add(1)
				}
				c.Close()
			}
		}()
	}
	return func() (int64, int64) { cancel(); wg.Wait(); return op.Load(), ans.Load() }
}

// staffSSH runs the OpenSSH client with a key in the namespace; it returns
// the output and exit status.
func (r *rescueRig) staffSSH(ctx context.Context, key, ip, stdin string, args ...string) (string, int) {
	base := []string{"-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "UserKnownHostsFile=" + r.KnownHosts,
		"-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "root@" + ip}
	cmd := r.NS.Command(ctx, "ssh", append(base, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return string(out), code
}

func (r *rescueRig) boot(t *testing.T, ctx context.Context, h rig.Host, want string) *vm.Running {
	tap, err := r.NS.AddTap()
	if err != nil {
		t.Fatal(err)
	}
	host := &vm.Host{Name: h.Name, Firmware: h.Firmware, MAC: h.MAC, Disk: r.disks[h.Name].Path, Writable: true, MemMiB: 1536, Dir: r.dir}
	run := startVM(t, ctx, host, r.NS, tap)
	start := time.Now()
	t.Cleanup(func() {
		run.Kill()
		if t.Failed() {
			t.Logf("%s console:\n%s", h.Name, run.Console.Text())
		}
	})
	line, err := run.Console.WaitFor(ctx, 8*time.Minute, want, "FATAL")
	if err != nil || strings.Contains(line, "FATAL") {
		t.Fatalf("%s: not %q: %v %s", h.Name, want, err, line)
	}
	t.Logf("%s: power-on to %q: %s", h.Name, want, time.Since(start).Round(100*time.Millisecond))
	return run
}

// waitNotice waits until the customer's receiver has a notice of code for
// the host, and returns every notice's code so far.
func (r *rescueRig) waitNotice(t *testing.T, host string, code audit.Code) []string {
	t.Helper()
	var codes []string
	waitFor(t, time.Minute, func() bool {
		codes = codes[:0]
		found := false
		for _, d := range r.recv.Deliveries() {
			var n struct {
				Type string `json:"type"`
				Data struct {
					Host string `json:"host"`
				} `json:"data"`
			}
			_ = json.Unmarshal(d.Body, &n)
			if n.Data.Host != host {
				continue
			}
			codes = append(codes, n.Type)
			found = found || n.Type == string(code)
		}
		return found
	})
	if bad := r.recv.Refused(); len(bad) > 0 {
		t.Errorf("receiver refused deliveries: %v", bad)
	}
	return codes
}

// summaries are the notices' one-line summaries for host, in the audit
// chain's order (deliveries may overtake one another).
func (r *rescueRig) summaries(host string) string {
	var lines []string
	for _, d := range r.recv.Deliveries() {
		var n struct {
			Type string `json:"type"`
			Data struct {
				Host, Summary string
				Receipt       struct{ Seq int64 }
			} `json:"data"`
		}
		_ = json.Unmarshal(d.Body, &n)
		if n.Data.Host == host {
			lines = append(lines, fmt.Sprintf("  #%04d %-22s %s\n", n.Data.Receipt.Seq, n.Type, n.Data.Summary))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "")
}

func (r *rescueRig) shadowOnDisk(t *testing.T, host string) []byte {
	img := filepath.Join(r.dir, host+"-root.img")
	if err := r.disks[host].RootImage(img); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("debugfs", "-R", "cat /etc/shadow", img).Output()
	if err != nil {
		t.Fatalf("debugfs: %v", err)
	}
	st, err := exec.Command("debugfs", "-R", "stat /etc/shadow", img).Output()
	if err != nil {
		t.Fatalf("debugfs: %v", err)
	}
	if !regexp.MustCompile(`Mode:\s+0640`).Match(st) || !regexp.MustCompile(`Group:\s+42\b`).Match(st) {
		t.Errorf("%s: /etc/shadow lost its owner or mode:\n%s", host, st)
	}
	return out
}

// checkReset: alice's new hash verifies the password, with the method
// login.defs names, and every other byte is as it was.
func checkReset(t *testing.T, got []byte, password string) {
	t.Helper()
	var hash string
	for _, l := range strings.Split(string(got), "\n") {
		if f := strings.Split(l, ":"); f[0] == "alice" && len(f) > 1 {
			hash = f[1]
		}
	}
	if !strings.HasPrefix(hash, "$y$") {
		t.Fatalf("alice's hash %q is not yescrypt (login.defs says YESCRYPT)", hash)
	}
	if ok, err := shadow.Verify(hash, []byte(password)); !ok || err != nil {
		t.Errorf("alice's new hash does not verify the new password: %v", err)
	}
	// The system's own libcrypt agrees.
	cmd := exec.Command("perl", "-e", `my $p = <STDIN>; chomp $p; print crypt($p, $ARGV[0]) eq $ARGV[0] ? "ok" : "bad"`, hash)
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.Output(); err != nil || string(out) != "ok" {
		t.Errorf("libcrypt does not accept alice's new hash: %s %v", out, err)
	}
	want := strings.Replace(shadowFile, "$6$k0Dm1m6yAqJQzq0L$sCgPGvzJ7WzY5zq8p3rS0K2tYt7Jq7Zs0lKqZ8wPAb9dA8q1t3fQ1wU0pG1cC0fOQm7xHn2xqvC0VvS6lU5eT.", hash, 1)
	if !bytes.Equal(got, []byte(want)) {
		t.Errorf("/etc/shadow changed beyond alice's hash:\n%s\nwant\n%s", got, want)
	}
}

// plainFlows: (1) a password reset under the notify policy, (6) keys
// without a grant refused, then (3) a shell grant that waits for the
// customer's approval, recorded and replayed.
func (r *rescueRig) plainFlows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	h := rescueHosts[0]
	staff := r.keygen(t, "staff-plain")
	stranger := r.keygen(t, "stranger")
	t.Run("password-reset", func(t *testing.T) { r.plainReset(ctx, t, h, staff, stranger) })
	t.Run("shell-approved-by-link", func(t *testing.T) { r.plainShell(ctx, t, h, staff) })
}

// phase makes a phase of a flow independent of the phases before it: if
// it fails, the grants it left open on host are revoked, so that the next
// phase's request and boot are not another grant's.
func (r *rescueRig) phase(t *testing.T, host string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		var l struct {
			Grants []struct{ ID, State string }
		}
		_ = json.Unmarshal([]byte(r.cli(t, "rescue", "list", "--host", host, "--json")), &l)
		for _, g := range l.Grants {
			if g.State == "requested" || g.State == "approved" || g.State == "active" {
				r.cli(t, "rescue", "revoke", g.ID)
			}
		}
	})
}

// plainReset: (6) keys without a grant are refused, (1) the password of a
// user on a plain root is reset and checked on the disk image.
func (r *rescueRig) plainReset(ctx context.Context, t *testing.T, h rig.Host, staff, stranger string) {
	r.phase(t, h.Name)
	id, state := r.request(t, h.Name, "password-reset", "SUP-100", staff)
	if state != "approved" {
		t.Fatalf("password-reset grant under the notify policy is %s", state)
	}
	before := r.waitNotice(t, h.Name, audit.RescueApprove)
	t.Logf("notices before the boot: %v", before)

	run := r.boot(t, ctx, h, "is in RESCUE under grant "+id)

	// (6) A key without a grant, and the customer's key for a staff command.
	if out, code := r.staffSSH(ctx, stranger, h.IP, "", "reset-password", "alice"); code != 255 {
		t.Errorf("stranger's key: exit %d\n%s", code, out)
	}
	if out, code := r.staffSSH(ctx, r.Key, h.IP, "", "reset-password alice"); code != 127 {
		t.Errorf("customer key running reset-password: exit %d\n%s", code, out)
	}
	// Outside the scope.
	if out, code := r.staffSSH(ctx, staff, h.IP, "", "shell"); code != 127 || !strings.Contains(out, "not allowed under a password-reset grant") {
		t.Errorf("shell under a password-reset grant: exit %d\n%s", code, out)
	}

	// (1) The reset.
	out, code := r.staffSSH(ctx, staff, h.IP, "new-password-for-alice\n", "reset-password", "alice")
	t.Logf("staff member's view of reset-password:\n%s", out)
	if code != 0 || !strings.Contains(out, "one line of /etc/shadow changed") || !strings.Contains(out, "Lifeboat Test Linux") {
		t.Fatalf("reset-password: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "new-password-for-alice") {
		t.Error("the typed password was echoed")
	}
	if out, code := r.staffSSH(ctx, staff, h.IP, "", "end"); code != 0 {
		t.Errorf("end: exit %d\n%s", code, out)
	}
	if _, err := run.Console.WaitFor(ctx, time.Minute, "is over: the staff member ended it. Rebooting."); err != nil {
		t.Fatal(err)
	}
	if err := run.Wait(time.Minute); err != nil {
		t.Logf("qemu: %v", err)
	}
	checkReset(t, r.shadowOnDisk(t, h.Name), "new-password-for-alice")
	after := r.waitNotice(t, h.Name, audit.RescueEnd)
	t.Logf("notices of the reset: %v", after)
	for _, want := range []audit.Code{audit.RescueActive, audit.RescuePasswordReset, audit.SSHRefused} {
		if !strings.Contains(strings.Join(after, " "), string(want)) {
			t.Errorf("no %s notice: %v", want, after)
		}
	}
	if out := r.cli(t, "rescue", "show", id); !strings.Contains(out, "ended") {
		t.Errorf("grant after the session:\n%s", out)
	}
	evs, _ := sqlite.ReadEvents(r.EventLog)
	found := false
	for _, e := range evs {
		if e.Code == audit.RescuePasswordReset && e.Host == h.Name {
			found = e.Details["user"] == "alice" && len(e.Details["shadow_after"]) == 64
		}
		if e.Code == audit.SSHRefused && e.Host == h.Name && !strings.Contains(e.Details["keys"], "SHA256:") {
			t.Errorf("refusal without the key: %+v", e)
		}
	}
	if !found {
		t.Error("no rescue.password_reset record naming alice and the file digests")
	}
}

// plainShell: (3) a shell waits for the customer, who approves it from the
// link in their notice; the recording is sealed to their key.
func (r *rescueRig) plainShell(ctx context.Context, t *testing.T, h rig.Host, staff string) {
	r.phase(t, h.Name)
	id, state := r.request(t, h.Name, "shell", "SUP-101", staff)
	if state != "requested" {
		t.Fatalf("shell grant is %s, want requested (policy approve)", state)
	}
	link := ""
	waitFor(t, time.Minute, func() bool {
		for _, d := range r.recv.Deliveries() {
			var n struct {
				Data struct {
					ApproveURL string `json:"approve_url"`
				} `json:"data"`
			}
			_ = json.Unmarshal(d.Body, &n)
			if strings.Contains(n.Data.ApproveURL, id) {
				link = n.Data.ApproveURL
			}
		}
		return link != ""
	})
	u, _ := url.Parse(link)
	page, err := r.NS.Command(ctx, "curl", "-sf", link).Output()
	if err != nil || !bytes.Contains(page, []byte("SUP-101")) || !bytes.Contains(page, []byte("root shell")) {
		t.Fatalf("approval page: %v\n%s", err, page)
	}
	// The customer signs the grant's text with their own key, as the
	// page says, and pastes the signature.
	text, err := r.NS.Command(ctx, "curl", "-sf", "http://"+rig.CustomerAddr+u.Path+"/text?"+u.RawQuery).Output()
	if err != nil {
		t.Fatalf("text to sign: %v", err)
	}
	sign := exec.CommandContext(ctx, "ssh-keygen", "-q", "-Y", "sign", "-n", "lifeboat-grant", "-f", r.Key)
	sign.Stdin = bytes.NewReader(text)
	signature, err := sign.Output()
	if err != nil {
		t.Fatalf("ssh-keygen -Y sign: %v", err)
	}
	res, err := r.NS.Command(ctx, "curl", "-sf", "--data-urlencode", "sig="+u.Query().Get("sig"), "--data", "decision=approve",
		"--data-urlencode", "signature="+string(signature), "http://"+rig.CustomerAddr+u.Path).Output()
	if err != nil || !bytes.Contains(res, []byte("You approved")) {
		t.Fatalf("approve: %v\n%s", err, res)
	}
	run := r.boot(t, ctx, h, "is in RESCUE under grant "+id)
	// A session on a pty, as a person has it; what is typed is not
	// recorded, what is shown is.
	out, code := r.staffSSH(ctx, staff, h.IP, "echo rescue-$((6*7))\nls /etc/lifeboat\n", "-tt", "shell")
	if code != 0 || !strings.Contains(out, "rescue-42") || !strings.Contains(out, "recorded") {
		t.Fatalf("shell: exit %d\n%s", code, out)
	}
	// A second shell is open when the customer ends the grant with their
	// own token: the shell ends, and the host reboots.
	type result struct {
		out  string
		code int
		at   time.Time
	}
	ended := make(chan result, 1)
	go func() {
		out, code := r.staffSSH(ctx, staff, h.IP, "echo waiting-for-revoke\nsleep 600\n", "-tt", "shell")
		ended <- result{out, code, time.Now()}
	}()
	waitFor(t, time.Minute, func() bool {
		evs, _ := sqlite.ReadEvents(r.EventLog)
		n := 0
		for _, e := range evs {
			if e.Code == audit.RescueShell && e.Host == h.Name {
				n++
			}
		}
		return n == 2
	})
	revoked := time.Now()
	if out, err := r.CLI(ctx, r.custToken, "rescue", "revoke", id); err != nil {
		t.Fatalf("the customer's revoke: %v\n%s", err, out)
	}
	select {
	case res := <-ended:
		t.Logf("%s: the customer's revoke to the end of the open shell: %s (ssh exit %d)", h.Name, res.at.Sub(revoked).Round(100*time.Millisecond), res.code)
		if strings.Contains(res.out, "waiting-for-revoke") && res.at.Sub(revoked) > 30*time.Second {
			t.Errorf("the shell outlived the revoke by %s", res.at.Sub(revoked))
		}
	case <-time.After(time.Minute):
		t.Fatal("the shell was still open a minute after the customer revoked the grant")
	}
	if _, err := run.Console.WaitFor(ctx, time.Minute, "Rebooting."); err != nil {
		t.Fatal(err)
	}
	// The host stores both shells' recordings and end records before it
	// restarts; the console's "Rebooting." comes before that.
	waitFor(t, time.Minute, func() bool {
		evs, _ := sqlite.ReadEvents(r.EventLog)
		n := 0
		for _, e := range evs {
			if e.Code == audit.RescueShellEnd && e.Host == h.Name && e.Details["grant"] == id {
				n++
			}
		}
		return n == 2
	})
	list := r.cli(t, "recording", "list", "--json")
	var recs []struct {
		ID, Host string
		Sealed   bool
	}
	if err := json.Unmarshal([]byte(list), &recs); err != nil {
		t.Fatal(err)
	}
	recs = slices.DeleteFunc(recs, func(x struct {
		ID, Host string
		Sealed   bool
	}) bool {
		return x.Host != h.Name
	})
	if len(recs) != 2 || !recs[0].Sealed || !recs[1].Sealed {
		t.Fatalf("recordings of %s (two shells): %+v\n%s", h.Name, recs, list)
	}
	var play, playedID string
	for _, rec := range recs {
		if p := r.play(t, rec.ID); strings.Contains(p, "rescue-42") {
			play, playedID = p, rec.ID
		}
	}
	t.Logf("the recording, replayed by the customer:\n%s", play)
	if !strings.Contains(play, "rescue-42") || !strings.Contains(play, "SUP-101") {
		t.Errorf("replay lacks the session")
	}
	// The customer checks it against the SHA-256 its end record holds;
	// cut short on the server's disk, it no longer passes.
	if out, err := r.CLI(ctx, r.custToken, "recording", "verify", playedID, "--identity", r.ageKey); err != nil || !strings.Contains(out, "OK") {
		t.Errorf("recording verify: %v\n%s", err, out)
	}
	file := filepath.Join(filepath.Dir(r.EventLog), "recordings", h.Name, playedID+".cast.age")
	if fi, err := os.Stat(file); err != nil {
		t.Errorf("the sealed recording on disk: %v", err)
	} else if f, err := os.Open(file); err == nil {
		segs, _ := sealed.Segments(f, fi.Size())
		f.Close()
		// Cut its last segment off, or, if it is one segment, store that
		// segment twice (a replayed piece): either way it must fail.
		var tamper error
		if len(segs) >= 2 {
			tamper = os.Truncate(file, segs[len(segs)-1].Position)
		} else if raw, err := os.ReadFile(file); err == nil && len(segs) == 1 {
			tamper = os.WriteFile(file, append(raw, raw[segs[0].Position:]...), 0o600)
		} else {
			tamper = fmt.Errorf("segments %v: %v", segs, err)
		}
		if tamper != nil {
			t.Errorf("tampering with the recording: %v", tamper)
		} else if out, err := r.CLI(ctx, r.custToken, "recording", "verify", playedID, "--identity", r.ageKey); err == nil {
			t.Errorf("a recording changed on the server (%d segments before) passed:\n%s", len(segs), out)
		} else {
			t.Logf("the changed recording (%d segments before) fails: %v", len(segs), err)
		}
	}
	// Sealed on the server's disk.
	raw := r.cli(t, "recording", "get", recs[0].ID)
	if strings.Contains(raw, "rescue-42") || !strings.HasPrefix(raw, "lifeboat-recording-age-v1") {
		t.Errorf("recording stored in the clear")
	}
	r.waitNotice(t, h.Name, audit.RescueShellEnd)
	t.Logf("what customer acme's webhook was told about %s:\n%s", h.Name, r.summaries(h.Name))
}

// encryptedFlow: (2) a reset is refused until the customer unlocks in this
// boot, then (5) the grant is revoked mid-session: the host reboots into its
// default mode, where the staff key is refused.
func (r *rescueRig) encryptedFlow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	h := rescueHosts[1]
	staff := r.keygen(t, "staff-enc")
	t.Run("reset-after-unlock-then-revoked", func(t *testing.T) { r.encryptedReset(ctx, t, h, staff) })
	t.Run("console-code", func(t *testing.T) { r.consoleCode(ctx, t, h, staff) })
}

// encryptedReset: (2) a reset is refused until the customer unlocks in
// this boot, then (5) the grant is revoked mid-session; back in its own
// mode, the host refuses the staff key.
func (r *rescueRig) encryptedReset(ctx context.Context, t *testing.T, h rig.Host, staff string) {
	r.phase(t, h.Name)
	id, _ := r.request(t, h.Name, "password-reset", "SUP-200", staff)
	var out string
	run := r.boot(t, ctx, h, "is in RESCUE under grant "+id)

	out, code := r.staffSSH(ctx, staff, h.IP, "", "reset-password", "alice")
	if code != 4 || !strings.Contains(out, "ask the customer") {
		t.Fatalf("reset on a locked root: exit %d\n%s", code, out)
	}
	// A script that unlocks after every reboot does not open the disk to
	// a rescue session unawares: it is refused, nothing tried.
	out, code = r.staffSSH(ctx, r.Key, h.IP, r.passphrase+"\n", "unlock")
	if code != 7 || !strings.Contains(out, "unlock --rescue-grant "+id) || strings.Contains(out, "unlocked with") {
		t.Fatalf("scripted unlock in a rescue boot without --rescue-grant: exit %d\n%s", code, out)
	}
	// Another machine on the boot network holds 200 idle connections to
	// the host's SSH port, reopening each one the host closes; the
	// customer unlocks all the same.
	flood, err := r.NS.AddPeer(r.NS.Name+"-flood", "10.77.0.77/24")
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	stop := idleFlood(ctx, flood, h.IP+":22", 200)
	time.Sleep(2 * time.Second)
	unlockStart := time.Now()
	out, code = r.staffSSH(ctx, r.Key, h.IP, r.passphrase+"\n", "unlock", "--rescue-grant", id)
	opened, answered := stop()
	if code != 0 || !strings.Contains(out, "opened in place") {
		t.Fatalf("customer unlock in a rescue boot, during 200 idle connections: exit %d\n%s", code, out)
	}
	t.Logf("%s: the customer unlocked in %s while another machine held 200 idle connections (%d opened, %d turned away with a reason)",
		h.Name, time.Since(unlockStart).Round(100*time.Millisecond), opened, answered)
	if opened < 200 {
		t.Errorf("the flood opened only %d connections", opened)
	}
	if strings.Contains(out, r.passphrase) {
		t.Error("passphrase echoed")
	}
	out, code = r.staffSSH(ctx, staff, h.IP, "new-password-enc\n", "reset-password", "alice")
	if code != 0 {
		t.Fatalf("reset after the unlock: exit %d\n%s", code, out)
	}
	// (5) Revoked while the host is in rescue: the agent sees it at its
	// next poll and reboots.
	r.cli(t, "rescue", "revoke", id)
	if _, err := run.Console.WaitFor(ctx, time.Minute, "the server ended the grant: revoked. Rebooting."); err != nil {
		t.Fatal(err)
	}
	if err := run.Wait(time.Minute); err != nil {
		t.Logf("qemu: %v", err)
	}
	checkReset(t, r.shadowOnDisk(t, h.Name), "new-password-enc")
	// Back in its default mode: the unlock prompt, and the staff key is
	// refused (and the refusal recorded).
	run = r.boot(t, ctx, h, "is ready for unlock")
	if out, code := r.staffSSH(ctx, staff, h.IP, "", "reset-password", "alice"); code != 255 {
		t.Errorf("staff key after the revocation: exit %d\n%s", code, out)
	}
	fp, _ := exec.Command("ssh-keygen", "-lf", staff+".pub").Output()
	waitFor(t, 30*time.Second, func() bool {
		evs, _ := sqlite.ReadEvents(r.EventLog)
		for _, e := range evs {
			if e.Code == audit.SSHRefused && e.Host == h.Name && strings.Contains(string(fp), e.Details["keys"]) {
				return true
			}
		}
		return false
	})
	t.Logf("%s: notices %v", h.Name, r.waitNotice(t, h.Name, audit.SSHRefused))
	// The customer unlocks; the hand-off records what it booted.
	if out, code := r.staffSSH(ctx, r.Key, h.IP, r.passphrase+"\n", "unlock"); code != 0 || !strings.Contains(out, "kernel sha256: ") {
		t.Fatalf("unlock in the default mode: exit %d\n%s", code, out)
	}
	waitFor(t, time.Minute, func() bool { return r.handoffs(h.Name) == 1 })
	run.Kill()
}

// handoffs counts host's hand-off records that name the kernel's digest.
func (r *rescueRig) handoffs(host string) int {
	evs, _ := sqlite.ReadEvents(r.EventLog)
	n := 0
	for _, e := range evs {
		if e.Code == audit.Handoff && e.Host == host && len(e.Details["kernel_sha256"]) == 64 {
			n++
		}
	}
	return n
}

// consoleCode: (4) remote hands at the serial console with the grant's
// one-time code; a wrong code first.
func (r *rescueRig) consoleCode(ctx context.Context, t *testing.T, h rig.Host, staff string) {
	r.phase(t, h.Name)
	out := r.cli(t, "rescue", "request", h.Name, "--scope", "console", "--ticket", "DC-300", "--reason", "check the disk lights",
		"--ttl", "30m", "--key-file", staff+".pub")
	t.Logf("support's view of a console request:\n%s", out)
	code4 := regexp.MustCompile(`one-time console code: (\d{4}-\d{4})`).FindStringSubmatch(out)
	if code4 == nil {
		t.Fatalf("no console code in:\n%s", out)
	}
	id := regexp.MustCompile(`grant (g-[0-9a-f]+)`).FindStringSubmatch(out)[1]
	// A root shell at the console waits for the customer, who approves it
	// from their side with their own key.
	if approved, err := r.CLI(ctx, r.custToken, "rescue", "approve", "--key", r.Key, id); err != nil || !strings.Contains(approved, "approved by customer:acme (key SHA256:") {
		t.Fatalf("customer's approval: %v\n%s", err, approved)
	}
	run := r.boot(t, ctx, h, "is in RESCUE under grant "+id)
	if _, err := run.Console.WaitFor(ctx, time.Minute, "type the grant's one-time code"); err != nil {
		t.Fatal(err)
	}
	// Echo is off from before the banner; the code is typed at the prompt.
	if _, err := run.Console.WaitFor(ctx, time.Minute, "one-time code: "); err != nil {
		t.Fatal(err)
	}
	if err := run.Type("0000-0000\r"); err != nil {
		t.Fatal(err)
	}
	if _, err := run.Console.WaitFor(ctx, time.Minute, "wrong code; 4 tries left"); err != nil {
		t.Fatal(err)
	}
	if err := run.Type(code4[1] + "\r"); err != nil {
		t.Fatal(err)
	}
	// The banner comes once the code reader has let go of the console:
	// what is typed from here goes to the shell.
	if _, err := run.Console.WaitFor(ctx, time.Minute, "Input is not recorded"); err != nil {
		t.Fatal(err)
	}
	if err := run.Type("echo console-$((40+2))\r"); err != nil {
		t.Fatal(err)
	}
	if _, err := run.Console.WaitFor(ctx, time.Minute, "console-42"); err != nil {
		t.Fatal(err)
	}
	// A root shell can change the unencrypted /boot: the technician adds
	// to the kernel the customer's next unlock would boot.
	if err := run.Type("mkdir -p /tmp/b && mount -t ext4 /dev/vda1 /tmp/b && for k in /tmp/b/vmlinuz-*; do echo tampered >> $k; done; umount /tmp/b; echo boot-changed-$((1+1))\r"); err != nil {
		t.Fatal(err)
	}
	if _, err := run.Console.WaitFor(ctx, time.Minute, "boot-changed-2"); err != nil {
		t.Fatal(err)
	}
	if err := run.Type("exit\r"); err != nil {
		t.Fatal(err)
	}
	if _, err := run.Console.WaitFor(ctx, time.Minute, "the code is used up"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(run.Console.Text(), code4[1]) {
		t.Error("the console code was echoed on the console")
	}
	if out, code := r.staffSSH(ctx, staff, h.IP, "", "end"); code != 0 {
		t.Errorf("end: exit %d\n%s", code, out)
	}
	if _, err := run.Console.WaitFor(ctx, time.Minute, "Rebooting."); err != nil {
		t.Fatal(err)
	}
	var recs []struct{ ID, Host string }
	_ = json.Unmarshal([]byte(r.cli(t, "recording", "list", "--json")), &recs)
	found := ""
	for _, rc := range recs {
		if rc.Host == h.Name && strings.Contains(rc.ID, "console-") {
			found = rc.ID
		}
	}
	if found == "" {
		t.Fatalf("no console recording: %v", recs)
	}
	if play := r.play(t, found); !strings.Contains(play, "console-42") {
		t.Errorf("console recording lacks the session:\n%s", play)
	}
	r.waitNotice(t, h.Name, audit.RescueConsoleRefused)
	// The next unlock says the kernel changed since the last one, before
	// any passphrase; the customer's script is refused, nothing tried.
	if err := run.Wait(time.Minute); err != nil {
		t.Logf("qemu: %v", err)
	}
	run = r.boot(t, ctx, h, "is ready for unlock")
	out, code := r.staffSSH(ctx, r.Key, h.IP, r.passphrase+"\n", "unlock")
	if code != 7 || !strings.Contains(out, "changed since your last unlock") || !strings.Contains(out, "kernel sha256: ") ||
		!strings.Contains(out, "--accept-boot-change") || strings.Contains(out, "unlocked with") {
		t.Errorf("scripted unlock of a changed kernel: exit %d\n%s", code, out)
	}
	t.Logf("%s: what the customer's script was told after the console session changed /boot:\n%s", h.Name, out)
	run.Kill()
	t.Logf("what customer acme's webhook was told about %s:\n%s", h.Name, r.summaries(h.Name))
}
