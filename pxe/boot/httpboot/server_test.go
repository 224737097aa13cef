package httpboot

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/hack/paths"

	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/keys/sshca"
	"github.com/lifeboat-boot/lifeboat/pxe/recordings"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/store/sqlite"
)

const custKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl c"

type rig struct {
	db     *sqlite.DB
	recs   *recordings.Store
	srv    *httptest.Server
	events string
	boots  *store.Boots
	boot   *store.Boot
	logBuf *bytes.Buffer
}

// newRig serves a host whose reservation is 127.0.0.1, so that the test
// client on loopback is that host.
func newRig(t testing.TB) *rig {
	dir := t.TempDir()
	_ = os.MkdirAll(filepath.Join(dir, "tftp"), 0o755)
	for _, f := range []string{"vmlinuz", "initramfs.cpio", "tftp/ipxe.efi", "tftp/other.efi"} {
		if err := os.WriteFile(filepath.Join(dir, f), bytes.Repeat([]byte(f), 1000), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.WriteFile(filepath.Join(filepath.Dir(dir), "secret"), []byte("TOPSECRET"), 0o644)
	_ = os.Symlink("../secret", filepath.Join(dir, "secret"))
	inv, err := store.ParseInventory([]byte(`{"hosts":[{"name":"web1","mac":"52:54:00:00:00:01","ip":"127.0.0.1","authorized_keys":["` + custKey + `"]},
		{"name":"db1","mac":"52:54:00:00:00:02","ip":"127.0.0.2","mode":"disk","authorized_keys":["` + custKey + `"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{events: filepath.Join(dir, "lifeboat.db"), logBuf: &bytes.Buffer{}}
	el, err := sqlite.Open(context.Background(), r.events)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { el.Close() })
	if _, err := el.Apply(context.Background(), store.Change{Put: inv.Hosts()}, "test"); err != nil {
		t.Fatal(err)
	}
	if r.boots, err = el.NewBoots(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.boot, _ = r.boots.OnDiscover("52:54:00:00:00:01", "web1", store.ClientIPXE, "bios")
	r.boots.OnDiscover("52:54:00:00:00:02", "db1", store.ClientIPXE, "uefi")
	r.db, r.recs = el, &recordings.Store{Dir: filepath.Join(dir, "recordings")}
	s := &Server{Image: Image{Loaders: []string{"ipxe.efi"}, Dir: dir, Kernel: "vmlinuz", Initramfs: "initramfs.cpio", Cmdline: "console=ttyS0"},
		Inventory: el, Boots: r.boots, Events: el, Tokens: el, Log: slog.New(slog.NewTextHandler(r.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Unlock: agentapi.UnlockPolicy{MaxTries: 5, Lockout: time.Minute}, Grants: el, Recordings: r.recs}
	if s.CA, err = sshca.Load(filepath.Join(dir, "ssh_ca_key")); err != nil {
		t.Fatal(err)
	}
	s.CertTTL = 2 * time.Hour
	h, err := s.Handler()
	if err != nil {
		t.Fatal(err)
	}
	r.srv = httptest.NewServer(h)
	s.BaseURL = r.srv.URL
	t.Cleanup(r.srv.Close)
	return r
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

var tokenRE = regexp.MustCompile(`/boot/agent/([A-Za-z0-9_-]+)\.cpio`)

func TestBootFlow(t *testing.T) {
	r := newRig(t)
	code, script := get(t, r.srv.URL+"/boot/52:54:00:00:00:01.ipxe")
	if code != 200 {
		t.Fatalf("script: HTTP %d %s", code, script)
	}
	for _, want := range []string{"#!ipxe", "kernel --name vmlinuz " + r.srv.URL + "/images/vmlinuz console=ttyS0 initrd=initramfs.cpio initrd=agent.cpio", "initrd --name initramfs.cpio"} {
		if !bytes.Contains(script, []byte(want)) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	m := tokenRE.FindSubmatch(script)
	if m == nil {
		t.Fatalf("no agent archive URL in script:\n%s", script)
	}
	token := string(m[1])
	if bytes.Contains(script[:bytes.Index(script, []byte("initrd --name agent"))], []byte(token)) {
		t.Error("token appears outside the agent archive URL (kernel command line?)")
	}

	// The agent archive carries the token inside, as a cpio file.
	code, arch := get(t, r.srv.URL+"/boot/agent/"+token+".cpio")
	if code != 200 {
		t.Fatalf("agent archive: HTTP %d", code)
	}
	rr := cpio.Newc.Reader(bytes.NewReader(arch))
	recs, err := cpio.ReadAllRecords(rr)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, rec := range recs {
		if rec.Name == agentapi.BootFile {
			b, _ := io.ReadAll(io.NewSectionReader(rec.ReaderAt, 0, int64(rec.FileSize)))
			found = bytes.Contains(b, []byte(token)) && bytes.Contains(b, []byte(r.boot.ID))
		}
	}
	if !found {
		t.Fatalf("agent archive lacks %s with token and boot id", agentapi.BootFile)
	}

	if code, body := get(t, r.srv.URL+"/images/vmlinuz"); code != 200 || !bytes.HasPrefix(body, []byte("vmlinuz")) {
		t.Errorf("kernel: HTTP %d", code)
	}
	for _, p := range []string{"/images/..%2fev.jsonl", "/images/ev.jsonl", "/images/%2e%2e", "/boot/agent/nope.cpio", "/boot/52:54:00:00:00:99.ipxe", "/boot/garbage.ipxe"} {
		if code, _ := get(t, r.srv.URL+p); code == 200 {
			t.Errorf("GET %s = 200, want refusal", p)
		}
	}

	// Check-in: once, then a replay is refused and logged.
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	c := &agentapi.Client{Base: r.srv.URL}
	req := agentapi.CheckinRequest{Boot: r.boot.ID, MAC: "52:54:00:00:00:01", HostKey: string(ssh.MarshalAuthorizedKey(signer.PublicKey()))}
	ctx := context.Background()
	if _, err := c.Checkin(ctx, token, agentapi.CheckinRequest{Boot: "b-wrong", MAC: req.MAC, HostKey: req.HostKey}); !errors.Is(err, agentapi.ErrRefused) {
		t.Fatalf("check-in for another boot: %v, want refused", err)
	}
	cfg, err := c.Checkin(ctx, token, req)
	if err != nil {
		t.Fatalf("check-in: %v", err)
	}
	if cfg.Host != "web1" || len(cfg.AuthorizedKeys) != 1 || cfg.ReportToken == "" || cfg.Unlock.MaxTries != 5 {
		t.Errorf("check-in response = %+v", cfg)
	}
	// The host key comes back certified for this host, for hours.
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(cfg.HostCertificate))
	cert, ok := pk.(*ssh.Certificate)
	if err != nil || !ok || cert.CertType != ssh.HostCert || !slices.Equal(cert.ValidPrincipals, []string{"web1", "127.0.0.1"}) ||
		string(cert.Key.Marshal()) != string(signer.PublicKey().Marshal()) {
		t.Fatalf("host certificate = %+v, %v", pk, err)
	}
	if d := time.Until(time.Unix(int64(cert.ValidBefore), 0)); d > 2*time.Hour || d < 119*time.Minute {
		t.Errorf("certificate valid for %s, want 2h", d)
	}
	_, err = c.Checkin(ctx, token, req)
	if !errors.Is(err, agentapi.ErrRefused) || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("replayed check-in: %v, want refused as already used", err)
	}
	if code, _ := get(t, r.srv.URL+"/boot/agent/"+token+".cpio"); code == 200 {
		t.Error("agent archive still served after check-in")
	}

	// A boot without an active rescue grant begins no recording.
	if err := c.Record(ctx, cfg.ReportToken, "shell-1", 0, []byte("{}\n")); !errors.Is(err, agentapi.ErrRefused) || !strings.Contains(err.Error(), "no active rescue grant") {
		t.Errorf("recording without a grant: %v", err)
	}

	// Events: the agent may report its own codes only.
	if err := c.Report(ctx, cfg.ReportToken, agentapi.EventReport{Code: audit.SSHLogin, Actor: "SHA256:x"}); err != nil {
		t.Fatalf("report: %v", err)
	}
	if err := c.Report(ctx, cfg.ReportToken, agentapi.EventReport{Code: audit.BootStart}); !errors.Is(err, agentapi.ErrRefused) {
		t.Errorf("agent reported a server code: %v", err)
	}
	if err := c.Report(ctx, "forged", agentapi.EventReport{Code: audit.SSHLogin}); !errors.Is(err, agentapi.ErrRefused) {
		t.Errorf("report with a forged token: %v", err)
	}

	evs, err := sqlite.ReadEvents(r.events)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, e := range evs {
		codes = append(codes, string(e.Code)+"/"+e.Details["reason"])
	}
	want := "host.add/ host.add/ http.script/ http.image/ http.image/ agent.checkin_refused/binding agent.checkin/ agent.checkin_refused/replay ssh.login/"
	if got := strings.Join(codes, " "); got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}
	if cur, _ := r.boots.Current("52:54:00:00:00:01"); cur.Stage != store.StageLogin {
		t.Errorf("boot stage = %v, want login", cur.Stage)
	}
	// The token never reaches the log or the event log.
	ev, _ := os.ReadFile(r.events)
	if bytes.Contains(ev, []byte(token)) || strings.Contains(r.logBuf.String(), token) {
		t.Error("boot token leaked into a log")
	}
}

// FuzzRenderScript: whatever the inventory lets through as a host name and
// whatever the server puts in the other fields, the script keeps its
// commands: one line per field, nothing injected.
func FuzzRenderScript(f *testing.F) {
	f.Add("web1", "console=ttyS0", "b-0123456789abcdef")
	f.Add("a\nchain http://x/", "x\ny", "b")
	f.Fuzz(func(t *testing.T, host, cmdline, boot string) {
		if !store.NameRE.MatchString(host) || strings.ContainsAny(cmdline, "\n\r\x00") || strings.ContainsAny(boot, "\n\r") {
			return // refused at the inventory, the config or never made (boot ids are ours)
		}
		b, err := RenderScript(ScriptData{Host: host, Boot: boot, Base: "http://10.0.0.1:8080", Kernel: "vmlinuz", Initramfs: "initramfs.cpio", Cmdline: cmdline, Token: store.NewSecret()})
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 10 || lines[0] != "#!ipxe" || !strings.HasPrefix(lines[2], "kernel ") || lines[5] != "boot || goto failed" {
			t.Fatalf("script shape changed:\n%s", b)
		}
	})
}

// TestHostilePaths sends 200+ odd paths under every route as raw request
// lines; none may be answered with a file, and nothing outside the image
// folder (a secret next to it, reachable through a link inside it) leaks.
func TestHostilePaths(t *testing.T) {
	r := newRig(t)
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "secret"), []byte("TOPSECRET"), 0o644)
	names := paths.Hostile([]string{"vmlinuz", "initramfs.cpio"}, "secret")
	count := 0
	for _, route := range []string{"/images/", "/boot/", "/boot/agent/", "/"} {
		for _, n := range names {
			count++
			c, err := net.Dial("tcp", r.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "GET %s%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", route, n)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, _ := io.ReadAll(c)
			c.Close()
			status := string(resp)
			if i := strings.Index(status, "\r\n"); i > 0 {
				status = status[:i]
			}
			if strings.Contains(status, " 200 ") || strings.Contains(status, " 206 ") || bytes.Contains(resp, []byte("TOPSECRET")) {
				t.Errorf("GET %s%q answered %s", route, n, status)
			}
		}
	}
	if count < 200 {
		t.Fatalf("only %d paths", count)
	}
}

// FuzzCheckin posts arbitrary bodies and bearer values to the check-in:
// never a panic, never a configuration without the live token.
func FuzzCheckin(f *testing.F) {
	f.Add([]byte(`{"boot":"b-1","mac":"52:54:00:00:00:01","host_key":"ssh-ed25519 AAAA"}`), "tok")
	f.Add([]byte(`{"boot":`), "")
	f.Add([]byte("\x00\xff{}"), "Bearer \x00")
	r := newRig(f)
	f.Fuzz(func(t *testing.T, body []byte, bearer string) {
		req, err := http.NewRequest(http.MethodPost, r.srv.URL+agentapi.CheckinPath, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return // e.g. a header value net/http refuses to send
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("check-in accepted without a live token: %q %q", body, bearer)
		}
	})
}

func TestDiskModeAndLoaders(t *testing.T) {
	r := newRig(t)
	// db1 holds 127.0.0.2: dial from that address.
	c := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	resp, err := c.Get(r.srv.URL + "/boot/52:54:00:00:00:02.ipxe")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasSuffix(string(body), "\nexit\n") || strings.Contains(string(body), "kernel") || tokenRE.Match(body) {
		t.Errorf("disk-mode script: HTTP %d\n%s", resp.StatusCode, body)
	}
	if code, b := get(t, r.srv.URL+"/loaders/ipxe.efi"); code != 200 || !bytes.HasPrefix(b, []byte("tftp/ipxe.efi")) {
		t.Errorf("loader: HTTP %d", code)
	}
	for _, p := range []string{"/loaders/other.efi", "/loaders/..%2fvmlinuz", "/loaders/"} {
		if code, _ := get(t, r.srv.URL+p); code == 200 {
			t.Errorf("GET %s = 200", p)
		}
	}
}

// TestRescueBoot: a host with an approved grant checks in for a rescue boot
// and gets the grant; the agent polls it, streams a recording, and its
// rescue.end ends the grant. Another host's boot may not read the grant.
func TestRescueBoot(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if err := r.db.AddCustomer(ctx, store.Customer{Name: "acme"}, "test"); err != nil {
		t.Fatal(err)
	}
	h, _ := r.db.Host("web1")
	h.Customer = "acme"
	if _, err := r.db.Apply(ctx, store.Change{Put: []*store.Host{h}}, "test"); err != nil {
		t.Fatal(err)
	}
	g, err := r.db.RequestGrant(ctx, store.GrantRequest{Host: "web1", Scope: store.ScopePasswordReset, Ticket: "T-1", Reason: "forgot it",
		TTL: time.Hour, StaffKey: custKey}, "bob")
	if err != nil || g.State != store.GrantApproved {
		t.Fatalf("grant: %+v %v", g, err)
	}
	_, script := get(t, r.srv.URL+"/boot/52:54:00:00:00:01.ipxe")
	token := tokenRE.FindStringSubmatch(string(script))[1]
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	c := &agentapi.Client{Base: r.srv.URL}
	cfg, err := c.Checkin(ctx, token, agentapi.CheckinRequest{Boot: r.boot.ID, MAC: "52:54:00:00:00:01", HostKey: string(ssh.MarshalAuthorizedKey(signer.PublicKey()))})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != store.ModeRescue || cfg.Grant == nil || cfg.Grant.ID != g.ID || cfg.Grant.Left < 59*time.Minute || cfg.Grant.StaffKey != custKey {
		t.Fatalf("check-in = mode %s grant %+v", cfg.Mode, cfg.Grant)
	}
	st, err := c.Grant(ctx, cfg.ReportToken, g.ID)
	if err != nil || st.State != store.GrantActive {
		t.Fatalf("grant status = %+v, %v", st, err)
	}
	if _, err := c.Grant(ctx, cfg.ReportToken, "g-other"); !errors.Is(err, agentapi.ErrRefused) {
		t.Errorf("status of a grant not this host's: %v", err)
	}
	if _, err := c.Grant(ctx, "forged", g.ID); !errors.Is(err, agentapi.ErrRefused) {
		t.Errorf("status with a forged token: %v", err)
	}
	// Pieces of a recording: in order, a retry accepted, a gap refused.
	for i, step := range []struct {
		off  int64
		data string
		ok   bool
	}{{0, "head\n", true}, {5, "ev1\n", true}, {5, "ev1\n", true}, {20, "gap\n", false}, {9, "ev2\n", true}} {
		err := c.Record(ctx, cfg.ReportToken, "shell-1", step.off, []byte(step.data))
		if (err == nil) != step.ok {
			t.Errorf("piece %d: %v", i, err)
		}
	}
	if err := c.Record(ctx, cfg.ReportToken, "../x", 0, []byte("x")); err == nil {
		t.Error("recording name with a path accepted")
	}
	if err := c.Record(ctx, "forged", "shell-2", 0, []byte("x")); err == nil {
		t.Error("recording with a forged token accepted")
	}
	f, in, err := r.recs.Open(recordings.ID(r.boot.ID, "shell-1"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "head\nev1\nev2\n" || in.Host != "web1" {
		t.Errorf("recording = %q (%+v)", b, in)
	}
	// The end of the session ends the grant, recorded once.
	if err := c.Report(ctx, cfg.ReportToken, agentapi.EventReport{Code: audit.RescueEnd, Actor: "agent", Details: map[string]string{"reason": "the staff member ended it"}}); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Grant(ctx, cfg.ReportToken, g.ID); st == nil || st.State != store.GrantEnded {
		t.Errorf("grant after rescue.end: %+v", st)
	}
	evs, _ := sqlite.ReadEvents(r.events)
	n := 0
	for _, e := range evs {
		if e.Code == audit.RescueEnd {
			n++
			if e.Details["grant"] != g.ID || e.Details["reason"] != "the staff member ended it" || e.Boot != r.boot.ID || e.Customer != "acme" {
				t.Errorf("rescue.end record: %+v", e)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d rescue.end records, want 1", n)
	}
}
