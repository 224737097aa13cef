package sqlite

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/pxe/keys/consolecode"
	"github.com/lifeboat-boot/lifeboat/pxe/keys/sshsig"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

const staffKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl staff@provider"

func grantReq(scope store.Scope) store.GrantRequest {
	return store.GrantRequest{Host: "web-01", Scope: scope, Ticket: "SUP-77", Reason: "root password forgotten", TTL: time.Hour, StaffKey: staffKey}
}

func TestGrantsLifecycle(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	fleet(t, db)
	now := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	db.now = func() time.Time { return now }

	// Notify policy (password-reset's default): approved at once.
	g, err := db.RequestGrant(ctx, grantReq(store.ScopePasswordReset), "bob")
	if err != nil {
		t.Fatal(err)
	}
	if g.State != store.GrantApproved || g.Policy != store.PolicyNotify || g.Customer != "acme" || g.DecidedBy != "policy:notify" || !g.Live(now) {
		t.Fatalf("notify grant = %+v", g)
	}
	// Approve policy (shell's default): waits, then the customer decides once.
	s, err := db.RequestGrant(ctx, grantReq(store.ScopeShell), "bob")
	if err != nil {
		t.Fatal(err)
	}
	if s.State != store.GrantRequested || s.Live(now) {
		t.Fatalf("shell grant = %+v", s)
	}
	// The window is the hour asked, from the approval, not the request.
	now = now.Add(20 * time.Minute)
	if s, err = db.ApproveGrant(ctx, s.ID, consent(t, s)); err != nil || s.State != store.GrantApproved ||
		!strings.HasPrefix(s.DecidedBy, "customer:acme (key SHA256:") || !s.From.Equal(now) || !s.Until.Equal(now.Add(time.Hour)) {
		t.Fatalf("approve = %+v, %v", s, err)
	}
	if _, err := db.DenyGrant(ctx, s.ID, "customer:acme"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second decision = %v, want a conflict", err)
	}
	// A customer's own policy wins over the default.
	if err := db.SetPolicy(ctx, "acme", store.ScopePasswordReset, store.PolicyApprove, "op"); err != nil {
		t.Fatal(err)
	}
	p, err := db.RequestGrant(ctx, grantReq(store.ScopePasswordReset), "bob")
	if err != nil || p.State != store.GrantRequested || p.Policy != store.PolicyApprove {
		t.Fatalf("grant under the customer's policy = %+v, %v", p, err)
	}
	if p, err = db.DenyGrant(ctx, p.ID, "customer:acme"); err != nil || p.State != store.GrantDenied {
		t.Fatalf("deny = %+v, %v", p, err)
	}
	pols, _ := db.Policies(ctx, "acme")
	if len(pols) != 3 || pols[0].Policy != store.PolicyApprove || pols[0].Default || !pols[1].Default {
		t.Fatalf("policies = %+v", pols)
	}
	// Revoke, then expiry of what is left open.
	if g, err = db.RevokeGrant(ctx, g.ID, "bob"); err != nil || g.State != store.GrantRevoked {
		t.Fatalf("revoke = %+v, %v", g, err)
	}
	if _, err := db.RevokeGrant(ctx, g.ID, "bob"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("revoking twice = %v", err)
	}
	now = now.Add(90 * time.Minute)
	if n, err := db.ExpireGrants(ctx); err != nil || n != 1 {
		t.Fatalf("ExpireGrants = %d, %v (the approved shell grant)", n, err)
	}
	if s, _ = db.Grant(ctx, s.ID); s.State != store.GrantExpired {
		t.Fatalf("shell grant after its window = %s", s.State)
	}
	// Every change is a record of acme's, and told to acme.
	want := []audit.Code{audit.RescueRequest, audit.RescueApprove, audit.RescueRequest, audit.RescueApprove, audit.RescuePolicy,
		audit.RescueRequest, audit.RescueDeny, audit.RescueRevoke, audit.RescueExpire}
	recs, _ := db.AuditRecords(ctx, "acme", 0, 0)
	var got []audit.Code
	for _, r := range recs {
		if r.Code != "" && r.Code[:7] == "rescue." {
			got = append(got, r.Code)
			if r.Host == "" && r.Code != audit.RescuePolicy || r.Details["reason"] != "" && r.Code != audit.RescueRequest {
				t.Errorf("record %+v", r)
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("records %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("records %v, want %v", got, want)
		}
	}
	told := 0
	for code, n := range queuedCodes(t, db, "acme") {
		if strings.HasPrefix(string(code), "rescue.") {
			told += n
		}
	}
	if told != 2*len(want) { // a webhook and an address each
		t.Fatalf("%d rescue notices, want %d", told, 2*len(want))
	}
	if _, _, err := db.VerifyChain(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestGrantRefusals(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	fleet(t, db)
	bad := grantReq("root")
	if _, err := db.RequestGrant(ctx, bad, "bob"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad scope: %v", err)
	}
	r := grantReq(store.ScopeShell)
	r.Host = "nope"
	if _, err := db.RequestGrant(ctx, r, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown host: %v", err)
	}
	if _, err := db.DenyGrant(ctx, "g-none", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown grant: %v", err)
	}
	if err := db.SetPolicy(ctx, "acme", "shell", "always", "op"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad policy: %v", err)
	}
	if err := db.SetPolicy(ctx, "nobody", "shell", "notify", "op"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown customer: %v", err)
	}
}

// A console grant's code is in the request's answer once; only its hash is
// stored, and it never reaches the records.
func TestConsoleCode(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	fleet(t, db)
	g, err := db.RequestGrant(ctx, grantReq(store.ScopeConsole), "hands")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\d{4}-\d{4}$`).MatchString(g.ConsoleCode) {
		t.Fatalf("console code %q", g.ConsoleCode)
	}
	again, err := db.Grant(ctx, g.ID)
	if err != nil || again.ConsoleCode != "" || again.ConsoleCodeHash != consolecode.Hash(g.ID, g.ConsoleCode) {
		t.Errorf("stored grant: code %q hash %q, %v", again.ConsoleCode, again.ConsoleCodeHash, err)
	}
	if consolecode.Hash(g.ID, strings.ReplaceAll(g.ConsoleCode, "-", " ")) != again.ConsoleCodeHash {
		t.Error("the code typed with a space instead of the dash does not match")
	}
	evs, _ := db.Events(ctx, store.EventFilter{})
	for _, e := range evs {
		for _, v := range e.Details {
			if strings.Contains(v, g.ConsoleCode) {
				t.Errorf("console code in record %s", e.Code)
			}
		}
	}
}

// TestRemovingAnOperatorEndsTheirGrants: an operator removed keeps no way
// in: each of their open grants is revoked with its record, and others'
// grants are left alone.
func TestRemovingAnOperatorEndsTheirGrants(t *testing.T) {
	db, path := openDB(t)
	ctx := context.Background()
	fleet(t, db)
	for _, op := range []string{"bob", "carol"} {
		if _, err := db.AddOperator(ctx, op, "test"); err != nil {
			t.Fatal(err)
		}
	}
	bobs, err := db.RequestGrant(ctx, grantReq(store.ScopePasswordReset), "bob")
	if err != nil {
		t.Fatal(err)
	}
	carols, err := db.RequestGrant(ctx, grantReq(store.ScopeShell), "carol")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RemoveOperator(ctx, "bob", "alice"); err != nil {
		t.Fatal(err)
	}
	if g, _ := db.Grant(ctx, bobs.ID); g.State != store.GrantRevoked {
		t.Errorf("bob's grant after his removal: %s, want revoked", g.State)
	}
	if g, _ := db.Grant(ctx, carols.ID); g.State != carols.State {
		t.Errorf("carol's grant: %s, want %s", g.State, carols.State)
	}
	evs, _ := ReadEvents(path)
	found := false
	for _, e := range evs {
		if e.Code == audit.RescueRevoke && e.Details["grant"] == bobs.ID && e.Actor == "alice" && strings.Contains(e.Details["reason"], "bob was removed") {
			found = true
		}
	}
	if !found {
		t.Error("no rescue.revoke record for bob's grant naming why")
	}
}

// TestApprovalNeedsTheCustomersSignature: an approval counts only as a
// signature by one of the customer's keys over that grant's exact text;
// the record carries text and signature, and ssh-keygen -Y verify checks
// them with the customer's public key alone.
func TestApprovalNeedsTheCustomersSignature(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	fleet(t, db)
	g, err := db.RequestGrant(ctx, grantReq(store.ScopeShell), "bob")
	if err != nil {
		t.Fatal(err)
	}
	other, err := db.RequestGrant(ctx, grantReq(store.ScopeShell), "carol")
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	operatorKey, _ := ssh.NewSignerFromKey(priv)
	byOperator, _ := sshsig.Sign(operatorKey, store.ConsentText(g), store.ConsentNamespace)
	wrongNS, _ := sshsig.Sign(acmeSigner, store.ConsentText(g), "file")
	for name, sig := range map[string][]byte{
		"none":              nil,
		"garbage":           []byte("yes please"),
		"another key":       byOperator,
		"another grant":     consent(t, other),
		"another namespace": wrongNS,
	} {
		if _, err := db.ApproveGrant(ctx, g.ID, sig); !errors.Is(err, store.ErrConsent) {
			t.Errorf("%s: %v, want ErrConsent", name, err)
		}
	}
	if cur, _ := db.Grant(ctx, g.ID); cur.State != store.GrantRequested {
		t.Fatalf("after refused approvals the grant is %s", cur.State)
	}
	sig := consent(t, g)
	if _, err := db.ApproveGrant(ctx, g.ID, sig); err != nil {
		t.Fatal(err)
	}
	recs, _ := db.AuditRecords(ctx, "acme", 0, 0)
	var rec audit.Event
	for _, r := range recs {
		if r.Code == audit.RescueApprove && r.Details["grant"] == g.ID {
			rec = r
		}
	}
	if rec.Details["signature"] == "" || rec.Details["consent"] == "" {
		t.Fatalf("approval record %+v", rec)
	}
	dir := t.TempDir()
	allowed := filepath.Join(dir, "allowed_signers")
	sigFile := filepath.Join(dir, "consent.sig")
	_ = os.WriteFile(allowed, []byte("acme "+string(ssh.MarshalAuthorizedKey(acmeSigner.PublicKey()))), 0o600)
	_ = os.WriteFile(sigFile, []byte(rec.Details["signature"]+"\n"), 0o600)
	cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "acme", "-n", store.ConsentNamespace, "-s", sigFile)
	cmd.Stdin = strings.NewReader(rec.Details["consent"])
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y verify of the record: %v: %s", err, out)
	}
	// A customer without keys on record cannot be approved for at all.
	if err := db.AddStaff(ctx, store.Staff{Customer: "globex", Name: "bob", Role: "support", Keys: store.Fingerprints([]string{staffKey})}, "op"); err != nil {
		t.Fatal(err)
	}
	r := grantReq(store.ScopeShell)
	r.Host = "db-01"
	gx, err := db.RequestGrant(ctx, r, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ApproveGrant(ctx, gx.ID, consent(t, gx)); !errors.Is(err, store.ErrConsent) || !strings.Contains(err.Error(), "no SSH key") {
		t.Errorf("approval for a customer without keys: %v", err)
	}
}

// TestGrantsGoToListedStaffOnly: a grant goes only to a staff member on
// the customer's list, with a key listed for them; taking them off the
// list revokes their open grants there.
func TestGrantsGoToListedStaffOnly(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	fleet(t, db)
	if _, err := db.RequestGrant(ctx, grantReq(store.ScopeShell), "mallory"); !errors.Is(err, store.ErrForbidden) {
		t.Errorf("staff not on the list: %v", err)
	}
	r := grantReq(store.ScopeShell)
	r.StaffKey = string(ssh.MarshalAuthorizedKey(acmeSigner.PublicKey()))
	if _, err := db.RequestGrant(ctx, r, "bob"); !errors.Is(err, store.ErrForbidden) {
		t.Errorf("listed staff with an unlisted key: %v", err)
	}
	g, err := db.RequestGrant(ctx, grantReq(store.ScopePasswordReset), "bob")
	if err != nil || g.State != store.GrantApproved {
		t.Fatalf("listed staff: %+v, %v", g, err)
	}
	if err := db.RemoveStaff(ctx, "acme", "bob", "op"); err != nil {
		t.Fatal(err)
	}
	if cur, _ := db.Grant(ctx, g.ID); cur.State != store.GrantRevoked {
		t.Errorf("bob's grant after he left acme's list: %s", cur.State)
	}
	if _, err := db.RequestGrant(ctx, grantReq(store.ScopePasswordReset), "bob"); !errors.Is(err, store.ErrForbidden) {
		t.Errorf("after removal: %v", err)
	}
	// Each change of the list reached acme's channels.
	q := queuedCodes(t, db, "acme")
	adds, removes := q[audit.StaffAdd], q[audit.StaffRemove]
	if adds != 3 || removes != 2 { // fleet adds three before acme has a webhook
		t.Errorf("staff notices: %d adds, %d removes", adds, removes)
	}
}
