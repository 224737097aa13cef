package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/metrics"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// ErrClosed is returned by Emit after Close.
var ErrClosed = errors.New("store: closed")

// maxBatch bounds one group commit, so that one transaction stays short.
const maxBatch = 1024

// op is one write queued for the writer: an event (durable before Emit
// returns) or a boot-stage record (derived state, written in order with the
// events but not waited for).
type op struct {
	ev    *audit.Event
	stage *stageRec
	done  chan error // nil: nobody waits
}

type stageRec struct {
	boot  store.Boot
	stage store.Stage
	at    time.Time
}

// Emit implements audit.Emitter: it returns once the event is committed.
func (db *DB) Emit(ctx context.Context, e audit.Event) error {
	if e.Time.IsZero() {
		e.Time = db.now()
	}
	e.Time = e.Time.UTC()
	o := op{ev: &e, done: make(chan error, 1)}
	select {
	case <-db.quit:
		return ErrClosed
	default:
	}
	select {
	case db.ops <- o:
	case <-db.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-o.done:
		return err
	case <-db.done:
		// The writer has stopped; it may have committed this event last.
		select {
		case err := <-o.done:
			return err
		default:
			return ErrClosed
		}
	case <-ctx.Done():
		// The event may still be committed; the caller refuses its
		// action all the same, which errs on the safe side.
		return ctx.Err()
	}
}

// Queue implements audit.Queuer: the event is committed with the next
// batch, in order, without the caller waiting for it.
func (db *DB) Queue(e audit.Event) error {
	db.mu.Lock()
	err := db.err
	db.mu.Unlock()
	if err != nil {
		return err
	}
	if e.Time.IsZero() {
		e.Time = db.now()
	}
	e.Time = e.Time.UTC()
	select {
	case <-db.quit: // first: with room in the queue, both cases below are ready
		return ErrClosed
	default:
	}
	select {
	case db.ops <- op{ev: &e}:
		return nil
	case <-db.quit:
		return ErrClosed
	}
}

// QueueStage implements store.StageHistory: the stage a boot reached is
// written with the next batch, in order with the records, not waited for.
func (db *DB) QueueStage(b store.Boot, s store.Stage, at time.Time) {
	metrics.BootStages.WithLabelValues(s.String()).Inc()
	select {
	case db.ops <- op{stage: &stageRec{boot: b, stage: s, at: at}}:
	case <-db.quit:
	}
}

// Subscribe delivers every committed event to ch without blocking the
// writer: a subscriber that falls behind misses events rather than stalling
// DHCP. (Tests use it; the API follows the log through Changed.)
func (db *DB) Subscribe(ch chan<- audit.Event) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.subs = append(db.subs, ch)
}

// Changed returns a channel closed at the next commit of events.
func (db *DB) Changed() <-chan struct{} {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.changed
}

// writer commits the queued writes, as many as have queued up (up to
// maxBatch) in each transaction. At Close it commits what is queued, then
// stops.
func (db *DB) writer() {
	defer close(db.done)
	for {
		var batch []op
		select {
		case o := <-db.ops:
			batch = append(batch, o)
		case <-db.quit:
			if len(db.ops) == 0 {
				return
			}
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case o := <-db.ops:
				batch = append(batch, o)
			default:
				break fill
			}
		}
		if len(batch) > 0 {
			db.commit(batch)
		}
	}
}

// commit writes a batch in one transaction: one fsync for all of it.
func (db *DB) commit(batch []op) {
	db.mu.Lock()
	err := db.err
	db.mu.Unlock()
	if err == nil {
		start := time.Now()
		err = db.commitTx(batch)
		metrics.EventCommit.Observe(time.Since(start).Seconds())
		if err != nil {
			err = fmt.Errorf("event log: %w", err)
			db.mu.Lock()
			db.err = err
			db.mu.Unlock()
		}
	}
	for _, o := range batch {
		if o.done != nil {
			o.done <- err
		}
	}
	if err != nil {
		return
	}
	var evs []audit.Event
	for _, o := range batch {
		if o.ev != nil {
			evs = append(evs, *o.ev)
		}
	}
	db.notify(evs)
}

// notify hands committed events to the subscribers and wakes the
// followers of the log.
func (db *DB) notify(evs []audit.Event) {
	metrics.EventsWritten.Add(float64(len(evs)))
	db.mu.Lock()
	defer db.mu.Unlock()
	for _, e := range evs {
		for _, ch := range db.subs {
			select {
			case ch <- e:
			default:
			}
		}
	}
	close(db.changed)
	db.changed = make(chan struct{})
}

func (db *DB) commitTx(batch []op) error {
	return db.sealedTx(context.Background(), func(tx *sql.Tx, seal func(*audit.Event) error) error {
		for _, o := range batch {
			switch {
			case o.ev != nil:
				if err := seal(o.ev); err != nil {
					return err
				}
			case o.stage != nil:
				b := o.stage.boot
				if _, err := tx.Exec(`INSERT INTO boots (id, host, mac, firmware, started, stage) VALUES (?, ?, ?, ?, ?, ?)
					ON CONFLICT (id) DO UPDATE SET stage = excluded.stage`,
					b.ID, b.Host, b.MAC, b.Firmware, fmtTime(b.Started), o.stage.stage.String()); err != nil {
					return err
				}
				if _, err := tx.Exec(`INSERT INTO boot_stages (boot, stage, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
					b.ID, o.stage.stage.String(), fmtTime(o.stage.at)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// sealedTx runs fn in one transaction; fn writes records with seal, which
// chains each after the last. chainMu is held from the first seal to the
// commit, so that the chain's order is the commit order, and the head
// moves only once the commit succeeds.
func (db *DB) sealedTx(ctx context.Context, fn func(tx *sql.Tx, seal func(*audit.Event) error) error) error {
	db.chainMu.Lock()
	defer db.chainMu.Unlock()
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	head := db.head
	if err := fn(tx, func(e *audit.Event) error { return db.insertEvent(ctx, tx, e, &head) }); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	db.head = head
	return nil
}

// change runs fn in one transaction and records the events it returns in
// that same transaction: an operator's change and its record commit
// together or not at all.
func (db *DB) change(ctx context.Context, fn func(tx *sql.Tx) ([]audit.Event, error)) error {
	return db.changeToldFirst(ctx, fn, func(*sql.Tx) error { return nil })
}

// changeToldFirst is change for changes to how the customer is told (a
// channel added or removed, who may act for them): the records fn returns
// are sealed, and their notices queued on the channels the customer has
// now, before apply runs, in the same transaction. A new webhook does not
// hear of its own addition instead of the customer's existing channels.
func (db *DB) changeToldFirst(ctx context.Context, fn func(tx *sql.Tx) ([]audit.Event, error), apply func(tx *sql.Tx) error) error {
	var evs []audit.Event
	err := db.sealedTx(ctx, func(tx *sql.Tx, seal func(*audit.Event) error) error {
		var err error
		if evs, err = fn(tx); err != nil {
			return err
		}
		for i := range evs {
			if err := seal(&evs[i]); err != nil {
				return err
			}
		}
		return apply(tx)
	})
	if err != nil {
		return err
	}
	db.notify(evs)
	return nil
}

// insertEvent seals e as the record after *head, writes it in tx with the
// notices it calls for (the outbox), and moves *head on. The caller holds
// chainMu and makes *head the chain's head once tx commits.
func (db *DB) insertEvent(ctx context.Context, tx *sql.Tx, e *audit.Event, head *audit.Head) error {
	if e.Customer == "" && e.Host != "" {
		if h, ok := db.inv.Load().ByName(e.Host); ok {
			e.Customer = h.Customer
		}
	}
	e.Time = e.Time.UTC().Round(0)
	next := audit.Seal(e, *head)
	details := "{}"
	if len(e.Details) > 0 {
		b, err := json.Marshal(e.Details)
		if err != nil {
			return err
		}
		details = string(b)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO events (seq, time, code, customer, mac, host, boot, actor, details, salt, prev, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, fmtTime(e.Time), string(e.Code), e.Customer, e.MAC, e.Host, e.Boot, e.Actor, details, e.Salt, e.Prev, e.Hash); err != nil {
		return err
	}
	if audit.Notify[e.Code] && e.Customer != "" {
		if err := queueNotices(ctx, tx, *e); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
	}
	*head = next
	return nil
}

// chainVersion is the migration that brought the hash chain.
const chainVersion = 2

// loadHead reads the chain's head. Events written before the chain existed
// are sealed here, once, in their order, when this Open is the one that
// upgraded the store to the chain (upgrade); records without a hash in a
// store that had the chain already are an error, never re-sealed: an
// insider who blanked the hashes would have lifeboatd bless the rewrite.
// It runs in Open, before anything else can write.
func (db *DB) loadHead(ctx context.Context, upgrade bool) error {
	db.head = audit.Start()
	var seq int64
	var hash string
	err := db.sql.QueryRowContext(ctx, `SELECT seq, hash FROM events WHERE hash != '' ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	switch {
	case err == nil:
		db.head = audit.Head{Seq: seq, Hash: hash}
	case !errors.Is(err, sql.ErrNoRows):
		return err
	}
	old, err := queryEvents(ctx, db.sql, `SELECT `+eventCols+` FROM events WHERE hash = '' ORDER BY seq`)
	if err != nil || len(old) == 0 {
		return err
	}
	if seq != 0 {
		return fmt.Errorf("audit chain: %d records after record %d were never sealed", len(old), seq)
	}
	if !upgrade {
		return fmt.Errorf("audit chain: %d records have no hash in a store that was sealed before; lifeboatd does not re-seal a log by itself: restore the database from a backup, and find out who changed it", len(old))
	}
	return db.sealedTx(ctx, func(tx *sql.Tx, seal func(*audit.Event) error) error {
		if _, err := tx.Exec(`DELETE FROM events`); err != nil {
			return err
		}
		for i := range old {
			if err := seal(&old[i]); err != nil {
				return err
			}
		}
		// Old records were told to nobody then; they are not told now.
		_, err := tx.Exec(`DELETE FROM notices`)
		return err
	})
}

// Head returns the newest record's sequence number and hash.
func (db *DB) Head() audit.Head {
	db.chainMu.Lock()
	defer db.chainMu.Unlock()
	return db.head
}

// Events lists events in log order.
func (db *DB) Events(ctx context.Context, f store.EventFilter) ([]audit.Event, error) {
	q := `SELECT ` + eventCols + ` FROM events WHERE seq > ?`
	args := []any{f.After}
	if f.Host != "" {
		q += ` AND host = ?`
		args = append(args, f.Host)
	}
	if f.Boot != "" {
		q += ` AND boot = ?`
		args = append(args, f.Boot)
	}
	if f.Limit <= 0 || f.Limit > 10000 {
		f.Limit = 1000
	}
	q += ` ORDER BY seq LIMIT ?`
	args = append(args, f.Limit)
	return queryEvents(ctx, db.sql, q, args...)
}

// eventCols are the columns queryEvents scans, in its order.
const eventCols = `seq, time, code, customer, mac, host, boot, actor, details, salt, prev, hash`

func queryEvents(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) ([]audit.Event, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []audit.Event
	for rows.Next() {
		var e audit.Event
		var t, code, details string
		if err := rows.Scan(&e.Seq, &t, &code, &e.Customer, &e.MAC, &e.Host, &e.Boot, &e.Actor, &details, &e.Salt, &e.Prev, &e.Hash); err != nil {
			return nil, err
		}
		e.Time, e.Code = parseTime(t), audit.Code(code)
		if details != "{}" {
			if err := json.Unmarshal([]byte(details), &e.Details); err != nil {
				return nil, fmt.Errorf("event %d: details: %w", e.Seq, err)
			}
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// ReadEvents reads every event of the store at path without opening it for
// writing: for tests and tools while lifeboatd runs.
func ReadEvents(path string) ([]audit.Event, error) {
	sdb, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, err
	}
	defer sdb.Close()
	evs, err := queryEvents(context.Background(), sdb, `SELECT `+eventCols+` FROM events ORDER BY seq`)
	if err != nil && strings.Contains(err.Error(), "no such table") {
		return nil, fmt.Errorf("%s: not a lifeboat store", path)
	}
	return evs, err
}

// AuditRecords returns up to limit records after seq after, in order. For
// a customer (customer != ""), records of other customers' hosts and of
// the server are redacted to their digest: enough to verify the chain
// through them, nothing of what they say.
func (db *DB) AuditRecords(ctx context.Context, customer string, after int64, limit int) ([]audit.Event, error) {
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	recs, err := queryEvents(ctx, db.sql, `SELECT `+eventCols+` FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil || customer == "" {
		return recs, err
	}
	for i := range recs {
		if recs[i].Customer != customer {
			recs[i] = audit.Redact(recs[i])
		}
	}
	return recs, nil
}

// VerifyChain checks the whole chain as stored, page by page, against the
// receipts given, and returns the head and the number of records checked.
// A broken chain gives a *audit.BadRecord.
func (db *DB) VerifyChain(ctx context.Context, receipts ...audit.Receipt) (audit.Head, int64, error) {
	return audit.VerifyPages(func(after int64) ([]audit.Event, error) { return db.AuditRecords(ctx, "", after, 10000) }, receipts...)
}
