package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// restoreWindow: boots started longer ago than this are not put back in
// flight after a restart; a host that far into a boot has either finished
// or will start a new one.
const restoreWindow = 2 * time.Hour

// NewSteps returns the boot steps over this store: the in-memory boot
// tracker with its recent boots restored (so that a restart of lifeboatd
// mid-boot does not orphan the hosts booting), this store's event log, and
// its boot history.
func (db *DB) NewSteps(ctx context.Context) (*store.Steps, error) {
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
	return &store.Steps{Events: db, Boots: b, History: db}, nil
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
	for rows.Next() {
		var r store.BootRecord
		var started string
		if err := rows.Scan(&r.ID, &r.Host, &r.MAC, &r.Firmware, &started, &r.Stage); err != nil {
			rows.Close()
			return nil, err
		}
		r.Started = parseTime(started)
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, db.addStages(ctx, out)
}

// BootRecord returns one boot by id.
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
	if r.Warnings, err = db.bootWarnings(ctx, id); err != nil {
		return nil, err
	}
	var trust sql.NullString
	err = db.sql.QueryRowContext(ctx, `SELECT json_extract(details, '$.trust') FROM events WHERE host = ? AND boot = ? AND code = ?
		ORDER BY seq LIMIT 1`, r.Host, id, audit.AgentCheckin).Scan(&trust)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	r.Trust = trust.String
	out := []store.BootRecord{r}
	return &out[0], db.addStages(ctx, out)
}

// addStages fills in the stages of the boots given, in one query over
// just those boots.
func (db *DB) addStages(ctx context.Context, boots []store.BootRecord) error {
	if len(boots) == 0 {
		return nil
	}
	idx := make(map[string]int, len(boots))
	args := make([]any, len(boots))
	for i := range boots {
		boots[i].Stages = []store.StageTimes{}
		idx[boots[i].ID] = i
		args[i] = boots[i].ID
	}
	q := `SELECT boot, stage, at FROM boot_stages WHERE boot IN (?` + strings.Repeat(", ?", len(boots)-1) + `) ORDER BY at`
	rows, err := db.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, stage, at string
		if err := rows.Scan(&id, &stage, &at); err != nil {
			return err
		}
		b := &boots[idx[id]]
		t := parseTime(at)
		b.Stages = append(b.Stages, store.StageTimes{Stage: stage, At: t, After: t.Sub(b.Started)})
	}
	return rows.Err()
}
