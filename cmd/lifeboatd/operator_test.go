package main

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/pxe/keys/sshsig"
	"github.com/lifeboat-boot/lifeboat/pxe/operator/api"
	"github.com/lifeboat-boot/lifeboat/pxe/operator/notify/notifytest"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/store/sqlite"
)

// sshKey makes an SSH key pair: its signer and authorized_keys line.
func sshKey(t *testing.T) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))
}

// notice is what a test reads of a webhook delivery.
type notice struct {
	Type string `json:"type"`
	Data struct {
		Actor      string            `json:"actor"`
		Details    map[string]string `json:"details"`
		ApproveURL string            `json:"approve_url"`
	} `json:"data"`
}

// notices returns what rx got.
func notices(rx *notifytest.Receiver) []notice {
	var out []notice
	for _, d := range rx.Deliveries() {
		var n notice
		if json.Unmarshal(d.Body, &n) == nil {
			out = append(out, n)
		}
	}
	return out
}

// told waits (at most 20 s) until rx has a notice of code whose detail
// key holds want, and fails the test if none comes.
func told(t *testing.T, rx *notifytest.Receiver, code audit.Code, key, want string) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		for _, n := range notices(rx) {
			if n.Type == string(code) && strings.Contains(n.Data.Details[key], want) {
				return
			}
		}
	}
	t.Errorf("the customer was not told: no %s notice with %s ~ %q", code, key, want)
}

func isProposed(err error) bool {
	var p *api.Proposed
	return errors.As(err, &p)
}

func status(err error) int {
	var e *api.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// TestOneOperatorCannot: an operator with a valid token, against a real
// lifeboatd, tries each way the review found to give themselves what the
// customer did not give. Each is refused or only proposed, the customer's
// own webhook hears of each attempt, and the audit chain holds them all.
func TestOneOperatorCannot(t *testing.T) {
	rx, p, hosts := notifiedFleet(t, 1)
	ctx := context.Background()
	h := hosts[0]
	op := p.api
	custSigner := p.custKey
	custKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(custSigner.PublicKey())))
	opSigner, opKey := sshKey(t)
	if err := op.AddCustomer(ctx, api.Customer{Name: "evilcorp"}); err != nil {
		t.Fatal(err)
	}
	who, _ := op.Whoami(ctx)
	if err := op.PutStaff(ctx, api.Staff{Customer: "acme", Name: who.Operator, Role: "support", Keys: store.Fingerprints([]string{opKey})}); err != nil {
		t.Fatal(err)
	}
	told(t, rx, audit.StaffAdd, "name", who.Operator)

	// A webhook of the operator's, to receive the approval link: proposed only.
	evil, err := notifytest.NewReceiver("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	if _, err := op.AddWebhook(ctx, "acme", evil.URL+"/hook?token=s3cret-path"); !isProposed(err) {
		t.Errorf("operator's webhook: %v, want a proposal", err)
	}
	if ws, _ := p.cust.Webhooks(ctx, "acme"); len(ws) != 1 {
		t.Errorf("acme has %d webhooks, want their own only", len(ws))
	}
	told(t, rx, audit.ProposalOpen, "summary", "add a webhook to "+must(url.Parse(evil.URL)).Host)
	for _, n := range rx.Deliveries() {
		if strings.Contains(string(n.Body), "s3cret-path") {
			t.Error("a notice holds the proposed webhook URL's path (it may hold the receiver's token)")
		}
	}
	// The operator cannot accept their own proposal.
	props, _ := p.cust.Proposals(ctx, "acme")
	if len(props) == 0 {
		t.Fatal("no proposal listed for the customer")
	}
	if err := op.AnswerProposal(ctx, props[0].ID, true, nil); status(err) != http.StatusForbidden {
		t.Errorf("operator accepting a proposal: %v", err)
	}
	// Flipping the policy to notify, putting their own key as the
	// customer's, sealing recordings to their own age key: proposed only.
	if err := op.SetPolicy(ctx, "acme", store.ScopeShell, store.PolicyNotify); !isProposed(err) {
		t.Errorf("policy flip: %v, want a proposal", err)
	}
	if _, err := op.UpdateCustomer(ctx, "acme", api.CustomerUpdate{Keys: &[]string{opKey}}); !isProposed(err) {
		t.Errorf("operator's key as the customer's: %v, want a proposal", err)
	}
	if err := op.SetAgeRecipient(ctx, "acme", "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"); !isProposed(err) {
		t.Errorf("operator's age key: %v, want a proposal", err)
	}
	told(t, rx, audit.ProposalOpen, "summary", "policy for shell grants to notify")
	told(t, rx, audit.ProposalOpen, "summary", "SSH keys "+store.Fingerprints([]string{opKey})[0])
	if ps, _ := op.Policies(ctx, "acme"); ps[1].Policy != store.PolicyApprove {
		t.Errorf("shell policy after the proposal: %s", ps[1].Policy)
	}
	// Minting a token that would act as the customer (ending theirs), or
	// one for a challenge signed by the operator's key.
	if _, err := op.CustomerToken(ctx, "acme"); status(err) != http.StatusForbidden {
		t.Errorf("customer token by an operator: %v", err)
	}
	anon, _ := api.NewClient(op.Base, "", "")
	if ch, err := anon.Challenge(ctx, "acme"); err != nil {
		t.Error(err)
	} else {
		sig, _ := sshsig.Sign(opSigner, []byte(ch.Text), ch.Namespace)
		if _, err := anon.SignedToken(ctx, "acme", ch.Nonce, sig); status(err) != http.StatusForbidden {
			t.Errorf("token for the operator's signature: %v", err)
		}
		good, _ := sshsig.Sign(custSigner, []byte(ch.Text), ch.Namespace)
		if _, err := anon.SignedToken(ctx, "acme", ch.Nonce, good); status(err) != http.StatusForbidden {
			t.Errorf("a challenge used twice: %v", err)
		}
	}
	if _, err := p.cust.Whoami(ctx); err != nil {
		t.Errorf("the customer's token after the attempt: %v", err)
	}
	told(t, rx, audit.OperatorRefused, "what", "API token")
	// Moving the host to another customer (whose policies the operator
	// would pick).
	moved := *h
	moved.Customer = "evilcorp"
	if err := op.SetHost(ctx, &moved); status(err) != http.StatusForbidden {
		t.Errorf("moving the host: %v", err)
	}
	told(t, rx, audit.OperatorRefused, "what", "move host "+h.Name)
	// Approving their own shell grant: no signature, their own key's,
	// or the customer's over another grant: refused, told.
	g, err := op.RequestGrant(ctx, api.GrantRequest{Host: h.Name, Scope: store.ScopeShell, Ticket: "SUP-1", Reason: "just looking", TTL: time.Hour, StaffKey: opKey})
	if err != nil || g.State != store.GrantRequested {
		t.Fatalf("shell grant: %+v, %v", g, err)
	}
	c, err := op.Consent(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	byOp, _ := sshsig.Sign(opSigner, []byte(c.Text), c.Namespace)
	other, _ := sshsig.Sign(custSigner, []byte(strings.Replace(c.Text, "just looking", "other", 1)), c.Namespace)
	for name, sig := range map[string][]byte{"none": nil, "the operator's key": byOp, "another text": other} {
		if _, err := op.ApproveGrant(ctx, g.ID, sig); status(err) != http.StatusForbidden {
			t.Errorf("approve with %s: %v", name, err)
		}
	}
	if cur, _ := op.Grant(ctx, g.ID); cur.State != store.GrantRequested {
		t.Fatalf("after the operator's approvals the grant is %s", cur.State)
	}
	told(t, rx, audit.OperatorRefused, "what", "approve grant "+g.ID)
	// A grant for someone not on the customer's staff list.
	stranger, _ := op.RequestGrant(ctx, api.GrantRequest{Host: h.Name, Scope: store.ScopePasswordReset, Ticket: "SUP-2", Reason: "as someone else", TTL: time.Hour, StaffKey: custKey})
	if stranger != nil && stranger.ID != "" {
		t.Errorf("grant with a key not on the staff list: %+v", stranger)
	}
	told(t, rx, audit.OperatorRefused, "what", "get a password-reset grant")

	// The customer's own signature approves, and the customer ends it.
	sig, _ := sshsig.Sign(custSigner, []byte(c.Text), c.Namespace)
	if g, err = p.cust.ApproveGrant(ctx, g.ID, sig); err != nil || g.State != store.GrantApproved {
		t.Fatalf("the customer's approval: %+v, %v", g, err)
	}
	if g, err = p.cust.RevokeGrant(ctx, g.ID); err != nil || g.State != store.GrantRevoked {
		t.Fatalf("the customer's revoke: %+v, %v", g, err)
	}
	told(t, rx, audit.RescueRevoke, "grant", g.ID)

	// The evil webhook heard nothing; the chain holds every attempt.
	if n := len(evil.Deliveries()); n != 0 {
		t.Errorf("the operator's receiver got %d notices", n)
	}
	p.stop(false)
	evs, err := sqlite.ReadEvents(p.db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(evs, audit.Start()); err != nil {
		t.Fatal(err)
	}
	count := map[audit.Code]int{}
	for _, e := range evs {
		if e.Customer == "acme" {
			count[e.Code]++
		}
	}
	if count[audit.ProposalOpen] != 4 || count[audit.OperatorRefused] != 6 { // token, move, three approvals, a stranger's grant
		t.Errorf("acme's records: %d proposals, %d refusals; want 4 and 6", count[audit.ProposalOpen], count[audit.OperatorRefused])
	}
}

// TestOperatorUnderContract: where the provider's contract lets operators
// change customers' settings, an operator's webhook takes effect, but the
// customer's existing channel hears of it first and the new one never
// hears of its own addition; and it still cannot approve: the approval
// link it now receives is not enough without the customer's key.
func TestOperatorUnderContract(t *testing.T) {
	rx, err := notifytest.NewReceiver("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	p := newProc(t, map[string]any{"notice_retry": "200ms", "operators_change_customers": true, "customer_listen": "auto"})
	custURL := "http://" + p.ip + ":8082"
	p.start()
	hosts := p.fleet(rx, 1)
	ctx := context.Background()
	op := p.api
	opSigner, opKey := sshKey(t)
	who, _ := op.Whoami(ctx)
	if err := op.PutStaff(ctx, api.Staff{Customer: "acme", Name: who.Operator, Role: "support", Keys: store.Fingerprints([]string{opKey})}); err != nil {
		t.Fatal(err)
	}
	evil, err := notifytest.NewReceiver("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	wh, err := op.AddWebhook(ctx, "acme", evil.URL)
	if err != nil {
		t.Fatalf("under the contract: %v", err)
	}
	if err := evil.SetSecret(wh.Secret); err != nil {
		t.Fatal(err)
	}
	told(t, rx, audit.WebhookAdd, "webhook", wh.Webhook.ID)
	g, err := op.RequestGrant(ctx, api.GrantRequest{Host: hosts[0].Name, Scope: store.ScopeShell, Ticket: "SUP-9", Reason: "self-approval", TTL: time.Hour, StaffKey: opKey})
	if err != nil {
		t.Fatal(err)
	}
	// The link reaches the operator's receiver; opening it works, approving
	// with it does not.
	link := ""
	for end := time.Now().Add(20 * time.Second); link == "" && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		for _, n := range notices(evil) {
			if n.Type == string(audit.WebhookAdd) {
				t.Error("the new webhook heard of its own addition")
			}
			if strings.Contains(n.Data.ApproveURL, g.ID) {
				link = n.Data.ApproveURL
			}
		}
	}
	if link == "" {
		t.Fatal("no approval link reached the operator's webhook")
	}
	u, _ := url.Parse(link)
	text, err := http.Get(custURL + u.Path + "/text?" + u.RawQuery)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(text.Body)
	text.Body.Close()
	byOp, _ := sshsig.Sign(opSigner, body, store.ConsentNamespace)
	for _, sig := range []string{"", string(byOp)} {
		resp, err := http.PostForm(custURL+u.Path, url.Values{"sig": {u.Query().Get("sig")}, "decision": {"approve"}, "signature": {sig}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("approval by link with signature %.20q: %d", sig, resp.StatusCode)
		}
	}
	if cur, _ := op.Grant(ctx, g.ID); cur.State != store.GrantRequested {
		t.Fatalf("grant after the operator's tries: %s", cur.State)
	}
	// The contract also lets them move a host; the customer it leaves is told.
	if err := op.AddCustomer(ctx, api.Customer{Name: "evilcorp"}); err != nil {
		t.Fatal(err)
	}
	moved := *hosts[0]
	moved.Customer = "evilcorp"
	if err := op.SetHost(ctx, &moved); err != nil {
		t.Fatalf("moving under the contract: %v", err)
	}
	told(t, rx, audit.HostSet, "customer", "acme → evilcorp")
}

// TestCheckpointsCatchARewrite: an insider with the database (not the
// audit key) rewrites a record and re-hashes every record after it, so
// that the chain alone verifies; lifeboatd's signed checkpoint does not
// match the rewritten chain, and a forged checkpoint fails its signature.
func TestCheckpointsCatchARewrite(t *testing.T) {
	_, p, hosts := func() (*notifytest.Receiver, *proc, []*api.Host) {
		rx, err := notifytest.NewReceiver("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rx.Close() })
		p := newProc(t, map[string]any{"notice_retry": "200ms", "checkpoint_every": "100ms"})
		p.start()
		return rx, p, p.fleet(rx, 2)
	}()
	ctx := context.Background()
	if _, err := p.api.Host(ctx, hosts[0].Name); err != nil {
		t.Fatal(err)
	}
	key, err := p.api.AuditKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := audit.ParseAuditKey(key)
	if err != nil {
		t.Fatal(err)
	}
	verify := func() error {
		var cps []audit.Checkpoint
		for after := int64(0); ; {
			page, err := p.api.Checkpoints(ctx, after, 1000)
			if err != nil {
				return err
			}
			if len(page) == 0 {
				break
			}
			for _, c := range page {
				if err := c.Verify(pub); err != nil {
					return err
				}
			}
			cps, after = append(cps, page...), page[len(page)-1].Seq
		}
		if len(cps) == 0 {
			return errors.New("no checkpoint")
		}
		_, _, err := audit.VerifyPagesAt(func(after int64) ([]audit.Event, error) { return p.api.AuditRecords(ctx, after, 1000) }, cps)
		return err
	}
	// Wait for a checkpoint of the whole log as it is.
	var err2 error
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		recs, _ := p.api.AuditRecords(ctx, 0, 1000)
		cps, _ := p.api.Checkpoints(ctx, 0, 1000)
		if err2 = verify(); err2 == nil && len(recs) > 0 && len(cps) > 0 && cps[len(cps)-1].Seq == recs[len(recs)-1].Seq {
			break
		}
		err2 = cmp.Or(err2, errors.New("no checkpoint of the head yet"))
	}
	if err2 != nil {
		t.Fatalf("the untouched log: %v", err2)
	}
	p.stop(false)
	// The rewrite: record 3 changed, every record from it re-sealed.
	evs, err := sqlite.ReadEvents(p.db)
	if err != nil {
		t.Fatal(err)
	}
	h := audit.Head{Seq: evs[1].Seq, Hash: evs[1].Hash}
	evs[2].Actor = "nobody"
	sdb, err := sql.Open("sqlite", "file:"+p.db)
	if err != nil {
		t.Fatal(err)
	}
	for i := 2; i < len(evs); i++ {
		h = audit.Seal(&evs[i], h)
		if _, err := sdb.Exec(`UPDATE events SET actor = ?, salt = ?, prev = ?, hash = ? WHERE seq = ?`, evs[i].Actor, evs[i].Salt, evs[i].Prev, evs[i].Hash, evs[i].Seq); err != nil {
			t.Fatal(err)
		}
	}
	sdb.Close()
	p.start()
	if _, _, err := audit.VerifyPagesAt(func(after int64) ([]audit.Event, error) { return p.api.AuditRecords(ctx, after, 1000) }, nil); err != nil {
		t.Fatalf("the re-hashed chain alone should verify (only a checkpoint or receipt can tell): %v", err)
	}
	var bad *audit.BadRecord
	if err := verify(); !errors.As(err, &bad) || !strings.Contains(bad.Reason, "signed checkpoint") {
		t.Fatalf("the rewrite against the checkpoints: %v", err)
	}
	t.Logf("caught: %v", verify())
	// Nor does the restarted lifeboatd bless the rewrite with a new
	// checkpoint: it says so in its log instead.
	time.Sleep(300 * time.Millisecond)
	p.stop(false)
	if !strings.Contains(p.log.String(), "no longer matches its signed checkpoint") {
		t.Errorf("lifeboatd did not report the rewrite")
	}
	// Forging the checkpoints too needs the key.
	sdb, _ = sql.Open("sqlite", "file:"+p.db)
	if _, err := sdb.Exec(`UPDATE checkpoints SET hash = (SELECT hash FROM events WHERE events.seq = checkpoints.seq)`); err != nil {
		t.Fatal(err)
	}
	sdb.Close()
	p.start()
	if err := verify(); !errors.Is(err, audit.ErrCheckpointSignature) {
		t.Fatalf("forged checkpoints: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
