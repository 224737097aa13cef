package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // pure Go: no cgo needed on the server

	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

//go:embed migrations/*.sql
var migrations embed.FS

// timeFmt is fixed width so that times sort as text on every backend.
const timeFmt = "2006-01-02T15:04:05.000000000Z"

func fmtTime(t time.Time) string { return t.UTC().Format(timeFmt) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(timeFmt, s) // written by fmtTime only
	return t
}

// DB is the embedded store: inventory, customers, boots, the event log,
// boot tokens and operators, in one SQLite file.
//
// The DHCP path never waits on a query: lookups are served from an
// in-memory snapshot of the inventory, rebuilt after every committed change,
// and events are written by one writer goroutine that commits whatever has
// queued up in one transaction (group commit), so that a burst of DHCP
// traffic costs one fsync per batch, not per packet.
type DB struct {
	sql *sql.DB
	now func() time.Time
	inv atomic.Pointer[store.Index]
	// rescue holds, by host, the approved grants not yet used: a host
	// with one boots into rescue mode (see store.Rescue).
	rescue atomic.Pointer[map[string]*store.Grant]
	ops    chan op
	quit   chan struct{}
	done   chan struct{}

	hostMu sync.Mutex // one inventory change at a time: checks then writes

	chainMu sync.Mutex // held from sealing the first record of a transaction to its commit
	head    audit.Head // the newest committed record

	mu      sync.Mutex
	changed chan struct{} // closed and replaced at every commit of events
	subs    []chan<- audit.Event
	err     error // a failed event commit poisons the log: nothing after it is durable
}

// Open opens (creating if needed) the store at path and brings its schema
// up to date.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("store: no database path")
	}
	// WAL: readers (the API) never block the writer; synchronous=FULL: a
	// commit is on disk before it returns.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)"
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	// One connection: SQLite has one writer anyway, and a single connection
	// cannot meet SQLITE_BUSY from itself.
	sdb.SetMaxOpenConns(1)
	if err := sdb.PingContext(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	from, err := migrate(ctx, sdb)
	if err != nil {
		sdb.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	db := &DB{sql: sdb, now: time.Now, ops: make(chan op, 1024), quit: make(chan struct{}),
		done: make(chan struct{}), changed: make(chan struct{})}
	if err := db.reload(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	if err := db.reloadGrants(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	if err := db.loadHead(ctx, from < chainVersion); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	go db.writer()
	return db, nil
}

// Close stops the writer after it has committed what is queued.
func (db *DB) Close() error {
	select {
	case <-db.quit:
	default:
		close(db.quit)
	}
	<-db.done
	return db.sql.Close()
}

// SchemaVersion is the number of the newest migration applied.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.sql.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// migrate applies, in order and each in its own transaction, the embedded
// migrations not yet recorded in schema_migrations. A database made by a
// newer lifeboatd is refused rather than misread.
// migrate applies the migrations the database lacks and returns the
// version it had.
func migrate(ctx context.Context, sdb *sql.DB) (int, error) {
	if _, err := sdb.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, applied TEXT NOT NULL)`); err != nil {
		return 0, err
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return 0, err
	}
	sort.Strings(names)
	var have int
	if err := sdb.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return 0, err
	}
	if have > len(names) {
		return 0, fmt.Errorf("database schema version %d is newer than this lifeboatd knows (%d): upgrade lifeboatd", have, len(names))
	}
	for _, name := range names {
		v, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(name, "migrations/"), "_", 2)[0])
		if err != nil {
			return 0, fmt.Errorf("migration %s: bad name", name)
		}
		if v <= have {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return 0, err
		}
		tx, err := sdb.BeginTx(ctx, nil)
		if err != nil {
			return 0, err
		}
		for _, stmt := range splitSQL(string(body)) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				tx.Rollback()
				return 0, fmt.Errorf("migration %s: %w", name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied) VALUES (?, ?)`, v, fmtTime(time.Now())); err != nil {
			tx.Rollback()
			return 0, err
		}
		if err := tx.Commit(); err != nil {
			return 0, fmt.Errorf("migration %s: %w", name, err)
		}
	}
	return have, nil
}

// splitSQL splits a migration into statements at semicolons ending a line;
// comments are dropped. Migrations are ours, so this need not parse SQL.
func splitSQL(s string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(s, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, cur.String())
	}
	return out
}
