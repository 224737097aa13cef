package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/keys/keyring"
	"github.com/lifeboat-boot/lifeboat/pxe/operator/notify/notifytest"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/store/sqlite"
)

const sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl c"

type rig struct {
	db   *sqlite.DB
	keys *keyring.Keyring
	rx   *notifytest.Receiver
	mx   *notifytest.MailServer
	smtp *SMTP
}

func newRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "lifeboat.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	keys, err := keyring.Load(filepath.Join(dir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	rx, err := notifytest.NewReceiver("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.Close() })
	mx, err := notifytest.NewMailServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mx.Close() })
	caFile := filepath.Join(dir, "smtp-ca.pem")
	if err := os.WriteFile(caFile, mx.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(mx.Addr, ":")
	var p int
	fmt.Sscan(port, &p)
	smtp := &SMTP{Host: host, Port: p, From: "lifeboat <lifeboat@provider.example>", CAFile: caFile, RequireTLS: true}
	if err := smtp.Check(); err != nil {
		t.Fatal(err)
	}
	if err := db.AddCustomer(ctx, store.Customer{Name: "acme", Emails: []string{"ops@acme.example"}}, "op"); err != nil {
		t.Fatal(err)
	}
	h := &store.Host{Name: "web-01", MAC: "52:54:00:00:00:01", IP: netip.MustParseAddr("10.0.0.11"), Customer: "acme", AuthorizedKeys: []string{sshKey}}
	if _, err := db.Apply(ctx, store.Change{Put: []*store.Host{h}}, "op"); err != nil {
		t.Fatal(err)
	}
	secret, sealed, err := keys.NewWebhookSecret()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddWebhook(ctx, store.Webhook{Customer: "acme", URL: rx.URL, Sealed: sealed}, "op"); err != nil {
		t.Fatal(err)
	}
	if err := rx.SetSecret(secret); err != nil {
		t.Fatal(err)
	}
	if err := db.AddStaff(ctx, store.Staff{Customer: "acme", Name: "bob", Role: "support", Keys: store.Fingerprints([]string{sshKey})}, "op"); err != nil {
		t.Fatal(err)
	}
	// The setup's own records (host added, webhook added, staff) are
	// told too; the tests count what comes after them.
	for range 100 { // one per receiver at a time: they come in order
		setup, err := db.DueNotices(ctx, time.Now().Add(time.Hour), 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(setup) == 0 {
			break
		}
		for _, n := range setup {
			if err := db.NoticeDelivered(ctx, n.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	return &rig{db: db, keys: keys, rx: rx, mx: mx, smtp: smtp}
}

func (r *rig) relay() *Relay {
	return &Relay{Outbox: r.db, Keys: r.keys, SMTP: r.smtp, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
}

func (r *rig) boot(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		for _, c := range []audit.Code{audit.BootStart, audit.AgentCheckin, audit.SSHLogin, audit.UnlockFailure, audit.UnlockSuccess, audit.Handoff} {
			if err := r.db.Emit(context.Background(), audit.Event{Code: c, Host: "web-01", MAC: "52:54:00:00:00:01", Boot: fmt.Sprintf("boot-%d", i),
				Actor: "SHA256:abc", Details: map[string]string{"host_key": "SHA256:hostkey", "remote": "192.0.2.7:50000", "volumes": "/dev/vda2",
					"failed_tries": "1", "tries_left": "4", "entry": "Debian GNU/Linux"}}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Every notice reaches the webhook (signed) and the mailbox (over
// STARTTLS), with its receipt, even though the receiver is down at first.
func TestRelayDeliversThroughOutage(t *testing.T) {
	r := newRig(t)
	r.rx.SetDown(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.relay().Run(ctx) }()
	defer func() { cancel(); <-done }()
	r.boot(t, 3)
	// 3 boots × 5 notified codes (boot.start is not told).
	waitFor(t, "mail", 10*time.Second, func() bool { return len(r.mx.Messages()) == 15 })
	// The outage path runs: deliveries are tried, turned away, retried.
	waitFor(t, "failed webhook attempts", 10*time.Second, func() bool { return r.rx.TurnedAway() >= 3 })
	if len(r.rx.Deliveries()) != 0 {
		t.Fatal("deliveries while the receiver was down")
	}
	r.rx.SetDown(false)
	waitFor(t, "webhooks", 10*time.Second, func() bool { return len(r.rx.Deliveries()) == 15 })
	if bad := r.rx.Refused(); len(bad) > 0 {
		t.Fatalf("receiver refused signatures: %v", bad)
	}
	recs, _ := r.db.AuditRecords(context.Background(), "", 0, 0)
	hashOf := map[int64]string{}
	for _, e := range recs {
		hashOf[e.Seq] = e.Hash
	}
	ids := map[string]bool{}
	for _, d := range r.rx.Deliveries() {
		if ids[d.ID] {
			t.Fatalf("webhook-id %s delivered twice", d.ID)
		}
		ids[d.ID] = true
		if hashOf[d.Receipt.Seq] != d.Receipt.Hash {
			t.Fatalf("delivery %s: receipt %d:%s does not match the log", d.ID, d.Receipt.Seq, d.Receipt.Hash)
		}
	}
	for _, m := range r.mx.Messages() {
		if !m.TLS {
			t.Fatal("mail sent without STARTTLS")
		}
		if m.To != "ops@acme.example" || !strings.Contains(m.Header.Get("Content-Type"), "text/plain") {
			t.Fatalf("mail to %s, %s", m.To, m.Header.Get("Content-Type"))
		}
		if !strings.Contains(m.Body, "lifeboat audit verify --customer --receipt ") || !strings.HasPrefix(m.Header.Get("Subject"), "[lifeboat] ") || !strings.Contains(m.Header.Get("Subject"), "web-01") {
			t.Fatalf("mail without receipt or subject:\n%s\n%s", m.Header.Get("Subject"), m.Body)
		}
	}
	ns, _ := r.db.Notices(context.Background(), "acme", 100)
	for _, n := range ns {
		if n.State != "delivered" {
			t.Fatalf("notice %s is %s", n.ID, n.State)
		}
	}
}

// A notice that cannot be delivered before GiveUp is given up, with a
// record saying so.
func TestRelayGivesUp(t *testing.T) {
	r := newRig(t)
	r.rx.SetDown(true)
	rl := r.relay()
	rl.GiveUp = 3 * time.Second // room for a few tries of each, one at a time per target, on a busy machine too
	rl.SMTP = nil               // e-mail cannot go out either
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rl.Run(ctx) }()
	defer func() { cancel(); <-done }()
	r.boot(t, 1)
	waitFor(t, "notices to fail", 30*time.Second, func() bool {
		ns, _ := r.db.Notices(context.Background(), "acme", 100)
		failed := 0
		for _, n := range ns {
			switch n.State {
			case "pending":
				return false
			case "failed":
				failed++
			}
		}
		return failed == 10
	})
	evs, _ := r.db.Events(context.Background(), store.EventFilter{})
	failed := 0
	for _, e := range evs {
		if e.Code == audit.NoticeFailed {
			failed++
		}
	}
	if failed != 10 {
		t.Fatalf("%d notice.failed records, want 10", failed)
	}
	ns, _ := r.db.Notices(context.Background(), "acme", 100)
	for _, n := range ns {
		if n.State == "failed" && n.Error == "" {
			t.Fatalf("notice %+v given up after %d attempts", n, n.Attempts)
		}
	}
}

func TestBackoff(t *testing.T) {
	r := &Relay{MinBackoff: 10 * time.Second, MaxBackoff: time.Hour}
	for attempts, want := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second} {
		if d := r.backoff(attempts); d > want || d < want*4/5 {
			t.Errorf("backoff(%d) = %s, want %s less up to a fifth", attempts, d, want)
		}
	}
	if d := r.backoff(50); d > time.Hour || d < 48*time.Minute {
		t.Errorf("backoff(50) = %s, want about an hour", d)
	}
}

// Notices say what happened in plain words, carry the receipt, and cannot
// be made to carry forged lines.
func TestRender(t *testing.T) {
	e := audit.Event{Seq: 42, Hash: strings.Repeat("ab", 32), Time: time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC), Code: audit.SSHLogin,
		Customer: "acme", Host: "web-01", MAC: "52:54:00:00:00:01", Boot: "b1", Actor: "SHA256:key",
		Details: map[string]string{"remote": "192.0.2.7:5000\r\nBcc: evil@example.com", "user": "root"}}
	m := Render(e, "", nil)
	if !strings.Contains(m.Subject, "logged in to web-01") || strings.ContainsAny(m.Subject, "\r\n") {
		t.Fatalf("subject %q", m.Subject)
	}
	if strings.Contains(m.Text, "\r") || strings.Contains(m.Text, "\nBcc:") {
		t.Fatalf("text carries a forged line:\n%s", m.Text)
	}
	if !strings.Contains(m.Text, "--receipt 42:"+e.Hash) || !strings.Contains(string(m.JSON), `"receipt":{"seq":42`) {
		t.Fatalf("no receipt:\n%s\n%s", m.Text, m.JSON)
	}
	if Render(e, "", nil).Text != m.Text || string(Render(e, "", nil).JSON) != string(m.JSON) {
		t.Fatal("rendering is not deterministic: retries would differ")
	}
}

// A grant that waits for its customer is announced with its approval link,
// signed for that grant; one approved at once carries its page as the
// link that ends it, never as an approval link.
func TestGrantNoticesCarryApprovalLink(t *testing.T) {
	r := newRig(t)
	rl := r.relay()
	rl.ApprovalURL = func(id string) string {
		return "https://rescue.example.net/approve/" + id + "?sig=" + r.keys.ApprovalSig(id)
	}
	ctx := context.Background()
	req := store.GrantRequest{Host: "web-01", Scope: store.ScopeShell, Ticket: "SUP-9", Reason: "disk errors", TTL: time.Hour, StaffKey: sshKey}
	shell, err := r.db.RequestGrant(ctx, req, "bob")
	if err != nil {
		t.Fatal(err)
	}
	req.Scope = store.ScopePasswordReset
	if _, err := r.db.RequestGrant(ctx, req, "bob"); err != nil {
		t.Fatal(err)
	}
	rl.Now = time.Now
	if _, err := rl.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "grant notices", 10*time.Second, func() bool { return len(r.rx.Deliveries()) == 3 && len(r.mx.Messages()) == 3 })
	link := "https://rescue.example.net/approve/" + shell.ID + "?sig=" + r.keys.ApprovalSig(shell.ID)
	links, ends := 0, 0
	for _, d := range r.rx.Deliveries() {
		var p Payload
		if err := json.Unmarshal(d.Body, &p); err != nil {
			t.Fatal(err)
		}
		if p.Data.ApproveURL != "" {
			links++
			if p.Data.ApproveURL != link || p.Type != string(audit.RescueRequest) || p.Data.Details["grant"] != shell.ID {
				t.Errorf("link %q on %s of %s", p.Data.ApproveURL, p.Type, p.Data.Details["grant"])
			}
		}
		if p.Data.RevokeURL != "" {
			ends++
			if p.Data.Details["grant"] == shell.ID || !strings.Contains(p.Data.RevokeURL, p.Data.Details["grant"]) {
				t.Errorf("revoke link %q on %s of %s", p.Data.RevokeURL, p.Type, p.Data.Details["grant"])
			}
		}
	}
	for _, m := range r.mx.Messages() {
		if strings.Contains(m.Body, "To approve") && !strings.Contains(m.Body, link) {
			t.Errorf("mail with another approval link:\n%s", m.Body)
		}
	}
	if links != 1 || ends != 2 {
		t.Fatalf("%d notices carry an approval link, %d an end link; want 1 (the shell grant's request) and 2 (the reset's request and approval)", links, ends)
	}
}

// A receiver that hangs holds up only itself: the other webhook and the
// mail get every notice at once, each receiver in the order of the records.
func TestRelaySlowReceiverHoldsUpOnlyItself(t *testing.T) {
	r := newRig(t)
	release := make(chan struct{})
	var hung atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		hung.Add(1)
		select {
		case <-release:
		case <-req.Context().Done():
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer slow.Close()
	defer close(release)
	_, sealed, err := r.keys.NewWebhookSecret()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.db.AddWebhook(context.Background(), store.Webhook{Customer: "acme", URL: slow.URL, Sealed: sealed}, "op"); err != nil {
		t.Fatal(err)
	}
	rl := r.relay()
	rl.HTTP = &http.Client{Timeout: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rl.Run(ctx) }()
	defer func() { cancel(); <-done }()
	start := time.Now()
	r.boot(t, 2) // 10 notified records, after the record of the slow webhook's addition
	waitFor(t, "the other channels' notices", 10*time.Second, func() bool {
		return len(r.rx.Deliveries()) == 11 && len(r.mx.Messages()) == 11
	})
	t.Logf("10 webhook and 10 mail notices delivered in %s with another receiver hanging", time.Since(start).Round(time.Millisecond))
	if n := hung.Load(); n != 1 {
		t.Errorf("the hanging receiver got %d requests at once, want 1 (one at a time per target)", n)
	}
	last := int64(0)
	for _, d := range r.rx.Deliveries() {
		var p Payload
		_ = json.Unmarshal(d.Body, &p)
		if p.Data.Receipt.Seq < last {
			t.Errorf("record %d delivered after %d", p.Data.Receipt.Seq, last)
		}
		last = p.Data.Receipt.Seq
	}
}

// TestRefusalSummaries: a refused key and connections over the cap are
// told apart, in plain words.
func TestRefusalSummaries(t *testing.T) {
	for _, tc := range []struct {
		d    map[string]string
		want string
	}{
		{map[string]string{"keys": "SHA256:abc", "remote": "192.0.2.7:5000"}, "a login to web1 with a key that may not log in was refused (SHA256:abc from 192.0.2.7:5000)"},
		{map[string]string{"reason": "connection limit", "connections": "40", "remote": "192.0.2.7:5000"}, "connections to web1 were turned away: too many at once (40 so far, the first from 192.0.2.7:5000)"},
	} {
		if got := summary(audit.Event{Code: audit.SSHRefused, Host: "web1", Details: tc.d}); got != tc.want {
			t.Errorf("summary = %q, want %q", got, tc.want)
		}
	}
}

// The check-in's notice says how the boot started, when the agent said.
func TestCheckinSummary(t *testing.T) {
	d := map[string]string{"host_key": "SHA256:k", "trust": "secure Boot: off; kernel lockdown: none; image: not verified"}
	if got, want := summary(audit.Event{Code: audit.AgentCheckin, Host: "web1", Details: d}), "web1 booted into lifeboat; its host key this boot is SHA256:k. Secure Boot: off; kernel lockdown: none; image: not verified"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
	if got := summary(audit.Event{Code: audit.AgentCheckin, Host: "web1", Details: map[string]string{"host_key": "SHA256:k"}}); got != "web1 booted into lifeboat; its host key this boot is SHA256:k" {
		t.Errorf("summary without trust = %q", got)
	}
}
