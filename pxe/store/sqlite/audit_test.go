package sqlite

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/pxe/keys/sshsig"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// fleet makes two customers with a host each, and a webhook and an
// address for acme.
func fleet(t *testing.T, db *DB) {
	t.Helper()
	ctx := context.Background()
	acmeKey := string(ssh.MarshalAuthorizedKey(acmeSigner.PublicKey()))
	for _, c := range []store.Customer{{Name: "acme", Emails: []string{"ops@acme.example"}, Keys: []string{acmeKey}}, {Name: "globex"}} {
		if err := db.AddCustomer(ctx, c, "op"); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"bob", "carol", "hands"} {
		if err := db.AddStaff(ctx, store.Staff{Customer: "acme", Name: name, Role: "support", Keys: store.Fingerprints([]string{staffKey})}, "op"); err != nil {
			t.Fatal(err)
		}
	}
	a, b := host("web-01", "52:54:00:00:00:01", "10.0.0.11"), host("db-01", "52:54:00:00:00:02", "10.0.0.12")
	a.Customer, b.Customer = "acme", "globex"
	if _, err := db.Apply(ctx, store.Change{Put: []*store.Host{a, b}}, "op"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddWebhook(ctx, store.Webhook{Customer: "acme", URL: "http://127.0.0.1:9/hook", Sealed: "x"}, "op"); err != nil {
		t.Fatal(err)
	}
}

// acmeSigner is customer acme's own SSH key: its signatures approve grants.
var acmeSigner = func() ssh.Signer {
	s, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(make([]byte, 32)))
	if err != nil {
		panic(err)
	}
	return s
}()

// consent is acme's signature approving g.
func consent(t testing.TB, g *store.Grant) []byte {
	t.Helper()
	sig, err := sshsig.Sign(acmeSigner, store.ConsentText(g), store.ConsentNamespace)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// queuedCodes counts the notices in customer's outbox by their record's code.
func queuedCodes(t testing.TB, db *DB, customer string) map[audit.Code]int {
	t.Helper()
	ns, err := db.Notices(context.Background(), customer, 10000)
	if err != nil {
		t.Fatal(err)
	}
	evs, _ := db.Events(context.Background(), store.EventFilter{Limit: 100000})
	code := map[int64]audit.Code{}
	for _, e := range evs {
		code[e.Seq] = e.Code
	}
	out := map[audit.Code]int{}
	for _, n := range ns {
		out[code[n.Event.Seq]]++
	}
	return out
}

func emitBoots(t *testing.T, db *DB, n int) {
	t.Helper()
	for i := range n {
		h := []string{"web-01", "db-01"}[i%2]
		for _, c := range []audit.Code{audit.BootStart, audit.AgentCheckin, audit.UnlockSuccess} {
			if err := db.Emit(context.Background(), audit.Event{Code: c, Host: h, Boot: fmt.Sprintf("b%d", i), Actor: "system",
				Details: map[string]string{"marker": fmt.Sprintf("m%04d-%s", i, c)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// bootedDB is a store with the fleet and n boots' records in it.
func bootedDB(t *testing.T, n int) (*DB, string) {
	t.Helper()
	db, path := openDB(t)
	fleet(t, db)
	emitBoots(t, db, n)
	return db, path
}

func TestChainInStore(t *testing.T) {
	db, path := bootedDB(t, 10)
	ctx := context.Background()
	head, n, err := db.VerifyChain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != head.Seq || head != db.Head() {
		t.Fatalf("VerifyChain = %+v, %d; Head = %+v", head, n, db.Head())
	}
	// Owners are recorded: records of web-01 are acme's.
	recs, _ := db.AuditRecords(ctx, "", 0, 0)
	for _, r := range recs {
		if r.Host == "web-01" && r.Customer != "acme" || r.Host == "db-01" && r.Customer != "globex" {
			t.Fatalf("record %d of %s names customer %q", r.Seq, r.Host, r.Customer)
		}
	}
	// The chain continues across a reopen.
	db.Close()
	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if db2.Head() != head {
		t.Fatalf("head after reopen = %+v, want %+v", db2.Head(), head)
	}
	emitBoots(t, db2, 2)
	if _, _, err := db2.VerifyChain(ctx, audit.Receipt(head)); err != nil {
		t.Fatal(err)
	}
}

// A customer reads their own records in full, the others as digests, and
// verifies the whole chain with them.
func TestCustomerView(t *testing.T) {
	db, _ := bootedDB(t, 6)
	ctx := context.Background()
	view, err := db.AuditRecords(ctx, "acme", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine := 0
	for _, r := range view {
		switch {
		case r.Redacted():
			if r.Host != "" || r.Customer != "" || r.Details != nil {
				t.Fatalf("a redacted record tells %+v", r)
			}
		case r.Customer == "acme":
			mine++
		default:
			t.Fatalf("acme reads record %d of %q", r.Seq, r.Customer)
		}
	}
	if mine < 9 {
		t.Fatalf("acme reads %d of its records", mine)
	}
	var last audit.Receipt // acme's newest record: a receipt from its notice
	for _, r := range view {
		if r.Customer == "acme" {
			last = audit.Receipt{Seq: r.Seq, Hash: r.Hash}
		}
	}
	if _, err := audit.Verify(view, audit.Start(), last); err != nil {
		t.Fatal(err)
	}
}

// Tampering with the database, through SQL or by flipping bytes of the
// file, is found by VerifyChain at the record changed.
func TestTamperedStoreDetected(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		at   int64
	}{
		{"edit a detail", `UPDATE events SET details = '{"marker":"forged"}' WHERE seq = 12`, 12},
		{"change an actor", `UPDATE events SET actor = 'nobody' WHERE seq = 20`, 20},
		{"re-own a record", `UPDATE events SET customer = 'initech' WHERE seq = 15`, 15},
		{"delete a record", `DELETE FROM events WHERE seq = 17`, 17},
		{"swap two records", `UPDATE events SET seq = -1 WHERE seq = 13; UPDATE events SET seq = 13 WHERE seq = 14; UPDATE events SET seq = 14 WHERE seq = -1`, 13},
		{"re-time a record", `UPDATE events SET time = '2020-01-01T00:00:00.000000000Z' WHERE seq = 11`, 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, path := bootedDB(t, 6)
			db.Close()
			db2 := tamper(t, path, tt.sql)
			_, _, err := db2.VerifyChain(context.Background())
			var bad *audit.BadRecord
			if !errors.As(err, &bad) || bad.Seq != tt.at {
				t.Fatalf("VerifyChain = %v, want a broken chain at %d", err, tt.at)
			}
		})
	}
	t.Run("truncate the tail", func(t *testing.T) {
		db, path := bootedDB(t, 6)
		receipt := db.Head()
		db.Close()
		db2 := tamper(t, path, fmt.Sprintf(`DELETE FROM notices WHERE seq >= %d; DELETE FROM events WHERE seq >= %[1]d`, receipt.Seq-3))
		if _, _, err := db2.VerifyChain(context.Background()); err != nil {
			t.Fatalf("without a receipt a cut tail cannot be seen, but VerifyChain = %v", err)
		}
		_, _, err := db2.VerifyChain(context.Background(), receipt)
		var bad *audit.BadRecord
		if !errors.As(err, &bad) || !strings.Contains(bad.Reason, "removed from the end") {
			t.Fatalf("VerifyChain(receipt) = %v", err)
		}
	})
	t.Run("flip a byte in the file", func(t *testing.T) {
		db, path := bootedDB(t, 6)
		db.Close() // checkpoints the WAL into the file
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(data, []byte("m0003-unlock.success"))
		if i < 0 {
			t.Fatal("marker not found in the database file")
		}
		data[i+1] = '9' // same length: the file stays a valid database
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		db2, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		defer db2.Close()
		_, _, err = db2.VerifyChain(context.Background())
		var bad *audit.BadRecord
		if !errors.As(err, &bad) {
			t.Fatalf("VerifyChain after a flipped byte = %v", err)
		}
		recs, _ := db2.AuditRecords(context.Background(), "", bad.Seq-1, 1)
		if recs[0].Details["marker"] != "m9003-unlock.success" {
			t.Fatalf("the broken record is %+v, not the flipped one", recs[0])
		}
	})
}

// tamper changes the closed store at path behind its back, as someone
// with the file could, and opens it again.
func tamper(t *testing.T, path, stmts string) *DB {
	t.Helper()
	sdb, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(0)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sdb.Exec(stmts); err != nil {
		t.Fatal(err)
	}
	sdb.Close()
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Notices are written with their record, one per channel of the host's
// customer, and only for the codes customers are told about.
func TestOutbox(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	fleet(t, db)
	now := time.Now()
	db.now = func() time.Time { return now }
	for range 100 { // the fleet's own records, one per receiver at a time
		setup, _ := db.DueNotices(ctx, now.Add(time.Second), 100)
		if len(setup) == 0 {
			break
		}
		for _, n := range setup {
			if err := db.NoticeDelivered(ctx, n.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	emitBoots(t, db, 2) // web-01 (acme) once, db-01 (globex) once
	due, err := db.DueNotices(ctx, now.Add(time.Second), 100)
	if err != nil {
		t.Fatal(err)
	}
	// acme: agent.checkin and unlock.success, each to a webhook and an
	// address; due first is each receiver's oldest, agent.checkin.
	if len(due) != 2 || due[0].Event.Code != audit.AgentCheckin || due[1].Event.Code != audit.AgentCheckin {
		t.Fatalf("due notices = %d, want agent.checkin twice: %+v", len(due), due)
	}
	for _, n := range due {
		if n.Customer != "acme" || !audit.Notify[n.Event.Code] || n.Event.Hash == "" {
			t.Fatalf("notice %+v", n)
		}
		if n.Channel == store.ChannelWebhook && (n.Webhook == nil || n.Webhook.URL != "http://127.0.0.1:9/hook" || n.Webhook.Sealed != "x") {
			t.Fatalf("webhook notice without its webhook: %+v", n)
		}
	}
	// One receiver's first notice waits for a retry; the other's was
	// delivered: only the other's next is due, the first's waits behind
	// its retry (each receiver in record order).
	if err := db.NoticeRetry(ctx, due[0].ID, "down", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.NoticeDelivered(ctx, due[1].ID); err != nil {
		t.Fatal(err)
	}
	left, _ := db.DueNotices(ctx, now.Add(time.Second), 100)
	if len(left) != 1 || left[0].Target != due[1].Target || left[0].Event.Code != audit.UnlockSuccess {
		t.Fatalf("due after the attempts = %+v", left)
	}
	if err := db.NoticeFailed(ctx, left[0], "gone"); err != nil {
		t.Fatal(err)
	}
	later, _ := db.DueNotices(ctx, now.Add(2*time.Hour), 100)
	if len(later) != 1 || later[0].ID != due[0].ID || later[0].Attempts != 1 {
		t.Fatalf("due in two hours = %+v, want the retried one alone (its receiver's next waits behind it)", later)
	}
	evs, _ := db.Events(ctx, store.EventFilter{})
	if last := evs[len(evs)-1]; last.Code != audit.NoticeFailed || last.Customer != "acme" || last.Details["notice"] != left[0].ID {
		t.Fatalf("last record = %+v, want notice.failed", last)
	}
}

// A store made by the first version, with events but no chain, is sealed
// in order when opened.
func TestUpgradeSealsOldEvents(t *testing.T) {
	path := t.TempDir() + "/v1.db"
	sdb, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := migrations.ReadFile("migrations/0001_init.sql")
	if _, err := sdb.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range splitSQL(string(v1)) {
		if _, err := sdb.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sdb.Exec(`INSERT INTO schema_migrations VALUES (1, 'x');
		INSERT INTO events (time, code, host, actor) VALUES ('2026-01-01T00:00:00.000000000Z', 'boot.start', 'web-01', 'system'),
		('2026-01-01T00:00:01.000000000Z', 'host.add', 'web-02', 'op')`); err != nil {
		t.Fatal(err)
	}
	sdb.Close()
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	head, n, err := db.VerifyChain(context.Background())
	if err != nil || n != 2 || head.Seq != 2 {
		t.Fatalf("VerifyChain = %+v, %d, %v", head, n, err)
	}
	evs, _ := db.Events(context.Background(), store.EventFilter{})
	if evs[0].Code != audit.BootStart || evs[1].Host != "web-02" {
		t.Fatalf("events after the upgrade: %+v", evs)
	}
}

// bootCodes are the records of one netboot of a known host, in order.
var bootCodes = []audit.Code{audit.BootStart, audit.DHCPOffer, audit.DHCPAck, audit.FirstStageFetch, audit.DHCPOffer, audit.DHCPAck,
	audit.ScriptFetch, audit.ImageFetch, audit.ImageFetch, audit.ImageFetch, audit.AgentCheckin, audit.SSHLogin, audit.UnlockSuccess, audit.Handoff}

// BenchmarkBootRecords is the audit write cost of one boot: its 14 records,
// each durable (fsync'd) before the step it records goes on, as the
// servers emit them. With -cpu 1 one host boots at a time; the parallel
// variant has 64 hosts booting at once, where group commit shares fsyncs.
func BenchmarkBootRecords(b *testing.B) {
	for _, par := range []int{1, 64} {
		b.Run(fmt.Sprintf("hosts=%d", par), func(b *testing.B) {
			db, err := Open(context.Background(), b.TempDir()+"/bench.db")
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			b.SetParallelism(par)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					for _, c := range bootCodes {
						if err := db.Emit(context.Background(), audit.Event{Code: c, MAC: "52:54:00:00:00:01", Host: "web-01",
							Boot: "b-0123456789abcdef", Actor: "system", Details: map[string]string{"file": "vmlinuz"}}); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/boot")
		})
	}
}

// Queued records (DHCP answers) are written in order with waited-for ones,
// and chained like them.
func TestQueueKeepsOrder(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	for i := range 50 {
		if err := db.Queue(audit.Event{Code: audit.DHCPOffer, Host: "web-01", Details: map[string]string{"n": fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Emit(ctx, audit.Event{Code: audit.ScriptFetch, Host: "web-01"}); err != nil {
		t.Fatal(err)
	}
	evs, _ := db.Events(ctx, store.EventFilter{})
	if len(evs) != 51 || evs[50].Code != audit.ScriptFetch {
		t.Fatalf("%d events, last %+v", len(evs), evs[len(evs)-1])
	}
	for i, e := range evs[:50] {
		if e.Details["n"] != fmt.Sprint(i) {
			t.Fatalf("queued record %d out of order: %+v", i, e)
		}
	}
	if _, _, err := db.VerifyChain(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := db.Queue(audit.Event{Code: audit.DHCPOffer}); err == nil {
		t.Fatal("Queue after Close succeeded")
	}
}

// TestNoResealOfABlankedLog: an insider with the database blanks every
// hash, hoping lifeboatd re-seals the rewritten log at start; it refuses
// to open the store instead.
func TestNoResealOfABlankedLog(t *testing.T) {
	db, path := openDB(t)
	fleet(t, db)
	emitBoots(t, db, 2)
	db.Close()
	sdb, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sdb.Exec(`UPDATE events SET actor = 'nobody', hash = '', prev = '', salt = ''`); err != nil {
		t.Fatal(err)
	}
	sdb.Close()
	if _, err := Open(context.Background(), path); err == nil || !strings.Contains(err.Error(), "does not re-seal a log by itself") {
		t.Fatalf("Open of a blanked log: %v", err)
	}
}
