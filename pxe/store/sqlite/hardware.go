package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// SaveHardware keeps boot's hardware report and records it, in one
// transaction: the record commits the report's SHA-256 (so that a report
// changed in the database no longer matches its record) and says its
// warnings. A boot reports once; a second report is store.ErrConflict.
func (db *DB) SaveHardware(ctx context.Context, b store.Binding, report []byte, summary map[string]string, warnings []string) error {
	sum := sha256.Sum256(report)
	details := map[string]string{"report_sha256": hex.EncodeToString(sum[:])}
	for k, v := range summary {
		details[k] = v
	}
	for i, w := range warnings {
		if i == 8 {
			details["warnings_more"] = fmt.Sprint(len(warnings) - i)
			break
		}
		details[fmt.Sprintf("warning_%d", i+1)] = w
	}
	return db.change(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		res, err := tx.ExecContext(ctx, `INSERT INTO boot_hardware (boot, host, received, report, warnings)
			SELECT id, host, ?, ?, ? FROM boots WHERE id = ? AND host = ? ON CONFLICT (boot) DO NOTHING`,
			fmtTime(db.now()), string(report), strings.Join(warnings, "\n"), b.Boot, b.Host)
		if err != nil {
			return nil, fmt.Errorf("hardware report: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil, fmt.Errorf("boot %s reported its hardware already, or is not a boot of %s: %w", b.Boot, b.Host, store.ErrConflict)
		}
		return []audit.Event{{Code: audit.BootHardware, MAC: b.MAC, Host: b.Host, Boot: b.Boot, Actor: "agent", Details: details}}, nil
	})
}

// Hardware returns the newest hardware report of host
// (store.ErrNotFound if it has none).
func (db *DB) Hardware(ctx context.Context, host string) (*store.Hardware, error) {
	var h store.Hardware
	var received, report, warnings string
	err := db.sql.QueryRowContext(ctx, `SELECT host, boot, received, report, warnings FROM boot_hardware
		WHERE host = ? ORDER BY received DESC, boot DESC LIMIT 1`, host).Scan(&h.Host, &h.Boot, &received, &report, &warnings)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("no hardware report of host %q yet (it comes with a boot into lifeboat): %w", host, store.ErrNotFound)
	} else if err != nil {
		return nil, err
	}
	h.Received, h.Report, h.Warnings = parseTime(received), []byte(report), lines(warnings)
	return &h, nil
}

// bootWarnings returns the warnings of a boot's hardware report.
func (db *DB) bootWarnings(ctx context.Context, boot string) ([]string, error) {
	var w string
	err := db.sql.QueryRowContext(ctx, `SELECT warnings FROM boot_hardware WHERE boot = ?`, boot).Scan(&w)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return lines(w), err
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
