package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/pxe/keys/consolecode"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

const grantCols = `id, host, customer, staff, staff_key, ticket, reason, scope, policy, state, valid_from, valid_until, created, decided, decided_by, console_code_hash`

func scanGrant(row interface{ Scan(...any) error }) (*store.Grant, error) {
	var g store.Grant
	var from, until, created, decided string
	if err := row.Scan(&g.ID, &g.Host, &g.Customer, &g.Staff, &g.StaffKey, &g.Ticket, &g.Reason, &g.Scope, &g.Policy, &g.State,
		&from, &until, &created, &decided, &g.DecidedBy, &g.ConsoleCodeHash); err != nil {
		return nil, err
	}
	g.From, g.Until, g.Created = parseTime(from), parseTime(until), parseTime(created)
	if decided != "" {
		g.Decided = parseTime(decided)
	}
	return &g, nil
}

// grantEvent is the record of a grant's change: what the customer is told.
func grantEvent(code audit.Code, g *store.Grant, actor string, at time.Time) audit.Event {
	d := map[string]string{"grant": g.ID, "scope": string(g.Scope), "ticket": g.Ticket, "staff": g.Staff, "state": string(g.State),
		"from": g.From.Format(time.RFC3339), "until": g.Until.Format(time.RFC3339), "policy": string(g.Policy)}
	if code == audit.RescueRequest {
		d["reason"] = g.Reason
		if pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(g.StaffKey)); err == nil {
			d["staff_key"] = ssh.FingerprintSHA256(pk)
		}
	}
	return audit.Event{Time: at, Code: code, Customer: g.Customer, Host: g.Host, Actor: actor, Details: d}
}

// RequestGrant records support's request for a grant, under the host
// customer's policy for its scope: "approve" leaves it waiting for the
// customer, "notify" approves it at once (the customer is told either way,
// in the same transaction).
func (db *DB) RequestGrant(ctx context.Context, r store.GrantRequest, staff string) (*store.Grant, error) {
	if err := r.Check(); err != nil {
		return nil, fmt.Errorf("%w: %w", store.ErrInvalid, err)
	}
	h, err := db.Host(r.Host)
	if err != nil {
		return nil, err
	}
	if h.Customer == "" {
		return nil, fmt.Errorf("host %s: %w: it has no customer to approve or be told of a grant (lifeboat host set %s --customer NAME)", h.Name, store.ErrInvalid, h.Name)
	}
	now := db.now().UTC()
	g := &store.Grant{ID: randomID("g-"), Host: h.Name, Customer: h.Customer, Staff: staff, StaffKey: r.StaffKey, Ticket: r.Ticket,
		Reason: r.Reason, Scope: r.Scope, From: now, Until: now.Add(r.TTL), Created: now}
	if g.Scope == store.ScopeConsole {
		// Shown once, in this answer, to the staff member who passes it
		// to the technician at the host; only its hash is kept.
		g.ConsoleCode = consolecode.New()
		g.ConsoleCodeHash = consolecode.Hash(g.ID, g.ConsoleCode)
	}
	err = db.change(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		// A grant goes only to staff on the customer's list, with a key
		// listed for them: the list customers are promised.
		list, err := db.staff(ctx, tx, g.Customer)
		if err != nil {
			return nil, err
		}
		if !store.May(list, staff, r.StaffKey) {
			return nil, fmt.Errorf("%w: %s with key %s is not on customer %s's staff list, so no grant of their hosts goes to them (lifeboat customer staff add %s %s --role ROLE --key FINGERPRINT; the customer is told)",
				store.ErrForbidden, staff, strings.Join(store.Fingerprints([]string{r.StaffKey}), ""), g.Customer, g.Customer, staff)
		}
		g.Policy = store.DefaultPolicy(r.Scope)
		switch err := tx.QueryRowContext(ctx, `SELECT policy FROM policies WHERE customer = ? AND scope = ?`, g.Customer, g.Scope).Scan(&g.Policy); {
		case err == nil, errors.Is(err, sql.ErrNoRows):
		default:
			return nil, err
		}
		// The request's record says what became of it: waiting, or (under
		// a notify policy) approved at once, with its own record.
		g.State = store.GrantRequested
		if g.Policy == store.PolicyNotify {
			g.State, g.Decided, g.DecidedBy = store.GrantApproved, now, "policy:notify"
		}
		evs := []audit.Event{grantEvent(audit.RescueRequest, g, staff, now)}
		if g.State == store.GrantApproved {
			evs = append(evs, grantEvent(audit.RescueApprove, g, "policy:notify", now))
		}
		decided := ""
		if !g.Decided.IsZero() {
			decided = fmtTime(g.Decided)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO grants (`+grantCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			g.ID, g.Host, g.Customer, g.Staff, g.StaffKey, g.Ticket, g.Reason, g.Scope, g.Policy, g.State,
			fmtTime(g.From), fmtTime(g.Until), fmtTime(g.Created), decided, g.DecidedBy, g.ConsoleCodeHash)
		return evs, err
	})
	if err != nil {
		return nil, err
	}
	return g, db.reloadGrants(ctx)
}

// reloadGrants rebuilds the snapshot of approved grants not yet used, by
// host (the newest if there are several).
func (db *DB) reloadGrants(ctx context.Context) error {
	gs, err := db.Grants(ctx, store.GrantFilter{State: store.GrantApproved, Limit: 10000})
	if err != nil {
		return err
	}
	m := map[string]*store.Grant{}
	for _, g := range gs {
		if m[g.Host] == nil {
			m[g.Host] = g
		}
	}
	db.rescue.Store(&m)
	return nil
}

// liveGrant returns host's approved grant, not yet used, if it is valid
// now: from the snapshot, without a query (DHCP asks).
func (db *DB) liveGrant(host string) *store.Grant {
	if m := db.rescue.Load(); m != nil {
		if g := (*m)[host]; g != nil && g.Live(db.now()) {
			return g
		}
	}
	return nil
}

// Grant returns one grant.
func (db *DB) Grant(ctx context.Context, id string) (*store.Grant, error) {
	g, err := scanGrant(db.sql.QueryRowContext(ctx, `SELECT `+grantCols+` FROM grants WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("grant %q: %w", id, store.ErrNotFound)
	}
	return g, err
}

// Grants lists grants, newest first.
func (db *DB) Grants(ctx context.Context, f store.GrantFilter) ([]*store.Grant, error) {
	if f.Limit <= 0 || f.Limit > 10000 {
		f.Limit = 100
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT `+grantCols+` FROM grants
		WHERE (host = ? OR ? = '') AND (customer = ? OR ? = '') AND (state = ? OR ? = '')
		ORDER BY created DESC, id LIMIT ?`, f.Host, f.Host, f.Customer, f.Customer, f.State, f.State, f.Limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.Grant
	for rows.Next() {
		g, err := scanGrant(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// moveGrant changes a grant's state, checked against the state machine, and
// records it in the same transaction (see moveGrantTx).
func (db *DB) moveGrant(ctx context.Context, id string, to store.GrantState, code audit.Code, actor, boot string, extra map[string]string, check func(*store.Grant) error) (*store.Grant, error) {
	var g *store.Grant
	err := db.change(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		var ev audit.Event
		var err error
		g, ev, err = db.moveGrantTx(ctx, tx, id, to, code, actor, boot, extra, check)
		if err != nil {
			return nil, err
		}
		return []audit.Event{ev}, nil
	})
	if err != nil {
		return g, err
	}
	return g, db.reloadGrants(ctx)
}

// moveGrantTx changes a grant's state in tx, checked against the state
// machine, and returns the record of the move (for boot, if set, with
// extra details) for the caller to seal in tx. check, if set, may refuse.
// The caller reloads the grants' snapshot once tx commits.
func (db *DB) moveGrantTx(ctx context.Context, tx *sql.Tx, id string, to store.GrantState, code audit.Code, actor, boot string, extra map[string]string, check func(*store.Grant) error) (*store.Grant, audit.Event, error) {
	now := db.now().UTC()
	g, err := scanGrant(tx.QueryRowContext(ctx, `SELECT `+grantCols+` FROM grants WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, audit.Event{}, fmt.Errorf("grant %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, audit.Event{}, err
	}
	if check != nil {
		if err := check(g); err != nil {
			return g, audit.Event{}, err
		}
	}
	if err := g.Can(to, now); err != nil {
		return g, audit.Event{}, err
	}
	g.State = to
	decided, by := "", ""
	if to == store.GrantApproved || to == store.GrantDenied {
		g.Decided, g.DecidedBy = now, actor
		decided, by = fmtTime(now), actor
	}
	if _, err := tx.ExecContext(ctx, `UPDATE grants SET state = ?, decided = CASE WHEN ? != '' THEN ? ELSE decided END,
		decided_by = CASE WHEN ? != '' THEN ? ELSE decided_by END WHERE id = ?`, to, decided, decided, by, by, id); err != nil {
		return g, audit.Event{}, err
	}
	ev := grantEvent(code, g, actor, now)
	ev.Boot = boot
	for k, v := range extra {
		if _, taken := ev.Details[k]; !taken {
			ev.Details[k] = v
		}
	}
	return g, ev, nil
}

// DenyGrant records the customer's no to a grant waiting for them. (A yes
// takes their signature: ApproveGrant.)
func (db *DB) DenyGrant(ctx context.Context, id, actor string) (*store.Grant, error) {
	return db.moveGrant(ctx, id, store.GrantDenied, audit.RescueDeny, actor, "", nil, func(g *store.Grant) error {
		if g.State != store.GrantRequested {
			return fmt.Errorf("grant %s: %w: it is %s already; a decision is made once", g.ID, store.ErrConflict, g.State)
		}
		return nil
	})
}

// RevokeGrant withdraws a grant that has not ended.
func (db *DB) RevokeGrant(ctx context.Context, id, actor string) (*store.Grant, error) {
	return db.moveGrant(ctx, id, store.GrantRevoked, audit.RescueRevoke, actor, "", nil, nil)
}

// ExpireGrants ends every open grant whose window closed by now, each with
// its record, and returns how many.
func (db *DB) ExpireGrants(ctx context.Context) (int, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT id FROM grants WHERE state IN (?, ?, ?) AND valid_until <= ?`,
		store.GrantRequested, store.GrantApproved, store.GrantActive, fmtTime(db.now()))
	if err != nil {
		return 0, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	n := 0
	for _, id := range ids {
		if _, err := db.moveGrant(ctx, id, store.GrantExpired, audit.RescueExpire, "system", "", nil, nil); err != nil {
			if errors.Is(err, store.ErrConflict) {
				continue // decided or revoked meanwhile
			}
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

// SetPolicy sets a customer's policy for a scope.
func (db *DB) SetPolicy(ctx context.Context, customer string, scope store.Scope, policy store.PolicyChoice, actor string) error {
	if !store.ValidScope(scope) {
		return fmt.Errorf("scope %q: %w: want %s", scope, store.ErrInvalid, store.ScopeList())
	}
	if policy != store.PolicyApprove && policy != store.PolicyNotify {
		return fmt.Errorf("policy %q: %w: want approve or notify", policy, store.ErrInvalid)
	}
	now := db.now().UTC()
	return db.change(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM customers WHERE name = ?`, customer).Scan(&n); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("customer %q: %w", customer, store.ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO policies (customer, scope, policy) VALUES (?, ?, ?)
			ON CONFLICT (customer, scope) DO UPDATE SET policy = excluded.policy`, customer, scope, policy); err != nil {
			return nil, err
		}
		return []audit.Event{{Time: now, Code: audit.RescuePolicy, Customer: customer, Actor: actor,
			Details: map[string]string{"scope": string(scope), "policy": string(policy)}}}, nil
	})
}

// Policies returns a customer's policy for every scope, defaults marked.
func (db *DB) Policies(ctx context.Context, customer string) ([]store.Policy, error) {
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM customers WHERE name = ?`, customer).Scan(&n); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("customer %q: %w", customer, store.ErrNotFound)
	}
	set := map[store.Scope]store.PolicyChoice{}
	rows, err := db.sql.QueryContext(ctx, `SELECT scope, policy FROM policies WHERE customer = ?`, customer)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var s store.Scope
		var p store.PolicyChoice
		if err := rows.Scan(&s, &p); err != nil {
			return nil, err
		}
		set[s] = p
	}
	var out []store.Policy
	for _, s := range store.Scopes {
		p, ok := set[s]
		if !ok {
			p = store.DefaultPolicy(s)
		}
		out = append(out, store.Policy{Scope: s, Policy: p, Default: !ok})
	}
	return out, rows.Err()
}

// EndGrant ends host's active grant when its rescue session on boot is over
// (the agent reports why), with its record. A grant that ended otherwise
// meanwhile (expired, revoked) is left as it is: that record was written.
func (db *DB) EndGrant(ctx context.Context, host, boot, actor string, details map[string]string) (*store.Grant, error) {
	gs, err := db.Grants(ctx, store.GrantFilter{Host: host, State: store.GrantActive, Limit: 10})
	if err != nil {
		return nil, err
	}
	if len(gs) == 0 {
		return nil, nil
	}
	g, err := db.moveGrant(ctx, gs[0].ID, store.GrantEnded, audit.RescueEnd, actor, boot, details, nil)
	if errors.Is(err, store.ErrConflict) {
		return nil, nil
	}
	return g, err
}
