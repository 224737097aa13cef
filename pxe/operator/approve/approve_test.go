package approve

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lifeboat-boot/lifeboat/pxe/keys/keyring"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/sqlite"
)

const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl staff@provider"

type rig struct {
	db      *sqlite.DB
	keys    *keyring.Keyring
	srv     *httptest.Server
	custKey string // the customer's private key file (ssh-keygen made it)
}

func newRig(t testing.TB) *rig {
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
	custKey := filepath.Join(dir, "id_acme")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ops@acme", "-f", custKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(custKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AddCustomer(ctx, store.Customer{Name: "acme", DisplayName: "ACME Corp", TimeZone: "Europe/Berlin", Keys: []string{strings.TrimSpace(string(pub))}}, "op"); err != nil {
		t.Fatal(err)
	}
	if err := db.AddStaff(ctx, store.Staff{Customer: "acme", Name: "bob", Role: "support", Keys: store.Fingerprints([]string{key})}, "op"); err != nil {
		t.Fatal(err)
	}
	h := &store.Host{Name: "web-01", MAC: "52:54:00:00:00:01", IP: netip.MustParseAddr("10.0.0.11"), Customer: "acme", AuthorizedKeys: []string{key}}
	if _, err := db.Apply(ctx, store.Change{Put: []*store.Host{h}}, "op"); err != nil {
		t.Fatal(err)
	}
	s := &Server{Store: db, Links: keys, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Provider: "Example Hosting"}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &rig{db: db, keys: keys, srv: srv, custKey: custKey}
}

// sign signs text as the customer does: ssh-keygen -Y sign with their key.
func (r *rig) sign(t testing.TB, key, text string) string {
	t.Helper()
	cmd := exec.Command("ssh-keygen", "-q", "-Y", "sign", "-n", "lifeboat-grant", "-f", key)
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ssh-keygen -Y sign: %v", err)
	}
	return string(out)
}

func (r *rig) shellGrant(t testing.TB, reason string) *store.Grant {
	t.Helper()
	g, err := r.db.RequestGrant(context.Background(), store.GrantRequest{Host: "web-01", Scope: store.ScopeShell, Ticket: "SUP-4242",
		Reason: reason, TTL: 2 * time.Hour, StaffKey: key}, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if g.State != store.GrantRequested {
		t.Fatalf("shell grant is %s, want requested", g.State)
	}
	return g
}

func (r *rig) link(g *store.Grant) string {
	return r.srv.URL + "/approve/" + g.ID + "?sig=" + r.keys.ApprovalSig(g.ID)
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The page shows the grant, escaped; a bad or missing signature, or a
// signature of another grant, shows nothing; a decision is made once.
func TestApprovalPage(t *testing.T) {
	r := newRig(t)
	g := r.shellGrant(t, `disk errors <script>alert(1)</script> & "more"`)
	other := r.shellGrant(t, "another")
	code, body := get(t, r.link(g))
	if code != 200 || !strings.Contains(body, "SUP-4242") || !strings.Contains(body, "web-01") || !strings.Contains(body, `id="approve"`) {
		t.Fatalf("page: %d\n%s", code, body)
	}
	if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;") {
		t.Fatal("the reason is not escaped")
	}
	for _, u := range []string{r.srv.URL + "/approve/" + g.ID, r.srv.URL + "/approve/" + g.ID + "?sig=" + r.keys.ApprovalSig(other.ID),
		r.srv.URL + "/approve/" + g.ID + "?sig=AAAA"} {
		if code, body := get(t, u); code != 403 || strings.Contains(body, "SUP-4242") {
			t.Errorf("%s: %d", u, code)
		}
	}
	// It says what approving means, in the customer's time zone.
	for _, want := range []string{"Example Hosting", "ACME Corp", "root shell", "reboots into lifeboat", "2 hours", "Europe/Berlin", "lifeboat rescue revoke", "ssh-keygen -Y sign -n lifeboat-grant"} {
		if !strings.Contains(body, want) {
			t.Errorf("page does not say %q", want)
		}
	}
	// The text to sign is served as is, for curl | ssh-keygen.
	code, text := get(t, r.srv.URL+"/approve/"+g.ID+"/text?sig="+r.keys.ApprovalSig(g.ID))
	if code != 200 || text != string(store.ConsentText(g)) {
		t.Fatalf("text: %d %q", code, text)
	}
	post := func(id, sig, decision, signature string) (int, string) {
		resp, err := http.PostForm(r.srv.URL+"/approve/"+id, url.Values{"sig": {sig}, "decision": {decision}, "signature": {signature}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := post(g.ID, r.keys.ApprovalSig(other.ID), "approve", r.sign(t, r.custKey, text)); code != 403 {
		t.Errorf("decision with another grant's link: %d", code)
	}
	if code, _ := post(g.ID, r.keys.ApprovalSig(g.ID), "maybe", ""); code != 400 {
		t.Errorf("decision maybe: %d", code)
	}
	// Whoever holds the link (the mail server, an operator who added a
	// webhook) cannot approve: it takes the customer's key.
	operatorKey := filepath.Join(t.TempDir(), "id_op")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", operatorKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	for name, signature := range map[string]string{
		"no signature":         "",
		"the operator's key":   r.sign(t, operatorKey, text),
		"another grant's text": r.sign(t, r.custKey, string(store.ConsentText(other))),
	} {
		if code, body := post(g.ID, r.keys.ApprovalSig(g.ID), "approve", signature); code != 403 || !strings.Contains(body, `id="refused"`) {
			t.Errorf("approve with %s: %d", name, code)
		}
	}
	if now, _ := r.db.Grant(context.Background(), g.ID); now.State != store.GrantRequested {
		t.Fatalf("after refused approvals: %s", now.State)
	}
	if code, body := post(g.ID, r.keys.ApprovalSig(g.ID), "deny", ""); code != 200 || !strings.Contains(body, "You denied this grant") {
		t.Fatalf("deny: %d\n%s", code, body)
	}
	// Decided once: approving now changes nothing.
	if code, body := post(g.ID, r.keys.ApprovalSig(g.ID), "approve", r.sign(t, r.custKey, text)); code != 200 || !strings.Contains(body, "nothing to decide") {
		t.Fatalf("approve after deny: %d\n%s", code, body)
	}
	if now, _ := r.db.Grant(context.Background(), g.ID); now.State != store.GrantDenied || !strings.HasPrefix(now.DecidedBy, "customer:acme") {
		t.Fatalf("grant = %+v", now)
	}
}

// In a real browser (Debian's chromium, headless): the customer opens the
// link from the notice, reads the grant, signs the text shown with
// ssh-keygen, pastes the signature, clicks Approve, and the grant is
// approved with their key's name on it.
func TestApproveInChromium(t *testing.T) {
	exe := "/usr/bin/chromium"
	if _, err := os.Stat(exe); err != nil {
		t.Fatalf("chromium: %v (make test installs Debian's chromium package)", err)
	}
	r := newRig(t)
	g := r.shellGrant(t, "kernel panics at boot; customer asked us to look")
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("headless", true), chromedp.WindowSize(390, 844), // a phone's screen
		chromedp.UserDataDir(t.TempDir()))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var host, ticket, reason, text, result, state string
	if err := chromedp.Run(ctx,
		chromedp.Navigate(r.link(g)),
		chromedp.Text("#host", &host, chromedp.ByID),
		chromedp.Text("#ticket", &ticket, chromedp.ByID),
		chromedp.Text("#reason", &reason, chromedp.ByID),
		chromedp.Text("#text", &text, chromedp.ByID),
	); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(text, "\n") {
		text += "\n" // innerText may drop the last newline of a <pre>
	}
	if err := chromedp.Run(ctx,
		chromedp.SetValue("#signature", r.sign(t, r.custKey, text), chromedp.ByID),
		chromedp.Click("#approve", chromedp.ByID),
		chromedp.WaitVisible("#result", chromedp.ByID),
		chromedp.Text("#result", &result, chromedp.ByID),
		chromedp.Text("#state", &state, chromedp.ByID),
	); err != nil {
		t.Fatal(err)
	}
	if host != "web-01" || ticket != "SUP-4242" || !strings.Contains(reason, "kernel panics") {
		t.Errorf("page showed host %q ticket %q reason %q", host, ticket, reason)
	}
	if !strings.Contains(result, "You approved this grant") || !strings.HasPrefix(state, "approved") {
		t.Errorf("after the click: %q, state %q", result, state)
	}
	now, err := r.db.Grant(context.Background(), g.ID)
	if err != nil || now.State != store.GrantApproved || !strings.HasPrefix(now.DecidedBy, "customer:acme (key SHA256:") {
		t.Fatalf("grant after the click = %+v, %v", now, err)
	}
}

// FuzzDecide posts arbitrary ids, signatures and decisions: never a panic,
// never a decision without the grant's own signature.
func FuzzDecide(f *testing.F) {
	r := newRig(f)
	g, err := r.db.RequestGrant(context.Background(), store.GrantRequest{Host: "web-01", Scope: store.ScopeShell, Ticket: "SUP-1",
		Reason: "fuzzing the page", TTL: time.Hour, StaffKey: key}, "bob")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(g.ID, "AAAA", "approve")
	f.Add("../../etc/passwd", "", "deny")
	f.Add(g.ID, r.keys.ApprovalSig("g-other"), "approve")
	f.Fuzz(func(t *testing.T, id, sig, decision string) {
		if sig == r.keys.ApprovalSig(id) {
			return // a valid link: not this test's question
		}
		resp, err := http.PostForm(r.srv.URL+"/approve/"+url.PathEscape(id), url.Values{"sig": {sig}, "decision": {decision}, "signature": {sig}})
		if err != nil {
			return // an id the client refuses to send
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatalf("POST %q sig %q: 200", id, sig)
		}
		if now, _ := r.db.Grant(context.Background(), g.ID); now.State != store.GrantRequested {
			t.Fatalf("grant decided without its signature: %s", now.State)
		}
	})
}

// TestEndGrantFromLink: the link of a grant that may be used (approved
// under a notify policy) ends it; no key is needed to take access away.
func TestEndGrantFromLink(t *testing.T) {
	r := newRig(t)
	g, err := r.db.RequestGrant(context.Background(), store.GrantRequest{Host: "web-01", Scope: store.ScopePasswordReset, Ticket: "SUP-7",
		Reason: "forgot the root password", TTL: time.Hour, StaffKey: key}, "bob")
	if err != nil || g.State != store.GrantApproved {
		t.Fatalf("grant %+v, %v", g, err)
	}
	if code, body := get(t, r.link(g)); code != 200 || !strings.Contains(body, `id="revoke"`) || strings.Contains(body, `id="approve"`) {
		t.Fatalf("page of an approved grant: %d\n%s", code, body)
	}
	resp, err := http.PostForm(r.srv.URL+"/approve/"+g.ID, url.Values{"sig": {r.keys.ApprovalSig(g.ID)}, "decision": {"revoke"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "You ended this grant") {
		t.Fatalf("revoke: %d\n%s", resp.StatusCode, b)
	}
	if now, _ := r.db.Grant(context.Background(), g.ID); now.State != store.GrantRevoked {
		t.Fatalf("grant after the link's revoke: %s", now.State)
	}
}
