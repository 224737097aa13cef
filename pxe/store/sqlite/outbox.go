package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

func randomID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return prefix + hex.EncodeToString(b[:])
}

// queueNotices writes one outbox row per channel of e's customer, in the
// transaction of e's record.
func queueNotices(ctx context.Context, tx *sql.Tx, e audit.Event) error {
	var targets [][2]string
	rows, err := tx.QueryContext(ctx, `SELECT id FROM webhooks WHERE customer = ? ORDER BY id`, e.Customer)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		targets = append(targets, [2]string{store.ChannelWebhook, id})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var emails string
	switch err := tx.QueryRowContext(ctx, `SELECT emails FROM customers WHERE name = ?`, e.Customer).Scan(&emails); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return err
	default:
		var list []string
		if err := json.Unmarshal([]byte(emails), &list); err != nil {
			return fmt.Errorf("customer %s: emails: %w", e.Customer, err)
		}
		for _, a := range list {
			targets = append(targets, [2]string{store.ChannelEmail, a})
		}
	}
	for _, t := range targets {
		if _, err := tx.ExecContext(ctx, `INSERT INTO notices (id, seq, customer, channel, target, created, next_try) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			randomID("msg_"), e.Seq, e.Customer, t[0], t[1], fmtTime(e.Time), fmtTime(e.Time)); err != nil {
			return err
		}
	}
	return nil
}

// DueNotices returns up to limit pending notices whose next attempt is due
// at now, in the order of their records, each with its record (and webhook).
// A notice is due only when it is the oldest one pending for its receiver:
// each receiver gets its notices in record order, however long an earlier
// one is retried, across outages and restarts (the order is the table's,
// not the relay's memory).
func (db *DB) DueNotices(ctx context.Context, now time.Time, limit int) ([]store.Notice, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT n.id, n.channel, n.target, n.customer, n.created, n.attempts, n.state, n.last_error,
		COALESCE(w.url, ''), COALESCE(w.sealed, ''), n.seq
		FROM notices n LEFT JOIN webhooks w ON n.channel = 'webhook' AND w.id = n.target
		WHERE n.state = 'pending' AND n.next_try <= ? AND NOT EXISTS (
			SELECT 1 FROM notices m WHERE m.target = n.target AND m.channel = n.channel AND m.state = 'pending'
				AND (m.seq < n.seq OR (m.seq = n.seq AND m.id < n.id)))
		ORDER BY n.seq, n.id LIMIT ?`, fmtTime(now), limit)
	if err != nil {
		return nil, err
	}
	var out []store.Notice
	var seqs []int64
	for rows.Next() {
		var n store.Notice
		var created, wurl, sealed string
		var seq int64
		if err := rows.Scan(&n.ID, &n.Channel, &n.Target, &n.Customer, &created, &n.Attempts, &n.State, &n.Error, &wurl, &sealed, &seq); err != nil {
			rows.Close()
			return nil, err
		}
		n.Created = parseTime(created)
		if n.Channel == store.ChannelWebhook {
			n.Webhook = &store.Webhook{ID: n.Target, Customer: n.Customer, URL: wurl, Sealed: sealed}
		}
		out = append(out, n)
		seqs = append(seqs, seq)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		evs, err := queryEvents(ctx, db.sql, `SELECT `+eventCols+` FROM events WHERE seq = ?`, seqs[i])
		if err != nil {
			return nil, err
		}
		if len(evs) != 1 {
			return nil, fmt.Errorf("notice %s: record %d: %w", out[i].ID, seqs[i], store.ErrNotFound)
		}
		out[i].Event = evs[0]
	}
	return out, nil
}

// NoticeDelivered marks a notice as delivered.
func (db *DB) NoticeDelivered(ctx context.Context, id string) error {
	_, err := db.sql.ExecContext(ctx, `UPDATE notices SET state = 'delivered', attempts = attempts + 1, done = ?, last_error = '' WHERE id = ?`,
		fmtTime(db.now()), id)
	return err
}

// NoticeRetry records a failed attempt and when to try again.
func (db *DB) NoticeRetry(ctx context.Context, id, why string, next time.Time) error {
	_, err := db.sql.ExecContext(ctx, `UPDATE notices SET attempts = attempts + 1, next_try = ?, last_error = ? WHERE id = ? AND state = 'pending'`,
		fmtTime(next), why, id)
	return err
}

// NoticeFailed gives up on a notice, with a record saying so in the same
// transaction.
func (db *DB) NoticeFailed(ctx context.Context, n store.Notice, why string) error {
	now := db.now().UTC()
	return db.change(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		if _, err := tx.ExecContext(ctx, `UPDATE notices SET state = 'failed', attempts = attempts + 1, done = ?, last_error = ? WHERE id = ?`,
			fmtTime(now), why, n.ID); err != nil {
			return nil, err
		}
		return []audit.Event{{Time: now, Code: audit.NoticeFailed, Customer: n.Customer, Actor: "system",
			Details: map[string]string{"notice": n.ID, "channel": n.Channel, "target": n.Target, "record": fmt.Sprint(n.Event.Seq), "error": why}}}, nil
	})
}

// Notices lists the outbox, newest first: for the API and tests.
func (db *DB) Notices(ctx context.Context, customer string, limit int) ([]store.Notice, error) {
	if limit <= 0 || limit > 10000 {
		limit = 100
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT id, channel, target, customer, created, attempts, state, last_error, seq FROM notices
		WHERE customer = ? OR ? = '' ORDER BY created DESC, id LIMIT ?`, customer, customer, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Notice
	for rows.Next() {
		var n store.Notice
		var created string
		if err := rows.Scan(&n.ID, &n.Channel, &n.Target, &n.Customer, &created, &n.Attempts, &n.State, &n.Error, &n.Event.Seq); err != nil {
			return nil, err
		}
		n.Created = parseTime(created)
		out = append(out, n)
	}
	return out, rows.Err()
}

// AddWebhook adds a customer's webhook. w.Sealed holds its secret, sealed
// by the caller; the record names the URL's host, not the URL, whose path
// may hold a token of the receiver's.
func (db *DB) AddWebhook(ctx context.Context, w store.Webhook, actor string) (store.Webhook, error) {
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || len(w.URL) > 2000 {
		return w, fmt.Errorf("webhook URL %q: %w: want http(s)://host/path, without user:password@", w.URL, store.ErrInvalid)
	}
	if w.Sealed == "" {
		return w, fmt.Errorf("webhook: %w: no secret", store.ErrInvalid)
	}
	w.ID = randomID("wh_")
	w.Created = db.now().UTC()
	// The customer's channels hear of a new one first; the new one does
	// not hear of itself.
	err = db.changeToldFirst(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		if err := customerExists(ctx, tx, w.Customer); err != nil {
			return nil, err
		}
		return []audit.Event{{Time: w.Created, Code: audit.WebhookAdd, Customer: w.Customer, Actor: actor,
			Details: map[string]string{"webhook": w.ID, "url_host": u.Host}}}, nil
	}, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO webhooks (id, customer, url, sealed, created) VALUES (?, ?, ?, ?, ?)`,
			w.ID, w.Customer, w.URL, w.Sealed, fmtTime(w.Created))
		return err
	})
	return w, err
}

// RemoveWebhook removes a webhook; its pending notices are dropped with it.
func (db *DB) RemoveWebhook(ctx context.Context, customer, id, actor string) error {
	now := db.now().UTC()
	return db.change(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		res, err := tx.ExecContext(ctx, `DELETE FROM webhooks WHERE id = ? AND customer = ?`, id, customer)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil, fmt.Errorf("webhook %q of customer %q: %w", id, customer, store.ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE notices SET state = 'failed', last_error = 'webhook removed' WHERE target = ? AND state = 'pending'`, id); err != nil {
			return nil, err
		}
		return []audit.Event{{Time: now, Code: audit.WebhookRemove, Customer: customer, Actor: actor, Details: map[string]string{"webhook": id}}}, nil
	})
}

// Webhooks lists a customer's webhooks (all, with customer "").
func (db *DB) Webhooks(ctx context.Context, customer string) ([]store.Webhook, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT id, customer, url, created FROM webhooks WHERE customer = ? OR ? = '' ORDER BY customer, created`, customer, customer)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Webhook
	for rows.Next() {
		var w store.Webhook
		var created string
		if err := rows.Scan(&w.ID, &w.Customer, &w.URL, &created); err != nil {
			return nil, err
		}
		w.Created = parseTime(created)
		out = append(out, w)
	}
	return out, rows.Err()
}
