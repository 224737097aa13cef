package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"net"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// Checkin takes an agent's check-in in one transaction: the boot token is
// redeemed, the check-in recorded, a report token issued and the host's
// rescue grant (if it has one) made active, all or nothing. A failure
// anywhere leaves the token unused, so that the agent can try again.
//
// A retry of a redeemed token with the same host key is the same agent
// whose answer was lost: it gets the same answer (mode, certificate,
// grant) and a new report token; the earlier ones stay valid, and the
// retry is recorded (and told to the customer) with the caller's address.
// Any other use of a redeemed token is a replay (store.ErrTokenUsed).
//
// On a refusal the answer carries the token's binding, where the token is
// known, for the caller's record of it.
func (db *DB) Checkin(ctx context.Context, req store.CheckinRequest) (*store.Checkin, error) {
	hash := hashSecret(req.Token)
	now := db.now().UTC()
	out := &store.Checkin{}
	activated := false
	err := db.change(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		var expires, hostKey, cert, grantID string
		var mode store.Mode
		var used bool
		b := &out.Binding
		err := tx.QueryRowContext(ctx, `SELECT mac, host, boot, expires, used, host_key, mode, host_cert, grant_id FROM boot_tokens WHERE hash = ?`, hash).
			Scan(&b.MAC, &b.Host, &b.Boot, &expires, &used, &hostKey, &mode, &cert, &grantID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return nil, store.ErrTokenUnknown
		case err != nil:
			return nil, fmt.Errorf("boot token: %w", err)
		case (req.MAC != "" && req.MAC != b.MAC) || (req.Boot != "" && req.Boot != b.Boot):
			return nil, store.ErrTokenBinding
		case now.After(parseTime(expires)):
			return nil, store.ErrTokenExpired
		case used && (hostKey == "" || hostKey != req.HostKey):
			return nil, store.ErrTokenUsed
		}
		mac, _ := net.ParseMAC(b.MAC)
		h, ok := db.Lookup(mac)
		if !ok {
			return nil, store.ErrHostGone
		}
		out.Host = h
		if used {
			// The same agent again: the answer it lost.
			out.Retry, out.Mode, out.HostCert = true, mode, cert
			if grantID != "" {
				if out.Grant, err = scanGrant(tx.QueryRowContext(ctx, `SELECT `+grantCols+` FROM grants WHERE id = ?`, grantID)); err != nil {
					return nil, fmt.Errorf("check-in retry: grant %s: %w", grantID, err)
				}
			}
			// The report tokens issued before stay valid: the check-in
			// travels in the clear, so whoever saw it could send it
			// again, and must not cut the real agent off by doing so.
			if out.ReportToken, err = db.insertReportToken(ctx, tx, *b, hash, req); err != nil {
				return nil, err
			}
			return []audit.Event{{Time: now, Code: audit.CheckinRetry, MAC: b.MAC, Host: b.Host, Boot: b.Boot, Actor: "agent",
				Details: map[string]string{"host_key": req.HostKey, "ip": req.IP, "peer": req.Peer}}}, nil
		}
		out.Mode = h.Mode
		details := map[string]string{"host_key": req.HostKey, "ip": req.IP, "peer": req.Peer, "mode": string(h.Mode)}
		if req.Certify != nil {
			var more map[string]string
			if out.HostCert, more, err = req.Certify(h, *b); err != nil {
				return nil, err
			}
			maps.Copy(details, more)
		}
		evs := []audit.Event{{Time: now, Code: audit.AgentCheckin, MAC: b.MAC, Host: b.Host, Boot: b.Boot, Actor: "agent", Details: details}}
		if h.Mode == store.ModeRescue {
			// The grant is used by this boot (with its own record): from
			// here on the host boots in its own mode again.
			if g := db.liveGrant(h.Name); g != nil {
				g, ev, err := db.moveGrantTx(ctx, tx, g.ID, store.GrantActive, audit.RescueActive, "agent", b.Boot, nil, nil)
				switch {
				case errors.Is(err, store.ErrConflict):
					// Revoked or expired meanwhile: a rescue boot without a grant.
				case err != nil:
					return nil, err
				default:
					out.Grant, activated = g, true
					evs = append(evs, ev)
				}
			}
		}
		if out.Grant != nil {
			grantID = out.Grant.ID
		}
		res, err := tx.ExecContext(ctx, `UPDATE boot_tokens SET used = 1, host_key = ?, mode = ?, host_cert = ?, grant_id = ? WHERE hash = ? AND used = 0`,
			req.HostKey, out.Mode, out.HostCert, grantID, hash)
		if err != nil {
			return nil, fmt.Errorf("boot token: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil, store.ErrTokenUsed
		}
		if out.ReportToken, err = db.insertReportToken(ctx, tx, *b, hash, req); err != nil {
			return nil, err
		}
		return evs, nil
	})
	if err != nil {
		return &store.Checkin{Binding: out.Binding}, err
	}
	if activated {
		if err := db.reloadGrants(ctx); err != nil {
			return out, err
		}
	}
	return out, nil
}

// insertReportToken mints the token a checked-in agent reports b's events
// with; the store keeps only its hash, and which boot token it came from.
func (db *DB) insertReportToken(ctx context.Context, tx *sql.Tx, b store.Binding, bootToken string, req store.CheckinRequest) (string, error) {
	tok := store.NewSecret()
	now := db.now().UTC()
	if _, err := tx.ExecContext(ctx, `DELETE FROM report_tokens WHERE expires < ?`, fmtTime(now)); err != nil {
		return "", fmt.Errorf("report token: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO report_tokens (hash, mac, host, boot, expires, boot_token) VALUES (?, ?, ?, ?, ?, ?)`,
		hashSecret(tok), b.MAC, b.Host, b.Boot, fmtTime(now.Add(cmp.Or(req.ReportTTL, 24*time.Hour))), bootToken); err != nil {
		return "", fmt.Errorf("report token: %w", err)
	}
	return tok, nil
}
