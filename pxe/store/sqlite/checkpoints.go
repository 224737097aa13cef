package sqlite

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// ErrRewritten is a log that no longer matches a checkpoint lifeboatd signed.
var ErrRewritten = errors.New("the audit log was rewritten")

// Checkpoint signs the chain's head with key, if it moved since the last
// checkpoint, and keeps the signature; it returns the newest checkpoint.
func (db *DB) Checkpoint(ctx context.Context, key ed25519.PrivateKey, now time.Time) (*audit.Checkpoint, error) {
	last, err := db.LatestCheckpoint(ctx)
	if err != nil {
		return nil, err
	}
	head := db.Head()
	if head.Seq == 0 || (last != nil && last.Seq == head.Seq && last.Hash == head.Hash) {
		return last, nil
	}
	if last != nil {
		// Never bless a rewrite: the record the last checkpoint names
		// must still be the one it signed.
		var hash string
		if err := db.sql.QueryRowContext(ctx, `SELECT hash FROM events WHERE seq = ?`, last.Seq).Scan(&hash); err != nil || hash != last.Hash {
			return last, fmt.Errorf("%w: record %d no longer matches its signed checkpoint of %s; not signing the log as it is now (restore the database from a backup, and find out who changed it)",
				ErrRewritten, last.Seq, last.Time.UTC().Format(time.RFC3339))
		}
	}
	// And what came since must chain on from it (or from the start).
	from := audit.Start()
	if last != nil {
		from = audit.Head{Seq: last.Seq, Hash: last.Hash}
	}
	recs, err := queryEvents(ctx, db.sql, `SELECT `+eventCols+` FROM events WHERE seq > ? AND seq <= ? ORDER BY seq`, from.Seq, head.Seq)
	if err != nil {
		return last, err
	}
	if _, err := audit.Verify(recs, from); err != nil {
		return last, fmt.Errorf("%w: %v; not signing it", ErrRewritten, err)
	}
	c := audit.SignCheckpoint(key, head, now)
	if _, err := db.sql.ExecContext(ctx, `INSERT INTO checkpoints (seq, hash, time, sig) VALUES (?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING`,
		c.Seq, c.Hash, fmtTime(c.Time), c.Sig); err != nil {
		return nil, err
	}
	return &c, nil
}

// LatestCheckpoint returns the newest checkpoint, nil if none.
func (db *DB) LatestCheckpoint(ctx context.Context) (*audit.Checkpoint, error) {
	cs, err := db.checkpoints(ctx, `SELECT seq, hash, time, sig FROM checkpoints ORDER BY seq DESC LIMIT 1`)
	if err != nil || len(cs) == 0 {
		return nil, err
	}
	return &cs[0], nil
}

// Checkpoints returns up to limit checkpoints after seq after, oldest first.
func (db *DB) Checkpoints(ctx context.Context, after int64, limit int) ([]audit.Checkpoint, error) {
	if limit <= 0 || limit > 10000 {
		limit = 1000
	}
	return db.checkpoints(ctx, `SELECT seq, hash, time, sig FROM checkpoints WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
}

func (db *DB) checkpoints(ctx context.Context, q string, args ...any) ([]audit.Checkpoint, error) {
	rows, err := db.sql.QueryContext(ctx, q, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []audit.Checkpoint
	for rows.Next() {
		var c audit.Checkpoint
		var t string
		if err := rows.Scan(&c.Seq, &c.Hash, &t, &c.Sig); err != nil {
			return nil, err
		}
		c.Time = parseTime(t)
		out = append(out, c)
	}
	return out, rows.Err()
}
