package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"time"

	"golang.org/x/crypto/ssh"

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
// One host key per host is certified at a time: while the agent of a
// check-in is alive (it checked in or sent a heartbeat within
// store.AgentAlive, and has not handed over), every other check-in for the
// host, of this boot or a new one, is refused (store.ErrAgentAlive). A
// check-in must come from the host's reserved address, where it has one
// (store.ErrWrongPeer). The check-in that is certified revokes the report
// tokens of the host's earlier boots.
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
		if h.IP.IsValid() && req.Peer != h.IP.String() {
			return nil, store.ErrWrongPeer
		}
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
			if _, err := tx.ExecContext(ctx, `UPDATE agents SET seen = ? WHERE host = ? AND boot = ?`, fmtTime(now), b.Host, b.Boot); err != nil {
				return nil, fmt.Errorf("agent: %w", err)
			}
			return []audit.Event{{Time: now, Code: audit.CheckinRetry, MAC: b.MAC, Host: b.Host, Boot: b.Boot, Actor: "agent",
				Details: map[string]string{"host_key": req.HostKey, "ip": req.IP, "peer": req.Peer}}}, nil
		}
		var live store.LiveAgent
		var seen string
		var ended bool
		err = tx.QueryRowContext(ctx, `SELECT boot, host_key, seen, ended FROM agents WHERE host = ?`, h.Name).Scan(&live.Boot, &live.HostKey, &seen, &ended)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return nil, fmt.Errorf("agent: %w", err)
		case !ended && now.Sub(parseTime(seen)) < store.AgentAlive:
			live.Seen = parseTime(seen)
			out.Live = &live
			return nil, store.ErrAgentAlive
		}
		out.Mode = h.Mode
		details := map[string]string{"host_key": req.HostKey, "ip": req.IP, "peer": req.Peer, "mode": string(h.Mode)}
		maps.Copy(details, req.Trust)
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
		if _, err := tx.ExecContext(ctx, `INSERT INTO agents (host, mac, boot, host_key, seen, ended) VALUES (?, ?, ?, ?, ?, 0)
			ON CONFLICT(host) DO UPDATE SET mac = excluded.mac, boot = excluded.boot, host_key = excluded.host_key, seen = excluded.seen, ended = 0`,
			b.Host, b.MAC, b.Boot, req.HostKey, fmtTime(now)); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		// The earlier boots' agents may say no more.
		if _, err := tx.ExecContext(ctx, `DELETE FROM report_tokens WHERE host = ? AND boot != ?`, b.Host, b.Boot); err != nil {
			return nil, fmt.Errorf("report token: %w", err)
		}
		return evs, nil
	})
	if err != nil {
		return &store.Checkin{Binding: out.Binding, Live: out.Live}, err
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

// Heartbeat keeps b's agent alive; store.ErrBootEnded if the boot handed
// over or a newer boot of the host checked in.
func (db *DB) Heartbeat(ctx context.Context, b store.Binding) error {
	res, err := db.sql.ExecContext(ctx, `UPDATE agents SET seen = ? WHERE host = ? AND boot = ? AND ended = 0`, fmtTime(db.now().UTC()), b.Host, b.Boot)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return store.ErrBootEnded
	}
	return nil
}

// EndAgent says whether b's agent has ended (it handed over to the OS) or,
// after a failed hand-off, lives on; a newer boot's agent is not touched.
func (db *DB) EndAgent(ctx context.Context, b store.Binding, ended bool) error {
	_, err := db.sql.ExecContext(ctx, `UPDATE agents SET ended = ?, seen = ? WHERE host = ? AND boot = ?`, ended, fmtTime(db.now().UTC()), b.Host, b.Boot)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// EndedCerts returns the serials of host certificates that are still
// valid but whose boot has ended: it handed over, a newer boot of the host
// checked in, or its agent went quiet for store.AgentAlive. They go into
// the revocation list customers' ssh reads (RevokedHostKeys), so that a
// certificate outlives its boot on no one's screen.
func (db *DB) EndedCerts(ctx context.Context) ([]uint64, error) {
	now := db.now().UTC()
	rows, err := db.sql.QueryContext(ctx, `SELECT t.host_cert, COALESCE(a.boot, ''), COALESCE(a.ended, 1), COALESCE(a.seen, '')
		FROM boot_tokens t LEFT JOIN agents a ON a.host = t.host AND a.boot = t.boot WHERE t.host_cert != ''`)
	if err != nil {
		return nil, fmt.Errorf("ended certificates: %w", err)
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var cert, boot, seen string
		var ended bool
		if err := rows.Scan(&cert, &boot, &ended, &seen); err != nil {
			return nil, err
		}
		pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(cert))
		c, ok := pk.(*ssh.Certificate)
		if err != nil || !ok || time.Unix(int64(c.ValidBefore), 0).Before(now) {
			continue
		}
		if boot != "" && !ended && now.Sub(parseTime(seen)) < store.AgentAlive {
			continue // the live agent's
		}
		out = append(out, c.Serial)
	}
	return out, rows.Err()
}

// ResetAgent ends host's live agent at an operator's word (the machine was
// replaced, or powered off in lifeboat), so that its next boot is
// certified without waiting for store.AgentAlive: recorded, and told to
// the customer. It returns store.ErrNotFound when the host has no agent
// that is not ended.
func (db *DB) ResetAgent(ctx context.Context, host, actor string) error {
	return db.change(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		var mac, boot, key string
		err := tx.QueryRowContext(ctx, `SELECT mac, boot, host_key FROM agents WHERE host = ? AND ended = 0`, host).Scan(&mac, &boot, &key)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("host %q has no lifeboat agent to end: %w", host, store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE agents SET ended = 1 WHERE host = ?`, host); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		return []audit.Event{{Time: db.now().UTC(), Code: audit.AgentReset, MAC: mac, Host: host, Boot: boot, Actor: actor,
			Details: map[string]string{"boot": boot, "host_key": key}}}, nil
	})
}

// LastHandoff returns the details and time of the last hand-off of host in
// an unlock boot (one the customer unlocked and lifeboat booted), nil if
// none. Records of rescue boots do not count: a root shell there could
// report what it likes.
func (db *DB) LastHandoff(ctx context.Context, host string) (map[string]string, time.Time, error) {
	var details, at string
	err := db.sql.QueryRowContext(ctx, `SELECT e.details, e.time FROM events e
		WHERE e.host = ? AND e.code = ? AND e.boot != '' AND EXISTS (
			SELECT 1 FROM events c WHERE c.host = e.host AND c.boot = e.boot AND c.code = ? AND json_extract(c.details, '$.mode') = ?)
		ORDER BY e.seq DESC LIMIT 1`, host, audit.Handoff, audit.AgentCheckin, string(store.ModeUnlock)).Scan(&details, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	var d map[string]string
	if err := json.Unmarshal([]byte(details), &d); err != nil {
		return nil, time.Time{}, err
	}
	return d, parseTime(at), nil
}

// RecordingBegun says whether boot of host recorded the start of a shell
// (or console shell) whose recording is name.
func (db *DB) RecordingBegun(ctx context.Context, host, boot, name string) (bool, error) {
	var n int
	err := db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE host = ? AND boot = ? AND code IN (?, ?)
		AND json_extract(details, '$.recording') = ?`, host, boot, audit.RescueShell, audit.RescueConsole, name).Scan(&n)
	return n > 0, err
}
