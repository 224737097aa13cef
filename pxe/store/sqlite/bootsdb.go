package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"time"
)

// restoreWindow: boots started longer ago than this are not put back in
// flight after a restart; a host that far into a boot has either finished
// or will start a new one.
const restoreWindow = 2 * time.Hour

// store.NewBoots returns the in-memory boot tracker, its history kept in the
// store and its recent boots restored, so that a restart of lifeboatd
// mid-boot does not orphan the hosts booting.
func (db *DB) NewBoots(ctx context.Context) (*store.Boots, error) {
	b := store.NewBoots()
	since := db.now().Add(-restoreWindow)
	recs, err := db.BootRecords(ctx, store.BootFilter{Since: since, Limit: 10000})
	if err != nil {
		return nil, err
	}
	var live []*store.Boot
	seen := map[string]bool{}
	for _, r := range recs { // newest first: the first per MAC is its current boot
		if seen[r.MAC] {
			continue
		}
		seen[r.MAC] = true
		bt := &store.Boot{ID: r.ID, Host: r.Host, MAC: r.MAC, Started: r.Started, Firmware: r.Firmware, Times: map[store.Stage]time.Time{}}
		bt.Stage, _ = store.ParseStage(r.Stage)
		for _, s := range r.Stages {
			if st, ok := store.ParseStage(s.Stage); ok {
				bt.Times[st] = s.At
			}
		}
		live = append(live, bt)
	}
	b.Restore(live)
	b.OnChange = db.recordStage
	return b, nil
}

// BootRecords lists boots, newest first, with their stages.
func (db *DB) BootRecords(ctx context.Context, f store.BootFilter) ([]store.BootRecord, error) {
	q := `SELECT id, host, mac, firmware, started, stage FROM boots WHERE started >= ?`
	args := []any{fmtTime(f.Since)}
	if f.Host != "" {
		q += ` AND host = ?`
		args = append(args, f.Host)
	}
	if f.Limit <= 0 || f.Limit > 10000 {
		f.Limit = 100
	}
	q += ` ORDER BY started DESC, id LIMIT ?`
	args = append(args, f.Limit)
	rows, err := db.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	var out []store.BootRecord
	idx := map[string]int{}
	for rows.Next() {
		var r store.BootRecord
		var started string
		if err := rows.Scan(&r.ID, &r.Host, &r.MAC, &r.Firmware, &started, &r.Stage); err != nil {
			rows.Close()
			return nil, err
		}
		r.Started = parseTime(started)
		r.Stages = []store.StageTimes{}
		idx[r.ID] = len(out)
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return out, nil
	}
	// Stages of the boots listed, in one query over the same window.
	sq := `SELECT s.boot, s.stage, s.at FROM boot_stages s JOIN boots b ON b.id = s.boot WHERE b.started >= ?`
	sargs := []any{fmtTime(f.Since)}
	if f.Host != "" {
		sq += ` AND b.host = ?`
		sargs = append(sargs, f.Host)
	}
	sq += ` ORDER BY s.at`
	srows, err := db.sql.QueryContext(ctx, sq, sargs...)
	if err != nil {
		return nil, err
	}
	defer srows.Close()
	for srows.Next() {
		var id, stage, at string
		if err := srows.Scan(&id, &stage, &at); err != nil {
			return nil, err
		}
		i, ok := idx[id]
		if !ok {
			continue
		}
		t := parseTime(at)
		out[i].Stages = append(out[i].Stages, store.StageTimes{Stage: stage, At: t, After: t.Sub(out[i].Started)})
	}
	return out, srows.Err()
}

// store.BootRecord returns one boot by id.
func (db *DB) BootRecord(ctx context.Context, id string) (*store.BootRecord, error) {
	var r store.BootRecord
	var started string
	err := db.sql.QueryRowContext(ctx, `SELECT id, host, mac, firmware, started, stage FROM boots WHERE id = ?`, id).
		Scan(&r.ID, &r.Host, &r.MAC, &r.Firmware, &started, &r.Stage)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("boot %q: %w", id, store.ErrNotFound)
	} else if err != nil {
		return nil, err
	}
	r.Started = parseTime(started)
	rows, err := db.sql.QueryContext(ctx, `SELECT stage, at FROM boot_stages WHERE boot = ? ORDER BY at`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	r.Stages = []store.StageTimes{}
	for rows.Next() {
		var stage, at string
		if err := rows.Scan(&stage, &at); err != nil {
			return nil, err
		}
		t := parseTime(at)
		r.Stages = append(r.Stages, store.StageTimes{Stage: stage, At: t, After: t.Sub(r.Started)})
	}
	return &r, rows.Err()
}
