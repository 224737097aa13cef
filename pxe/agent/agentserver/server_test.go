package agentserver

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/keys/agenttls"
	"github.com/lifeboat-boot/lifeboat/pxe/keys/sshca"
	"github.com/lifeboat-boot/lifeboat/pxe/operator/notify"
	"github.com/lifeboat-boot/lifeboat/pxe/recordings"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/store/sqlite"
)

const custKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl c"

const mac = "52:54:00:00:00:01"

type rig struct {
	db     *sqlite.DB
	path   string
	recs   *recordings.Store
	steps  *store.Steps
	srv    *httptest.Server
	boot   *store.Boot
	logBuf *bytes.Buffer
}

// newRig serves the agent API for web1 (127.0.0.1), whose boot has begun.
func newRig(t testing.TB) *rig {
	dir := t.TempDir()
	ctx := context.Background()
	r := &rig{path: filepath.Join(dir, "lifeboat.db"), logBuf: &bytes.Buffer{}}
	db, err := sqlite.Open(ctx, r.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r.db = db
	if err := db.AddCustomer(ctx, store.Customer{Name: "acme", Emails: []string{"ops@acme.example"}}, "test"); err != nil {
		t.Fatal(err)
	}
	if err := db.AddStaff(ctx, store.Staff{Customer: "acme", Name: "bob", Role: "support", Keys: store.Fingerprints([]string{custKey})}, "test"); err != nil {
		t.Fatal(err)
	}
	inv, err := store.ParseInventory([]byte(`{"hosts":[{"name":"web1","mac":"` + mac + `","ip":"127.0.0.1","customer":"acme","authorized_keys":["` + custKey + `"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Apply(ctx, store.Change{Put: inv.Hosts()}, "test"); err != nil {
		t.Fatal(err)
	}
	if r.steps, err = db.NewSteps(ctx); err != nil {
		t.Fatal(err)
	}
	if r.boot, _, err = r.steps.Begin(ctx, mac, "web1", store.ClientIPXE, "bios", audit.Event{Code: audit.BootStart}); err != nil {
		t.Fatal(err)
	}
	r.recs = &recordings.Store{Dir: filepath.Join(dir, "recordings")}
	s := &Server{Store: db, Steps: r.steps, Recordings: r.recs, Unlock: agentapi.UnlockPolicy{MaxTries: 5, Lockout: time.Minute},
		Log: slog.New(slog.NewTextHandler(r.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})), CertTTL: 2 * time.Hour}
	if s.CA, err = sshca.Load(filepath.Join(dir, "ssh_ca_key")); err != nil {
		t.Fatal(err)
	}
	r.srv = httptest.NewServer(s.Handler())
	t.Cleanup(r.srv.Close)
	return r
}

// token issues a boot token for web1's boot, as its script fetch does.
func (r *rig) token(t testing.TB) string {
	tok, err := r.db.IssueToken(context.Background(), store.Binding{MAC: mac, Host: "web1", Boot: r.boot.ID}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (r *rig) codes(t *testing.T) string {
	evs, err := sqlite.ReadEvents(r.path)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, e := range evs {
		if e.Code != audit.HostAdd && e.Code != audit.CustomerAdd && e.Code != audit.BootStart {
			codes = append(codes, string(e.Code)+"/"+e.Details["reason"])
		}
	}
	return strings.Join(codes, " ")
}

func hostKey(t testing.TB) ssh.Signer {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

func TestCheckin(t *testing.T) {
	r := newRig(t)
	token := r.token(t)
	signer := hostKey(t)
	c := &agentapi.Client{Base: r.srv.URL}
	req := agentapi.CheckinRequest{Boot: r.boot.ID, MAC: mac, HostKey: string(ssh.MarshalAuthorizedKey(signer.PublicKey()))}
	ctx := context.Background()
	if _, err := c.Checkin(ctx, token, agentapi.CheckinRequest{Boot: "b-wrong", MAC: req.MAC, HostKey: req.HostKey}); !errors.Is(err, agentapi.ErrRefused) {
		t.Fatalf("check-in for another boot: %v, want refused", err)
	}
	// A trust field outside its words is refused, before the token is
	// looked at.
	odd := req
	odd.Trust = &agentapi.BootTrust{Firmware: "uefi", SecureBoot: "on\x1b[2J", Lockdown: "none"}
	if _, err := c.Checkin(ctx, token, odd); !errors.Is(err, agentapi.ErrRefused) || !strings.Contains(err.Error(), "secure_boot") {
		t.Fatalf("check-in with an odd trust field: %v, want refused", err)
	}
	req.Trust = &agentapi.BootTrust{Firmware: "uefi", SecureBoot: "on", Lockdown: "integrity"}
	cfg, err := c.Checkin(ctx, token, req)
	if err != nil {
		t.Fatalf("check-in: %v", err)
	}
	// Its record says how the boot started, in the customer's words.
	evs, err := sqlite.ReadEvents(r.path)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Code == audit.AgentCheckin && (e.Details["secure_boot"] != "on" || e.Details["lockdown"] != "integrity" ||
			e.Details["trust"] != "Secure Boot: on; kernel lockdown: integrity; image: not verified (nothing checked lifeboat's RAM image before it ran)") {
			t.Errorf("check-in record: %v", e.Details)
		}
	}
	if cfg.Host != "web1" || len(cfg.AuthorizedKeys) != 1 || cfg.ReportToken == "" || cfg.Unlock.MaxTries != 5 || cfg.Mode != store.ModeUnlock {
		t.Errorf("check-in response = %+v", cfg)
	}
	// The host key comes back certified for this host, for hours.
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(cfg.HostCertificate))
	cert, ok := pk.(*ssh.Certificate)
	if err != nil || !ok || cert.CertType != ssh.HostCert || !slices.Equal(cert.ValidPrincipals, []string{"127.0.0.1"}) ||
		string(cert.Key.Marshal()) != string(signer.PublicKey().Marshal()) {
		t.Fatalf("host certificate = %+v, %v", pk, err)
	}
	if d := time.Until(time.Unix(int64(cert.ValidBefore), 0)); d > 2*time.Hour || d < 119*time.Minute {
		t.Errorf("certificate valid for %s, want 2h", d)
	}
	if cur, _ := r.steps.Current(mac); cur.Stage != store.StageCheckin {
		t.Errorf("boot stage = %v, want checkin", cur.Stage)
	}
	// The same agent asking again gets the same answer; anyone else with
	// the token (another host key) is refused as a replay.
	again, err := c.Checkin(ctx, token, req)
	if err != nil {
		t.Fatalf("retried check-in: %v", err)
	}
	if again.HostCertificate != cfg.HostCertificate || again.Mode != cfg.Mode || again.ReportToken == cfg.ReportToken {
		t.Errorf("retried check-in = %+v, want the first answer with a new report token", again)
	}
	other := req
	other.HostKey = string(ssh.MarshalAuthorizedKey(hostKey(t).PublicKey()))
	if _, err := c.Checkin(ctx, token, other); !errors.Is(err, agentapi.ErrRefused) || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("check-in with the token and another host key: %v, want refused as already used", err)
	}
	// Whoever sent it again, the first answer's report token still
	// works: a replay cannot cut the real agent off.
	if err := c.Report(ctx, cfg.ReportToken, agentapi.EventReport{Code: audit.SSHLogin}); err != nil {
		t.Errorf("the first answer's report token no longer reports: %v", err)
	}
	cfg = again

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
	want := "staff.add/ agent.checkin_refused/binding agent.checkin/ agent.checkin_retry/ agent.checkin_refused/replay ssh.login/ ssh.login/"
	if got := r.codes(t); got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}
	if cur, _ := r.steps.Current(mac); cur.Stage != store.StageLogin {
		t.Errorf("boot stage = %v, want login", cur.Stage)
	}
	ev, _ := os.ReadFile(r.path)
	if bytes.Contains(ev, []byte(token)) || strings.Contains(r.logBuf.String(), token) || bytes.Contains(ev, []byte(cfg.ReportToken)) {
		t.Error("a token leaked into a log")
	}
}

// dropFirst delivers the first request and loses its answer, as a
// connection cut after the server committed would.
type dropFirst struct{ n atomic.Int32 }

func (d *dropFirst) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && d.n.Add(1) == 1 {
		resp.Body.Close()
		return nil, errors.New("connection reset by peer")
	}
	return resp, err
}

// TestCheckinAnswerLost: the server took the check-in but the answer never
// reached the agent; its retry gets the same configuration, with the
// rescue grant the first one activated, not a refusal.
func TestCheckinAnswerLost(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	// The customer lets shell grants through (an approval by signature
	// is the store's test).
	if err := r.db.SetPolicy(ctx, "acme", store.ScopeShell, store.PolicyNotify, "customer:acme"); err != nil {
		t.Fatal(err)
	}
	g, err := r.db.RequestGrant(ctx, store.GrantRequest{Host: "web1", Scope: store.ScopeShell, Ticket: "T-2", Reason: "look at the logs",
		TTL: time.Hour, StaffKey: custKey}, "bob")
	if err != nil {
		t.Fatal(err)
	}
	token := r.token(t)
	c := &agentapi.Client{Base: r.srv.URL, HTTP: &http.Client{Transport: &dropFirst{}}}
	req := agentapi.CheckinRequest{Boot: r.boot.ID, MAC: mac, HostKey: string(ssh.MarshalAuthorizedKey(hostKey(t).PublicKey()))}
	if _, err := c.Checkin(ctx, token, req); err == nil || errors.Is(err, agentapi.ErrRefused) {
		t.Fatalf("first check-in: %v, want a network error the agent retries", err)
	}
	cfg, err := c.Checkin(ctx, token, req)
	if err != nil {
		t.Fatalf("retried check-in: %v", err)
	}
	if cfg.Mode != store.ModeRescue || cfg.Grant == nil || cfg.Grant.ID != g.ID || cfg.HostCertificate == "" {
		t.Fatalf("retried check-in = mode %s grant %+v", cfg.Mode, cfg.Grant)
	}
	if st, err := c.Grant(ctx, cfg.ReportToken, g.ID); err != nil || st.State != store.GrantActive {
		t.Errorf("grant status = %+v, %v", st, err)
	}
	if want := "agent.checkin/ rescue.active/ agent.checkin_retry/"; !strings.HasSuffix(r.codes(t), want) {
		t.Errorf("events %s, want them to end with %s", r.codes(t), want)
	}
	// The customer is told of the retry, with the address it came from:
	// it may be a replay by someone who saw the check-in.
	ns, err := r.db.Notices(ctx, "acme", 100)
	if err != nil {
		t.Fatal(err)
	}
	evs, _ := sqlite.ReadEvents(r.path)
	told := false
	for _, e := range evs {
		if e.Code == audit.CheckinRetry && e.Details["peer"] == "127.0.0.1" && e.Customer == "acme" {
			for _, n := range ns {
				told = told || n.Event.Seq == e.Seq
			}
		}
	}
	if !told {
		t.Error("the customer was not told of the retried check-in, with its address")
	}
}

// TestCheckinStoreDown: with the store failing, the check-in is a 503 the
// agent retries (ErrUnavailable, not a refusal), and the token still works
// once the store is back.
func TestCheckinStoreDown(t *testing.T) {
	r := newRig(t)
	token := r.token(t)
	ctx := context.Background()
	c := &agentapi.Client{Base: r.srv.URL}
	req := agentapi.CheckinRequest{Boot: r.boot.ID, MAC: mac, HostKey: string(ssh.MarshalAuthorizedKey(hostKey(t).PublicKey()))}
	r.db.Close() // every write fails from here
	_, err := c.Checkin(ctx, token, req)
	if !errors.Is(err, agentapi.ErrUnavailable) || errors.Is(err, agentapi.ErrRefused) {
		t.Fatalf("check-in with the store down: %v, want unavailable", err)
	}
	db, err := sqlite.Open(ctx, r.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.PeekToken(ctx, token); err != nil {
		t.Errorf("the failed check-in burnt the token: %v", err)
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

// TestRescueBoot: a host with an approved grant checks in for a rescue boot
// and gets the grant; the agent polls it, streams a recording, and its
// rescue.end ends the grant. Another host's boot may not read the grant.
func TestRescueBoot(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	g, err := r.db.RequestGrant(ctx, store.GrantRequest{Host: "web1", Scope: store.ScopePasswordReset, Ticket: "T-1", Reason: "forgot it",
		TTL: time.Hour, StaffKey: custKey}, "bob")
	if err != nil || g.State != store.GrantApproved {
		t.Fatalf("grant: %+v %v", g, err)
	}
	c := &agentapi.Client{Base: r.srv.URL}
	cfg, err := c.Checkin(ctx, r.token(t), agentapi.CheckinRequest{Boot: r.boot.ID, MAC: mac, HostKey: string(ssh.MarshalAuthorizedKey(hostKey(t).PublicKey()))})
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
	if g2, _ := r.db.Grant(ctx, g.ID); g2 == nil || g2.State != store.GrantEnded {
		t.Errorf("grant after rescue.end: %+v", g2)
	}
	// The agent reboots after it: a new boot of the host is certified
	// at once, without an alarm.
	b2, _, _ := r.steps.Begin(ctx, mac, "web1", store.ClientFirmware, "bios", audit.Event{Code: audit.BootStart})
	tok2, _ := r.db.IssueToken(ctx, store.Binding{MAC: mac, Host: "web1", Boot: b2.ID}, time.Minute)
	if next, err := c.Checkin(ctx, tok2, agentapi.CheckinRequest{Boot: b2.ID, MAC: mac, HostKey: string(ssh.MarshalAuthorizedKey(hostKey(t).PublicKey()))}); err != nil || next.HostCertificate == "" {
		t.Errorf("the boot after rescue.end: %+v, %v", next, err)
	}
	evs, _ := sqlite.ReadEvents(r.path)
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

// TestRefusedCheckinsCannotFloodTheChain: a machine on the boot network
// posts check-ins with made-up tokens, a 60 KB "MAC" and terminal escapes,
// and replays a used token. What it claims never reaches a record, and the
// chain (and the customer's inbox) gets one record a minute per reason and
// host, or peer, however many it sends.
func TestRefusedCheckinsCannotFloodTheChain(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	c := &agentapi.Client{Base: r.srv.URL}
	key := string(ssh.MarshalAuthorizedKey(hostKey(t).PublicKey()))
	junk := strings.Repeat("A", 50000) + strings.Repeat("\x1b[2J", 100) // about 60 KB on the wire
	for i := range 20 {
		_, err := c.Checkin(ctx, fmt.Sprintf("made-up-%d", i), agentapi.CheckinRequest{Boot: "b-\x1b]0;owned\x07", MAC: junk, HostKey: key})
		if !errors.Is(err, agentapi.ErrRefused) {
			t.Fatalf("bogus check-in %d: %v", i, err)
		}
	}
	tok := r.token(t)
	req := agentapi.CheckinRequest{Boot: r.boot.ID, MAC: mac, HostKey: key}
	if _, err := c.Checkin(ctx, tok, req); err != nil {
		t.Fatal(err)
	}
	other := req
	other.HostKey = string(ssh.MarshalAuthorizedKey(hostKey(t).PublicKey()))
	for range 10 {
		if _, err := c.Checkin(ctx, tok, other); !errors.Is(err, agentapi.ErrRefused) {
			t.Fatalf("replay: %v", err)
		}
	}
	evs, err := sqlite.ReadEvents(r.path)
	if err != nil {
		t.Fatal(err)
	}
	var refused []audit.Event
	for _, e := range evs {
		if e.Code == audit.CheckinRefused {
			refused = append(refused, e)
		}
	}
	if len(refused) != 2 {
		t.Fatalf("%d refusal records for 20 bogus check-ins and 10 replays, want 2 (one per reason)", len(refused))
	}
	for _, e := range refused {
		all := e.MAC + e.Boot + e.Host + fmt.Sprint(e.Details)
		if strings.Contains(all, "\x1b") || strings.Contains(all, "owned") || len(all) > 500 {
			t.Errorf("a refusal record holds what the caller claimed: %+v", e)
		}
	}
	if refused[0].Details["reason"] != "unknown" || refused[0].MAC != "" || refused[1].Details["reason"] != "replay" || refused[1].Boot != r.boot.ID {
		t.Errorf("records: %+v", refused)
	}
}

// TestSecondMachineGetsNoCertificate: while web1's agent is up and sends
// heartbeats, a machine that starts a new boot of web1 (DHCP with its MAC,
// then its script) and checks in with its own host key gets no
// certificate: its agent is told to wait (ErrBusy), and the customer gets
// an alarm naming both host keys, once a minute however often it tries.
// After the real agent's hand-off its report token may only say that the
// hand-off failed; its heartbeats end; a new boot is certified.
func TestSecondMachineGetsNoCertificate(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	c := &agentapi.Client{Base: r.srv.URL}
	real := hostKey(t).PublicKey()
	cfg, err := c.Checkin(ctx, r.token(t), agentapi.CheckinRequest{Boot: r.boot.ID, MAC: mac, HostKey: string(ssh.MarshalAuthorizedKey(real))})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Heartbeat(ctx, cfg.ReportToken); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	evil := hostKey(t).PublicKey()
	for range 5 {
		b, _, err := r.steps.Begin(ctx, mac, "web1", store.ClientIPXE, "bios", audit.Event{Code: audit.BootStart})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := r.db.IssueToken(ctx, store.Binding{MAC: mac, Host: "web1", Boot: b.ID}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		r.steps.Reached(mac, b.ID, store.StageScript) // as its script fetch does
		got, err := c.Checkin(ctx, tok, agentapi.CheckinRequest{Boot: b.ID, MAC: mac, HostKey: string(ssh.MarshalAuthorizedKey(evil))})
		if !errors.Is(err, agentapi.ErrBusy) || got != nil {
			t.Fatalf("second machine's check-in = %+v, %v; want ErrBusy and no answer", got, err)
		}
	}
	var alarms []audit.Event
	evs, _ := sqlite.ReadEvents(r.path)
	for _, e := range evs {
		if e.Code == audit.AgentConflict {
			alarms = append(alarms, e)
		}
	}
	if len(alarms) != 1 {
		t.Fatalf("%d alarms for 5 boots started by the second machine in a minute, want 1", len(alarms))
	}
	a := alarms[0]
	if a.Customer != "acme" || a.Details["live_boot"] != r.boot.ID || a.Details["live_host_key"] != ssh.FingerprintSHA256(real) ||
		a.Details["host_key"] != ssh.FingerprintSHA256(evil) || a.Details["peer"] != "127.0.0.1" {
		t.Errorf("alarm record: %+v", a)
	}
	if msg := notify.Render(a, "", nil); !strings.Contains(msg.Subject+msg.Text, "two machines claimed to be web1") {
		t.Errorf("alarm notice does not say what happened:\n%s\n%s", msg.Subject, msg.Text)
	}

	// The hand-off ends the agent.
	if err := c.Report(ctx, cfg.ReportToken, agentapi.EventReport{Code: audit.Handoff, Actor: "agent"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Heartbeat(ctx, cfg.ReportToken); !errors.Is(err, agentapi.ErrRefused) {
		t.Errorf("heartbeat after the hand-off = %v, want refused", err)
	}
	if err := c.Report(ctx, cfg.ReportToken, agentapi.EventReport{Code: audit.UnlockSuccess, Actor: "agent"}); !errors.Is(err, agentapi.ErrRefused) {
		t.Errorf("an unlock report after the hand-off = %v, want refused", err)
	}
	if err := c.Report(ctx, cfg.ReportToken, agentapi.EventReport{Code: audit.HandoffFailed, Actor: "agent", Details: map[string]string{"reason": "kexec"}}); err != nil {
		t.Errorf("hand-off failure after the hand-off = %v, want it recorded", err)
	}
	if err := c.Heartbeat(ctx, cfg.ReportToken); err != nil {
		t.Errorf("heartbeat after a failed hand-off = %v: the agent lives on", err)
	}
	if err := c.Report(ctx, cfg.ReportToken, agentapi.EventReport{Code: audit.Handoff, Actor: "agent"}); err != nil {
		t.Fatal(err)
	}
	b, _, _ := r.steps.Begin(ctx, mac, "web1", store.ClientIPXE, "bios", audit.Event{Code: audit.BootStart})
	tok, _ := r.db.IssueToken(ctx, store.Binding{MAC: mac, Host: "web1", Boot: b.ID}, time.Minute)
	next, err := c.Checkin(ctx, tok, agentapi.CheckinRequest{Boot: b.ID, MAC: mac, HostKey: string(ssh.MarshalAuthorizedKey(evil))})
	if err != nil || next.HostCertificate == "" {
		t.Fatalf("the next boot after the hand-off: %+v, %v", next, err)
	}
	if err := c.Report(ctx, cfg.ReportToken, agentapi.EventReport{Code: audit.HandoffFailed, Actor: "agent"}); !errors.Is(err, agentapi.ErrRefused) {
		t.Errorf("the old boot's token after the next boot's check-in = %v, want refused", err)
	}
}

// TestPrincipals: a certificate names what the provider controls: the
// reserved address and NAME.rescue_domain; a bare name only as the last
// resort (a customer's ssh may know their production host by it).
func TestPrincipals(t *testing.T) {
	withIP := &store.Host{Name: "web1", IP: netip.MustParseAddr("10.0.0.5")}
	for _, tt := range []struct {
		h      *store.Host
		domain string
		want   []string
	}{
		{withIP, "", []string{"10.0.0.5"}},
		{withIP, "rescue.example.net", []string{"10.0.0.5", "web1.rescue.example.net"}},
		{&store.Host{Name: "web1"}, "rescue.example.net", []string{"web1.rescue.example.net"}},
		{&store.Host{Name: "web1"}, "", []string{"web1"}},
	} {
		if got := Principals(tt.h, tt.domain); !slices.Equal(got, tt.want) {
			t.Errorf("Principals(%+v, %q) = %v, want %v", tt.h, tt.domain, got, tt.want)
		}
	}
}

// TestAgentChannelIsPinned: the agent trusts only the agent API key its
// boot parameters carry. A machine in between with a key of its own gets
// no request at all (the TLS handshake fails, and the agent says the
// server is not the one it was given); one that holds the TLS key but
// rewrites the answer (the customer's keys swapped for its own) is caught
// by the answer's signature.
func TestAgentChannelIsPinned(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	dir := t.TempDir()
	keys, err := agenttls.Load(filepath.Join(dir, "agent_key"), netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Store: r.db, Steps: r.steps, Log: slog.New(slog.DiscardHandler), Sign: keys.Sign}
	serve := func(k *agenttls.Keys, h http.Handler) *httptest.Server {
		srv := httptest.NewUnstartedServer(h)
		srv.TLS = k.TLSConfig()
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv
	}
	params := func(url string) *agentapi.BootParams {
		return &agentapi.BootParams{Server: url, ServerKey: keys.PublicKey(), Boot: r.boot.ID, MAC: mac, Host: "web1"}
	}
	req := agentapi.CheckinRequest{Boot: r.boot.ID, MAC: mac, HostKey: string(ssh.MarshalAuthorizedKey(hostKey(t).PublicKey()))}

	// A machine in between, with its own key.
	other, err := agenttls.Load(filepath.Join(dir, "other_key"), netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	var reached atomic.Int32
	mitm := serve(other, http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) { reached.Add(1); s.Handler().ServeHTTP(w, q) }))
	c, err := agentapi.NewClient(params(mitm.URL), nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := r.token(t)
	if _, err := c.Checkin(ctx, tok, req); !errors.Is(err, agentapi.ErrWrongServer) || reached.Load() != 0 {
		t.Fatalf("check-in through a machine with its own key: %v (it saw %d requests); want ErrWrongServer and none", err, reached.Load())
	}

	// One that holds the TLS key, and rewrites the answer.
	rewrite := serve(keys, http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, q)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(bytes.ReplaceAll(rec.Body.Bytes(), []byte(custKey), []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEvilEvilEvilEvilEvilEvilEvilEvilEvilEvilEvilEv evil")))
	}))
	if c, err = agentapi.NewClient(params(rewrite.URL), nil); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Checkin(ctx, tok, req); !errors.Is(err, agentapi.ErrWrongServer) || got != nil {
		t.Fatalf("a rewritten answer: %+v, %v; want ErrWrongServer", got, err)
	}

	// lifeboatd itself: the same token and key again (a retry), signed.
	real := serve(keys, s.Handler())
	if c, err = agentapi.NewClient(params(real.URL), nil); err != nil {
		t.Fatal(err)
	}
	got, err := c.Checkin(ctx, tok, req)
	if err != nil || len(got.AuthorizedKeys) != 1 || got.AuthorizedKeys[0] != custKey {
		t.Fatalf("check-in with lifeboatd: %+v, %v", got, err)
	}
	// Boot parameters without a key, or with a plain URL, make no client.
	for _, p := range []*agentapi.BootParams{{Server: real.URL}, {Server: "http://127.0.0.1:1", ServerKey: keys.PublicKey()}} {
		if _, err := agentapi.NewClient(p, nil); err == nil {
			t.Errorf("NewClient(%+v) made a client", p)
		}
	}
}

// BenchmarkCheckin is one boot's check-in (a new connection, as each boot
// makes), over the plain HTTP the agent API spoke before and over the
// pinned TLS it speaks now, side by side: go test -bench Checkin -run ^$
// ./pxe/agent/agentserver/ (cpu-ms/op: the server's and client's CPU).
func BenchmarkCheckin(b *testing.B) {
	for _, mode := range []string{"plain", "tls"} {
		b.Run(mode, func(b *testing.B) {
			r := newRig(b)
			ctx := context.Background()
			keys, err := agenttls.Load(filepath.Join(b.TempDir(), "agent_key"), netip.MustParseAddr("127.0.0.1"))
			if err != nil {
				b.Fatal(err)
			}
			s := &Server{Store: r.db, Steps: r.steps, Log: slog.New(slog.DiscardHandler), Sign: keys.Sign}
			srv := httptest.NewUnstartedServer(s.Handler())
			if mode == "tls" {
				srv.TLS = keys.TLSConfig()
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			key := string(ssh.MarshalAuthorizedKey(hostKey(b).PublicKey()))
			var cpu time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				boot, _, _ := r.steps.Begin(ctx, mac, "web1", store.ClientFirmware, "bios", audit.Event{Code: audit.BootStart})
				tok, err := r.db.IssueToken(ctx, store.Binding{MAC: mac, Host: "web1", Boot: boot.ID}, time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				r.steps.Reached(mac, boot.ID, store.StageScript)
				var c *agentapi.Client
				if mode == "tls" {
					c, err = agentapi.NewClient(&agentapi.BootParams{Server: srv.URL, ServerKey: keys.PublicKey()}, nil)
					if err != nil {
						b.Fatal(err)
					}
				} else {
					c = &agentapi.Client{Base: srv.URL, HTTP: &http.Client{Transport: &http.Transport{}}}
				}
				t0 := cpuTime()
				b.StartTimer()
				if _, err := c.Checkin(ctx, tok, agentapi.CheckinRequest{Boot: boot.ID, MAC: mac, HostKey: key}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				cpu += cpuTime() - t0
				_ = r.db.EndAgent(ctx, store.Binding{MAC: mac, Host: "web1", Boot: boot.ID}, true)
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime is the CPU this process has used (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
