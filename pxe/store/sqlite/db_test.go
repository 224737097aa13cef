package sqlite

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/pxe/keys/sshca"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

func openDB(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lifeboat.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func host(name, mac, ip string) *store.Host {
	return &store.Host{Name: name, MAC: mac, IP: netip.MustParseAddr(ip), AuthorizedKeys: []string{key}}
}

func TestMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lifeboat.db")
	ctx := context.Background()
	for i := 0; i < 2; i++ { // the second open finds everything applied
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := db.SchemaVersion(ctx); err != nil || v != 10 {
			t.Fatalf("schema version = %d, %v", v, err)
		}
		db.Close()
	}
	// A database from a newer lifeboatd is refused, not misread.
	sdb, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sdb.Exec(`INSERT INTO schema_migrations (version, applied) VALUES (99, 'x')`); err != nil {
		t.Fatal(err)
	}
	sdb.Close()
	if _, err := Open(ctx, path); err == nil || !strings.Contains(err.Error(), "upgrade lifeboatd") {
		t.Fatalf("Open(newer schema) = %v", err)
	}
	if _, err := Open(ctx, filepath.Join(t.TempDir(), "no", "such", "dir", "x.db")); err == nil {
		t.Fatal("Open in a missing folder succeeded")
	}
}

func TestApplyHosts(t *testing.T) {
	db, path := openDB(t)
	ctx := context.Background()
	if err := db.AddCustomer(ctx, store.Customer{Name: "acme", Emails: []string{"ops@acme.example"}}, "alice"); err != nil {
		t.Fatal(err)
	}
	a := host("web1", "52:54:00:AA:00:01", "10.0.0.5")
	a.Customer, a.OtherMACs, a.VLAN = "acme", []string{"52:54:00:aa:00:02"}, 120
	res, err := db.Apply(ctx, store.Change{Put: []*store.Host{a, host("web2", "52:54:00:aa:00:03", "10.0.0.6")}, Create: true}, "alice")
	if err != nil || res.Added != 2 {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	// Every MAC finds the host; the snapshot is canonical.
	for _, m := range []string{"52:54:00:aa:00:01", "52:54:00:aa:00:02"} {
		mac, _ := net.ParseMAC(m)
		if h, ok := db.Lookup(mac); !ok || h.Name != "web1" || h.MAC != "52:54:00:aa:00:01" || h.VLAN != 120 {
			t.Errorf("Lookup(%s) = %+v, %v", m, h, ok)
		}
	}
	bad := []struct {
		c    store.Change
		want string
	}{
		{store.Change{Put: []*store.Host{host("web1", "52:54:00:aa:00:09", "10.0.0.9")}, Create: true}, "exists already"},
		{store.Change{Put: []*store.Host{host("web3", "52:54:00:aa:00:02", "10.0.0.9")}}, `MAC 52:54:00:aa:00:02 already belongs to "web1"`},
		{store.Change{Put: []*store.Host{host("web3", "52:54:00:aa:00:09", "10.0.0.6")}}, `IP 10.0.0.6 already reserved for "web2"`},
		{store.Change{Put: []*store.Host{host("web9", "52:54:00:aa:00:09", "10.0.0.9")}, Replace: true}, "use 'host add'"},
		{store.Change{Put: []*store.Host{{Name: "web3", MAC: "52:54:00:aa:00:09", IP: netip.MustParseAddr("10.0.0.9"), AuthorizedKeys: []string{key}, Customer: "nobody"}}}, "lifeboat customer add nobody"},
		{store.Change{Remove: []string{"ghost"}}, "not found"},
		{store.Change{Put: []*store.Host{host("x y", "52:54:00:aa:00:09", "10.0.0.9")}}, "DNS-style name"},
	}
	for _, b := range bad {
		if _, err := db.Apply(ctx, b.c, "alice"); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("Apply(%+v) = %v, want %q", b.c, err, b.want)
		}
	}
	// A refused change leaves nothing behind, in the tables or the log.
	if n := len(db.Hosts()); n != 2 {
		t.Fatalf("%d hosts after refused changes", n)
	}
	// Swap IPs in one change: refused as a whole would be wrong; the final
	// state checks, so it goes through... but only if it checks.
	b := host("web2", "52:54:00:aa:00:03", "10.0.0.7")
	b.Mode = store.ModeDisk
	res, err = db.Apply(ctx, store.Change{Put: []*store.Host{b}, Replace: true}, "bob")
	if err != nil || res.Updated != 1 {
		t.Fatalf("set: %+v, %v", res, err)
	}
	res, err = db.Apply(ctx, store.Change{Put: []*store.Host{b}}, "bob")
	if err != nil || res.Unchanged != 1 {
		t.Fatalf("same again: %+v, %v", res, err)
	}
	c := host("web4", "52:54:00:aa:00:04", "10.0.0.8")
	c.OtherMACs = []string{"52:54:00:aa:00:09", "52:54:00:aa:00:05"}
	if _, err := db.Apply(ctx, store.Change{Put: []*store.Host{c}, Remove: []string{"web1"}}, "carol"); err != nil {
		t.Fatal(err)
	}
	before, _ := json.Marshal(db.Hosts())
	db.Close()

	// Reopen: the inventory and the log are on disk.
	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	// The snapshot a change leaves in memory is what the tables hold.
	if after, _ := json.Marshal(db2.Hosts()); string(after) != string(before) {
		t.Errorf("inventory in memory before the restart:\n%s\nread back from the store:\n%s", before, after)
	}
	if n, err := db2.Apply(ctx, store.Change{Put: []*store.Host{c}}, "carol"); err != nil || n.Unchanged != 1 {
		t.Errorf("the same host again after a restart: %+v, %v", n, err)
	}
	hs := db2.Hosts()[:1]
	if len(hs) != 1 || hs[0].Name != "web2" || hs[0].Mode != store.ModeDisk || hs[0].IP.String() != "10.0.0.7" {
		t.Fatalf("after reopen: %+v", hs)
	}
	evs, err := db2.Events(ctx, store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, string(e.Code)+"/"+e.Host+"/"+e.Actor)
		if strings.Contains(fmt.Sprint(e.Details), "AAAA") {
			t.Errorf("event %d holds a whole key: %v", e.Seq, e.Details)
		}
	}
	want := "customer.add//alice host.add/web1/alice host.add/web2/alice host.set/web2/bob host.remove/web1/carol host.add/web4/carol"
	if strings.Join(got, " ") != want {
		t.Errorf("events:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if d := evs[3].Details; d["ip"] != "10.0.0.6 → 10.0.0.7" || d["mode"] != "unlock → disk" {
		t.Errorf("host.set details = %v", d)
	}
}

// TestGroupCommit: many emitters at once, every event durable, in one
// sequence with no gaps.
func TestGroupCommit(t *testing.T) {
	db, path := openDB(t)
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if err := db.Emit(context.Background(), audit.Event{Code: audit.DHCPOffer, MAC: fmt.Sprintf("g%d-%d", g, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	evs, err := ReadEvents(path) // another connection, as a tool would
	if err != nil || len(evs) != 32*50 {
		t.Fatalf("ReadEvents: %d events, %v", len(evs), err)
	}
	seen := map[string]bool{}
	for i, e := range evs {
		seen[e.MAC] = true
		if e.Seq != int64(i+1) || e.Time.IsZero() {
			t.Fatalf("event %d: seq %d time %v", i, e.Seq, e.Time)
		}
	}
	if len(seen) != 32*50 {
		t.Errorf("%d distinct events, want %d", len(seen), 32*50)
	}
	db.Close()
	if err := db.Emit(context.Background(), audit.Event{Code: audit.DHCPOffer}); !errors.Is(err, ErrClosed) {
		t.Errorf("Emit after Close = %v", err)
	}
	if _, err := ReadEvents(filepath.Join(t.TempDir(), "nothing.db")); err == nil {
		t.Error("ReadEvents of a file that is not a store succeeded")
	}
}

// TestEmitFailsWhenStoreBreaks: an event that cannot be written is an
// error (the action is refused), and so is every later one.
func TestEmitFailsWhenStoreBreaks(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	if _, err := db.sql.Exec(`DROP TABLE events`); err != nil {
		t.Fatal(err)
	}
	if err := db.Emit(ctx, audit.Event{Code: audit.BootStart}); err == nil {
		t.Fatal("Emit succeeded without an events table")
	}
	if _, err := db.sql.Exec(`CREATE TABLE events (seq INTEGER PRIMARY KEY, time TEXT, code TEXT, mac TEXT, host TEXT, boot TEXT, actor TEXT, details TEXT)`); err != nil {
		t.Fatal(err)
	}
	if err := db.Emit(ctx, audit.Event{Code: audit.BootStart}); err == nil {
		t.Fatal("Emit succeeded after an earlier event was lost")
	}
}

func TestBootsPersistAndRestore(t *testing.T) {
	db, path := openDB(t)
	ctx := context.Background()
	b, err := db.NewSteps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	boot, _, err := b.Begin(ctx, "52:54:00:aa:00:01", "web1", store.ClientFirmware, "uefi", audit.Event{Code: audit.BootStart})
	if err != nil {
		t.Fatal(err)
	}
	b.Reached("52:54:00:aa:00:01", boot.ID, store.StageFirstStage)
	b.Reached("52:54:00:aa:00:01", boot.ID, store.StageCheckin)
	// Stage records ride the writer queue; an event after them is
	// committed after them.
	if err := db.Emit(ctx, audit.Event{Code: audit.AgentCheckin, Boot: boot.ID}); err != nil {
		t.Fatal(err)
	}
	recs, err := db.BootRecords(ctx, store.BootFilter{Host: "web1"})
	if err != nil || len(recs) != 1 {
		t.Fatalf("BootRecords = %+v, %v", recs, err)
	}
	r := recs[0]
	if r.ID != boot.ID || r.Stage != "checkin" || r.Firmware != "uefi" || len(r.Stages) != 3 || r.Stages[0].Stage != "dhcp" || r.Stages[2].After < 0 {
		t.Errorf("record = %+v", r)
	}
	if one, err := db.BootRecord(ctx, boot.ID); err != nil || len(one.Stages) != 3 {
		t.Errorf("store.BootRecord = %+v, %v", one, err)
	}
	if _, err := db.BootRecord(ctx, "b-nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("store.BootRecord(unknown) = %v", err)
	}
	db.Close()

	// After a restart the boot is still in flight and goes on.
	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	b2, err := db2.NewSteps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cur, ok := b2.Current("52:54:00:aa:00:01")
	if !ok || cur.ID != boot.ID || cur.Stage != store.StageCheckin {
		t.Fatalf("restored = %+v, %v", cur, ok)
	}
	b2.Reached("52:54:00:aa:00:01", boot.ID, store.StageLogin)
	if err := db2.Emit(ctx, audit.Event{Code: audit.SSHLogin}); err != nil {
		t.Fatal(err)
	}
	if one, _ := db2.BootRecord(ctx, boot.ID); one.Stage != "login" {
		t.Errorf("after restart: stage %s", one.Stage)
	}
}

func TestBootTokens(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	bind := store.Binding{MAC: "52:54:00:aa:00:01", Host: "web1", Boot: "b-1"}
	if _, err := db.Apply(ctx, store.Change{Put: []*store.Host{host("web1", bind.MAC, "10.0.0.5")}}, "test"); err != nil {
		t.Fatal(err)
	}
	tok, err := db.IssueToken(ctx, bind, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := db.PeekToken(ctx, tok); err != nil || got != bind {
		t.Fatalf("Peek = %+v, %v", got, err)
	}
	req := func(key string) store.CheckinRequest {
		return store.CheckinRequest{Token: tok, MAC: bind.MAC, Boot: bind.Boot, HostKey: key, ReportTTL: time.Hour, Peer: "10.0.0.5",
			Certify: func(h *store.Host, b store.Binding) (string, map[string]string, error) {
				return "cert of " + key + " for " + h.Name, nil, nil
			}}
	}
	other := req("SHA256:a")
	other.MAC = "52:54:00:aa:00:02"
	if _, err := db.Checkin(ctx, other); !errors.Is(err, store.ErrTokenBinding) {
		t.Errorf("check-in with another MAC = %v", err)
	}
	// Eight agents race with the same token, each with a host key of its
	// own: exactly one wins, the others are replays.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var wins []string
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("SHA256:%d", i)
			if c, err := db.Checkin(ctx, req(key)); err == nil {
				mu.Lock()
				wins = append(wins, key)
				mu.Unlock()
				if c.HostCert != "cert of "+key+" for web1" || c.ReportToken == "" || c.Retry {
					t.Errorf("answer = %+v", c)
				}
			} else if !errors.Is(err, store.ErrTokenUsed) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(wins) != 1 {
		t.Fatalf("%d check-ins won, want 1", len(wins))
	}
	if _, err := db.PeekToken(ctx, tok); !errors.Is(err, store.ErrTokenUsed) {
		t.Errorf("Peek after check-in = %v", err)
	}
	if _, err := db.PeekToken(ctx, "nope"); !errors.Is(err, store.ErrTokenUnknown) {
		t.Errorf("Peek(unknown) = %v", err)
	}
	if _, err := db.IssueToken(ctx, bind, time.Minute); !errors.Is(err, store.ErrTokenIssued) {
		t.Errorf("a second token for one boot = %v, want ErrTokenIssued", err)
	}
	old, _ := db.IssueToken(ctx, store.Binding{MAC: bind.MAC, Host: bind.Host, Boot: "b-0"}, -time.Second)
	if _, err := db.Checkin(ctx, store.CheckinRequest{Token: old, HostKey: "SHA256:x", Peer: "10.0.0.5"}); !errors.Is(err, store.ErrTokenExpired) {
		t.Errorf("check-in with an expired token = %v", err)
	}
	// Only hashes are stored.
	var n int
	if err := db.sql.QueryRow(`SELECT COUNT(*) FROM boot_tokens WHERE hash = ? OR hash = ?`, tok, old).Scan(&n); err != nil || n != 0 {
		t.Errorf("a token is stored in the clear (%d, %v)", n, err)
	}
}

// TestCheckinAllOrNothing: a store failure midway through a check-in (the
// report token's insert fails) writes nothing: the token stays unused, no
// record, and the rescue grant stays approved; the agent's retry then
// succeeds. A retry after a lost answer gets the same answer, and the
// first answer's report token keeps working (a replay cannot cut the
// agent off).
func TestCheckinAllOrNothing(t *testing.T) {
	db, path := openDB(t)
	ctx := context.Background()
	h := host("web1", "52:54:00:aa:00:01", "10.0.0.5")
	h.Customer = "acme"
	if err := db.AddCustomer(ctx, store.Customer{Name: "acme"}, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Apply(ctx, store.Change{Put: []*store.Host{h}}, "test"); err != nil {
		t.Fatal(err)
	}
	if err := db.AddStaff(ctx, store.Staff{Customer: "acme", Name: "bob", Role: "support", Keys: store.Fingerprints([]string{key})}, "test"); err != nil {
		t.Fatal(err)
	}
	g, err := db.RequestGrant(ctx, store.GrantRequest{Host: "web1", Scope: store.ScopePasswordReset, Ticket: "T-1", Reason: "forgot it",
		TTL: time.Hour, StaffKey: key}, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bind := store.Binding{MAC: h.MAC, Host: "web1", Boot: "b-1"}
	tok, _ := db.IssueToken(ctx, bind, time.Minute)
	req := store.CheckinRequest{Token: tok, MAC: h.MAC, Boot: "b-1", HostKey: "SHA256:k", ReportTTL: time.Hour, Peer: "10.0.0.5",
		Certify: func(*store.Host, store.Binding) (string, map[string]string, error) { return "cert-1", nil, nil }}
	count := func(code audit.Code) int {
		evs, _ := ReadEvents(path)
		n := 0
		for _, e := range evs {
			if e.Code == code {
				n++
			}
		}
		return n
	}

	// Another connection to the same file makes the store fail midway,
	// as a full disk or a broken constraint would.
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`CREATE TRIGGER fail_report BEFORE INSERT ON report_tokens BEGIN SELECT RAISE(ABORT, 'disk full'); END`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Checkin(ctx, req); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("check-in with the store failing = %v", err)
	}
	if _, err := db.PeekToken(ctx, tok); err != nil {
		t.Errorf("the token was burnt by a check-in that failed: %v", err)
	}
	if cur, _ := db.Grant(ctx, g.ID); cur.State != store.GrantApproved || count(audit.AgentCheckin) != 0 || count(audit.RescueActive) != 0 {
		t.Errorf("a failed check-in left traces: grant %s, %d check-in and %d rescue.active records", cur.State, count(audit.AgentCheckin), count(audit.RescueActive))
	}
	if _, err := raw.Exec(`DROP TRIGGER fail_report`); err != nil {
		t.Fatal(err)
	}
	first, err := db.Checkin(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.Mode != store.ModeRescue || first.Grant == nil || first.Grant.ID != g.ID || first.Grant.State != store.GrantActive || first.Retry {
		t.Fatalf("check-in = %+v", first)
	}

	// The answer was lost; the agent asks again.
	req.Certify = func(*store.Host, store.Binding) (string, map[string]string, error) { return "cert-2", nil, nil }
	again, err := db.Checkin(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Retry || again.Mode != store.ModeRescue || again.HostCert != "cert-1" || again.Grant == nil || again.Grant.ID != g.ID ||
		again.ReportToken == first.ReportToken {
		t.Errorf("retry = %+v, want the first answer with a new report token", again)
	}
	if b, err := db.ReportBinding(ctx, first.ReportToken); err != nil || b != bind {
		t.Errorf("a retry cut off the first answer's report token: %+v, %v", b, err)
	}
	if b, err := db.ReportBinding(ctx, again.ReportToken); err != nil || b != bind {
		t.Errorf("ReportBinding(retry's token) = %+v, %v", b, err)
	}
	if count(audit.AgentCheckin) != 1 || count(audit.RescueActive) != 1 || count(audit.CheckinRetry) != 1 {
		t.Errorf("records: %d check-in, %d rescue.active, %d retry; want 1 each", count(audit.AgentCheckin), count(audit.RescueActive), count(audit.CheckinRetry))
	}
	// Another host key with the same token is a replay.
	req.HostKey = "SHA256:someone-else"
	if _, err := db.Checkin(ctx, req); !errors.Is(err, store.ErrTokenUsed) {
		t.Errorf("check-in with another host key = %v, want a replay", err)
	}
	// A host removed from the inventory gets no check-in.
	tok2, _ := db.IssueToken(ctx, store.Binding{MAC: "52:54:00:aa:00:09", Host: "gone", Boot: "b-2"}, time.Minute)
	if _, err := db.Checkin(ctx, store.CheckinRequest{Token: tok2, HostKey: "SHA256:k"}); !errors.Is(err, store.ErrHostGone) {
		t.Errorf("check-in of a host not in the inventory = %v", err)
	}
}

// TestOneAgentAtATime: while a host's agent is alive, no other check-in
// for the host is certified, of a new boot or from another address; once
// it handed over (or its heartbeats stopped for store.AgentAlive), a new
// boot is, and the old boot's report tokens stop working.
func TestOneAgentAtATime(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	now := time.Now().UTC()
	db.now = func() time.Time { return now }
	h := host("web1", "52:54:00:aa:00:01", "10.0.0.5")
	if _, err := db.Apply(ctx, store.Change{Put: []*store.Host{h}}, "test"); err != nil {
		t.Fatal(err)
	}
	certified := 0
	checkin := func(boot, key, peer string) (*store.Checkin, error) {
		tok, err := db.IssueToken(ctx, store.Binding{MAC: h.MAC, Host: "web1", Boot: boot}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return db.Checkin(ctx, store.CheckinRequest{Token: tok, MAC: h.MAC, Boot: boot, HostKey: key, Peer: peer, ReportTTL: 24 * time.Hour,
			Certify: func(*store.Host, store.Binding) (string, map[string]string, error) {
				certified++
				return "cert", nil, nil
			}})
	}
	if _, err := checkin("b-0", "SHA256:evil", "10.0.0.66"); !errors.Is(err, store.ErrWrongPeer) {
		t.Fatalf("check-in from another address = %v, want ErrWrongPeer", err)
	}
	first, err := checkin("b-1", "SHA256:real", "10.0.0.5")
	if err != nil {
		t.Fatal(err)
	}
	// A new boot (a neighbour that did DHCP with the host's MAC and took
	// its address) while the agent lives: refused, with who is live.
	now = now.Add(time.Minute)
	c, err := checkin("b-2", "SHA256:evil", "10.0.0.5")
	if !errors.Is(err, store.ErrAgentAlive) || c.Live == nil || c.Live.Boot != "b-1" || c.Live.HostKey != "SHA256:real" {
		t.Fatalf("check-in while the agent lives = %+v, %v; want ErrAgentAlive naming b-1", c, err)
	}
	// Heartbeats keep it alive past store.AgentAlive.
	b1 := store.Binding{MAC: h.MAC, Host: "web1", Boot: "b-1"}
	for range 3 {
		now = now.Add(store.AgentAlive / 2)
		if err := db.Heartbeat(ctx, b1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := checkin("b-3", "SHA256:evil", "10.0.0.5"); !errors.Is(err, store.ErrAgentAlive) {
		t.Fatalf("check-in while heartbeats come = %v, want ErrAgentAlive", err)
	}
	if certified != 1 {
		t.Fatalf("%d certificates, want the real agent's only", certified)
	}
	// The hand-off ends the agent: its token may say only that the
	// hand-off failed, which brings it back.
	if err := db.EndAgent(ctx, b1, true); err != nil {
		t.Fatal(err)
	}
	if b, err := db.ReportBinding(ctx, first.ReportToken); !errors.Is(err, store.ErrBootEnded) || b != b1 {
		t.Errorf("report token after the hand-off = %+v, %v; want ErrBootEnded with its binding", b, err)
	}
	if err := db.Heartbeat(ctx, b1); !errors.Is(err, store.ErrBootEnded) {
		t.Errorf("heartbeat after the hand-off = %v", err)
	}
	// The next boot is certified, and the old boot's tokens are gone.
	next, err := checkin("b-4", "SHA256:next", "10.0.0.5")
	if err != nil || certified != 2 {
		t.Fatalf("next boot after the hand-off: %v (%d certificates)", err, certified)
	}
	if _, err := db.ReportBinding(ctx, first.ReportToken); !errors.Is(err, store.ErrTokenUnknown) {
		t.Errorf("the old boot's report token after the next boot = %v, want it revoked", err)
	}
	// An agent that stops (the host powered off in lifeboat) is
	// replaced once AgentAlive has passed without a heartbeat.
	if _, err := checkin("b-5", "SHA256:again", "10.0.0.5"); !errors.Is(err, store.ErrAgentAlive) {
		t.Fatalf("check-in right after b-4's = %v", err)
	}
	now = now.Add(store.AgentAlive + time.Second)
	if _, err := checkin("b-6", "SHA256:again", "10.0.0.5"); err != nil {
		t.Fatalf("check-in after b-4's agent went silent = %v", err)
	}
	if _, err := db.ReportBinding(ctx, next.ReportToken); !errors.Is(err, store.ErrTokenUnknown) {
		t.Errorf("b-4's report token = %v, want revoked", err)
	}
}

func TestOperators(t *testing.T) {
	db, path := openDB(t)
	ctx := context.Background()
	tok, err := db.AddOperator(ctx, "alice", "local")
	if err != nil {
		t.Fatal(err)
	}
	if op, ok := db.Authenticate(ctx, tok); !ok || op.Name != "alice" {
		t.Fatalf("Authenticate = %+v, %v", op, ok)
	}
	if _, ok := db.Authenticate(ctx, tok+"x"); ok {
		t.Error("a wrong token authenticated")
	}
	if _, err := db.AddOperator(ctx, "alice", "local"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second AddOperator = %v", err)
	}
	if err := db.RemoveOperator(ctx, "alice", "local"); err != nil {
		t.Fatal(err)
	}
	if _, ok := db.Authenticate(ctx, tok); ok {
		t.Error("a revoked token authenticated")
	}
	db.Close()
	raw, _ := os.ReadFile(path)
	wal, _ := os.ReadFile(path + "-wal")
	if strings.Contains(string(raw)+string(wal), tok) {
		t.Error("the operator token is in the database file")
	}
}

const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl c"

// TestEndedCerts: the revocation list holds the certificates of boots that
// handed over, were followed by a newer boot, or whose agent went quiet;
// never the live agent's, and no expired one.
func TestEndedCerts(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	now := time.Now().UTC()
	db.now = func() time.Time { return now }
	ca, err := sshca.Load(filepath.Join(t.TempDir(), "ca"))
	if err != nil {
		t.Fatal(err)
	}
	h := host("web1", "52:54:00:aa:00:01", "10.0.0.5")
	if _, err := db.Apply(ctx, store.Change{Put: []*store.Host{h}}, "test"); err != nil {
		t.Fatal(err)
	}
	checkin := func(boot string) uint64 {
		t.Helper()
		tok, err := db.IssueToken(ctx, store.Binding{MAC: h.MAC, Host: "web1", Boot: boot}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		var serial uint64
		_, err = db.Checkin(ctx, store.CheckinRequest{Token: tok, MAC: h.MAC, Boot: boot, HostKey: "SHA256:" + boot, Peer: "10.0.0.5",
			Certify: func(*store.Host, store.Binding) (string, map[string]string, error) {
				pub, _, _ := ed25519.GenerateKey(rand.Reader)
				hk, _ := ssh.NewPublicKey(pub)
				c, err := ca.Sign(sshca.HostCert{Key: hk, KeyID: boot, Principals: []string{"10.0.0.5"}, ValidFor: 2 * time.Hour, Now: now})
				if err != nil {
					return "", nil, err
				}
				serial = c.Serial
				return string(ssh.MarshalAuthorizedKey(c)), nil, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		return serial
	}
	ended := func() []uint64 {
		t.Helper()
		s, err := db.EndedCerts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(s)
		return s
	}
	first := checkin("b-1")
	if got := ended(); len(got) != 0 {
		t.Fatalf("revoked %v while the agent lives", got)
	}
	if err := db.EndAgent(ctx, store.Binding{MAC: h.MAC, Host: "web1", Boot: "b-1"}, true); err != nil {
		t.Fatal(err)
	}
	if got := ended(); !slices.Equal(got, []uint64{first}) {
		t.Fatalf("after the hand-off: %v, want [%d]", got, first)
	}
	second := checkin("b-2")
	if got := ended(); !slices.Equal(got, []uint64{first}) {
		t.Fatalf("with b-2 live: %v, want b-1's only", got)
	}
	now = now.Add(store.AgentAlive + time.Second) // b-2's agent goes quiet
	want := []uint64{first, second}
	slices.Sort(want)
	if got := ended(); !slices.Equal(got, want) {
		t.Fatalf("after b-2 went quiet: %v, want %v", got, want)
	}
	now = now.Add(3 * time.Hour) // both expired
	if got := ended(); len(got) != 0 {
		t.Errorf("expired certificates listed: %v", got)
	}
}

// TestResetAgent: an operator's reset ends the live agent at once (a new
// boot is certified without waiting), as a record the customer is told of.
func TestResetAgent(t *testing.T) {
	db, path := openDB(t)
	ctx := context.Background()
	h := host("web1", "52:54:00:aa:00:01", "10.0.0.5")
	if _, err := db.Apply(ctx, store.Change{Put: []*store.Host{h}}, "test"); err != nil {
		t.Fatal(err)
	}
	checkin := func(boot string) error {
		tok, err := db.IssueToken(ctx, store.Binding{MAC: h.MAC, Host: "web1", Boot: boot}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		_, err = db.Checkin(ctx, store.CheckinRequest{Token: tok, MAC: h.MAC, Boot: boot, HostKey: "SHA256:" + boot, Peer: "10.0.0.5"})
		return err
	}
	if err := db.ResetAgent(ctx, "web1", "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("reset without an agent = %v, want ErrNotFound", err)
	}
	if err := checkin("b-1"); err != nil {
		t.Fatal(err)
	}
	if err := checkin("b-2"); !errors.Is(err, store.ErrAgentAlive) {
		t.Fatalf("b-2 while b-1 lives = %v", err)
	}
	if err := db.ResetAgent(ctx, "web1", "alice"); err != nil {
		t.Fatal(err)
	}
	if err := checkin("b-3"); err != nil {
		t.Fatalf("b-3 after the reset = %v", err)
	}
	evs, _ := ReadEvents(path)
	found := false
	for _, e := range evs {
		if e.Code == audit.AgentReset {
			found = e.Actor == "alice" && e.Boot == "b-1" && e.Details["host_key"] == "SHA256:b-1"
		}
	}
	if !found {
		t.Error("no agent.reset record naming alice and b-1")
	}
}
