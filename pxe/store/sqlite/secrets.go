package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// hashSecret is how a secret is kept: its SHA-256 only. The secrets are
// 256 random bits, so no slow hash is needed against guessing.
func hashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// IssueToken mints a one-time boot token for b, valid for ttl, and returns
// it; the store keeps only its hash. A boot gets one token
// (store.ErrTokenIssued after that): a second script fetch in one boot is
// not the host's iPXE, which reboots (a new boot) when it fails.
func (db *DB) IssueToken(ctx context.Context, b store.Binding, ttl time.Duration) (string, error) {
	tok := store.NewSecret()
	now := db.now().UTC()
	// One transaction, one fsync, on the script's path. Long-expired
	// tokens are dropped; used ones are kept until then, so that a replay
	// is told apart from an unknown token.
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("boot token: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM boot_tokens WHERE expires < ?`, fmtTime(now.Add(-24*time.Hour))); err != nil {
		return "", fmt.Errorf("boot token: %w", err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM boot_tokens WHERE mac = ? AND boot = ?`, b.MAC, b.Boot).Scan(&n); err != nil {
		return "", fmt.Errorf("boot token: %w", err)
	}
	if n > 0 {
		return "", store.ErrTokenIssued
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO boot_tokens (hash, mac, host, boot, expires) VALUES (?, ?, ?, ?, ?)`,
		hashSecret(tok), b.MAC, b.Host, b.Boot, fmtTime(now.Add(ttl))); err != nil {
		return "", fmt.Errorf("boot token: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("boot token: %w", err)
	}
	return tok, nil
}

// PeekToken returns the binding of a live, unused token without using it.
func (db *DB) PeekToken(ctx context.Context, tok string) (store.Binding, error) {
	b, _, err := db.lookupToken(ctx, tok)
	return b, err
}

func (db *DB) lookupToken(ctx context.Context, tok string) (store.Binding, string, error) {
	hash := hashSecret(tok)
	var b store.Binding
	var expires string
	var used bool
	err := db.sql.QueryRowContext(ctx, `SELECT mac, host, boot, expires, used FROM boot_tokens WHERE hash = ?`, hash).
		Scan(&b.MAC, &b.Host, &b.Boot, &expires, &used)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.Binding{}, hash, store.ErrTokenUnknown
	case err != nil:
		return store.Binding{}, hash, fmt.Errorf("boot token: %w", err)
	case used:
		return b, hash, store.ErrTokenUsed
	case db.now().After(parseTime(expires)):
		return b, hash, store.ErrTokenExpired
	}
	return b, hash, nil
}

// AddOperator gives name an API token and returns it; only its hash is
// kept, so it is shown this once.
func (db *DB) AddOperator(ctx context.Context, name, actor string) (string, error) {
	if !store.ValidName(name) {
		return "", fmt.Errorf("operator name %q: use letters, digits, '-' and '.'", name)
	}
	tok := "lbo_" + store.NewSecret()
	now := db.now().UTC()
	err := db.change(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM operators WHERE name = ?`, name).Scan(&n); err != nil {
			return nil, err
		}
		if n > 0 {
			return nil, fmt.Errorf("operator %q: %w: it exists already (remove it first to issue a new token)", name, store.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO operators (name, token_hash, created) VALUES (?, ?, ?)`, name, hashSecret(tok), fmtTime(now)); err != nil {
			return nil, err
		}
		return []audit.Event{{Time: now, Code: audit.OperatorAdd, Actor: actor, Details: map[string]string{"operator": name}}}, nil
	})
	if err != nil {
		return "", err
	}
	return tok, nil
}

// RemoveOperator revokes name's token.
func (db *DB) RemoveOperator(ctx context.Context, name, actor string) error {
	now := db.now().UTC()
	err := db.change(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		res, err := tx.ExecContext(ctx, `DELETE FROM operators WHERE name = ?`, name)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil, fmt.Errorf("operator %q: %w", name, store.ErrNotFound)
		}
		evs := []audit.Event{{Time: now, Code: audit.OperatorRemove, Actor: actor, Details: map[string]string{"operator": name}}}
		// Their open grants end with them, each with its record (the
		// customer is told): a removed operator keeps no way in.
		rows, err := tx.QueryContext(ctx, `SELECT id FROM grants WHERE staff = ? AND state IN (?, ?, ?)`,
			name, store.GrantRequested, store.GrantApproved, store.GrantActive)
		if err != nil {
			return nil, err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			ids = append(ids, id)
		}
		rows.Close()
		for _, id := range ids {
			_, ev, err := db.moveGrantTx(ctx, tx, id, store.GrantRevoked, audit.RescueRevoke, actor, "",
				map[string]string{"reason": "operator " + name + " was removed"}, nil)
			if err != nil {
				return nil, err
			}
			evs = append(evs, ev)
		}
		return evs, nil
	})
	if err != nil {
		return err
	}
	return db.reloadGrants(ctx)
}

// CustomerToken gives a customer an API token, and returns it; a token
// issued before is revoked. Who may ask is the API's to decide: the
// customer, with their key or their token (or an operator under the
// provider's contract).
func (db *DB) CustomerToken(ctx context.Context, customer, actor string) (string, error) {
	tok := "lbc_" + store.NewSecret()
	now := db.now().UTC()
	err := db.change(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM customers WHERE name = ?`, customer).Scan(&n); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("customer %q: %w", customer, store.ErrNotFound)
		}
		var have int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM operators WHERE name = ?`, "customer:"+customer).Scan(&have); err != nil {
			return nil, err
		}
		// The name cannot clash with an operator's: ':' is not allowed there.
		if _, err := tx.ExecContext(ctx, `INSERT INTO operators (name, token_hash, created, customer) VALUES (?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash, created = excluded.created`,
			"customer:"+customer, hashSecret(tok), fmtTime(now), customer); err != nil {
			return nil, err
		}
		d := map[string]string{"replaces": fmt.Sprint(have > 0)}
		return []audit.Event{{Time: now, Code: audit.CustomerToken, Customer: customer, Actor: actor, Details: d}}, nil
	})
	if err != nil {
		return "", err
	}
	return tok, nil
}

// Operators lists the operators by name (customers' tokens too).
func (db *DB) Operators(ctx context.Context) ([]store.Operator, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT name, customer, created FROM operators ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Operator
	for rows.Next() {
		var o store.Operator
		var created string
		if err := rows.Scan(&o.Name, &o.Customer, &created); err != nil {
			return nil, err
		}
		o.Created = parseTime(created)
		out = append(out, o)
	}
	return out, rows.Err()
}

// Authenticate returns the operator (or customer) whose token this is.
func (db *DB) Authenticate(ctx context.Context, token string) (store.Operator, bool) {
	var o store.Operator
	var created string
	err := db.sql.QueryRowContext(ctx, `SELECT name, customer, created FROM operators WHERE token_hash = ?`, hashSecret(token)).Scan(&o.Name, &o.Customer, &created)
	o.Created = parseTime(created)
	return o, err == nil
}

// ReportBinding returns the boot a live report token belongs to;
// store.ErrBootEnded, with the binding, once the boot handed over or a
// newer boot of the host checked in.
func (db *DB) ReportBinding(ctx context.Context, tok string) (store.Binding, error) {
	var b store.Binding
	var expires string
	err := db.sql.QueryRowContext(ctx, `SELECT mac, host, boot, expires FROM report_tokens WHERE hash = ?`, hashSecret(tok)).
		Scan(&b.MAC, &b.Host, &b.Boot, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.Binding{}, store.ErrTokenUnknown
	case err != nil:
		return store.Binding{}, fmt.Errorf("report token: %w", err)
	case db.now().After(parseTime(expires)):
		return store.Binding{}, store.ErrTokenExpired
	}
	var ended bool
	var boot string
	err = db.sql.QueryRowContext(ctx, `SELECT boot, ended FROM agents WHERE host = ?`, b.Host).Scan(&boot, &ended)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return store.Binding{}, fmt.Errorf("agent: %w", err)
	case boot != b.Boot || ended:
		// The binding comes with the error: a boot that handed over
		// may still say that its hand-off failed.
		return b, store.ErrBootEnded
	}
	return b, nil
}
