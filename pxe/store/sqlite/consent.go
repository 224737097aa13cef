package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/pxe/keys/sshsig"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// UpdateCustomer changes a customer's entry with edit (which may change
// e-mails, keys, display name and time zone; name and age recipient stay),
// recorded with what changed. The record's notices go to the channels the
// customer had before: a replaced address hears nothing first.
func (db *DB) UpdateCustomer(ctx context.Context, name string, edit func(*store.Customer) error, actor string) (*store.Customer, error) {
	var out *store.Customer
	err := db.changeToldFirst(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		cs, err := db.customers(ctx, tx, name)
		if err != nil {
			return nil, err
		}
		if len(cs) == 0 {
			return nil, fmt.Errorf("customer %q: %w", name, store.ErrNotFound)
		}
		old := cs[0]
		c := old
		c.Emails, c.Keys = slices.Clone(old.Emails), slices.Clone(old.Keys)
		if err := edit(&c); err != nil {
			return nil, fmt.Errorf("%w: %v", store.ErrInvalid, err)
		}
		c.Name, c.AgeRecipient = old.Name, old.AgeRecipient
		if err := c.Check(); err != nil {
			return nil, fmt.Errorf("%w: %v", store.ErrInvalid, err)
		}
		d := map[string]string{}
		diff := func(k, a, b string) {
			if a != b {
				d[k] = a + " → " + b
			}
		}
		diff("display_name", old.DisplayName, c.DisplayName)
		diff("emails", strings.Join(old.Emails, ","), strings.Join(c.Emails, ","))
		diff("keys", strings.Join(store.Fingerprints(old.Keys), ","), strings.Join(store.Fingerprints(c.Keys), ","))
		diff("time_zone", old.TimeZone, c.TimeZone)
		out = &c
		if len(d) == 0 {
			return nil, nil
		}
		return []audit.Event{{Time: db.now().UTC(), Code: audit.CustomerSet, Customer: name, Actor: actor, Details: d}}, nil
	}, func(tx *sql.Tx) error {
		emails, _ := json.Marshal(nonNil(out.Emails))
		keys, _ := json.Marshal(nonNil(out.Keys))
		_, err := tx.ExecContext(ctx, `UPDATE customers SET display_name = ?, emails = ?, keys = ?, time_zone = ? WHERE name = ?`,
			out.DisplayName, string(emails), string(keys), out.TimeZone, name)
		return err
	})
	return out, err
}

// AddStaff puts a staff member on a customer's list (or replaces their
// entry), told to the customer before it applies.
func (db *DB) AddStaff(ctx context.Context, s store.Staff, actor string) error {
	if err := s.Check(); err != nil {
		return fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	s.Added = db.now().UTC()
	keys, _ := json.Marshal(s.Keys)
	return db.changeToldFirst(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		if err := customerExists(ctx, tx, s.Customer); err != nil {
			return nil, err
		}
		return []audit.Event{{Time: s.Added, Code: audit.StaffAdd, Customer: s.Customer, Actor: actor,
			Details: map[string]string{"name": s.Name, "role": s.Role, "keys": strings.Join(s.Keys, ",")}}}, nil
	}, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO staff (customer, name, role, keys, added) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (customer, name) DO UPDATE SET role = excluded.role, keys = excluded.keys, added = excluded.added`,
			s.Customer, s.Name, s.Role, string(keys), fmtTime(s.Added))
		return err
	})
}

// RemoveStaff takes a staff member off a customer's list. Their open
// grants on the customer's hosts are revoked in the same transaction.
func (db *DB) RemoveStaff(ctx context.Context, customer, name, actor string) error {
	now := db.now().UTC()
	err := db.changeToldFirst(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM staff WHERE customer = ? AND name = ?`, customer, name).Scan(&n); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("staff %q of customer %q: %w", name, customer, store.ErrNotFound)
		}
		evs := []audit.Event{{Time: now, Code: audit.StaffRemove, Customer: customer, Actor: actor, Details: map[string]string{"name": name}}}
		open, err := openGrants(ctx, tx, `staff = ? AND customer = ?`, name, customer)
		if err != nil {
			return nil, err
		}
		for _, id := range open {
			_, ev, err := db.moveGrantTx(ctx, tx, id, store.GrantRevoked, audit.RescueRevoke, actor, "", map[string]string{"why": "staff member removed from the customer's list"}, nil)
			if err != nil {
				return nil, err
			}
			evs = append(evs, ev)
		}
		return evs, nil
	}, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM staff WHERE customer = ? AND name = ?`, customer, name)
		return err
	})
	if err != nil {
		return err
	}
	return db.reloadGrants(ctx)
}

// openGrants lists the ids of grants matching where that have not ended.
func openGrants(ctx context.Context, tx *sql.Tx, where string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id FROM grants WHERE state IN (?, ?, ?) AND `+where+` ORDER BY created`,
		append([]any{store.GrantRequested, store.GrantApproved, store.GrantActive}, args...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// Staff lists a customer's staff list.
func (db *DB) Staff(ctx context.Context, customer string) ([]store.Staff, error) {
	return db.staff(ctx, db.sql, customer)
}

func (db *DB) staff(ctx context.Context, q querier, customer string) ([]store.Staff, error) {
	rows, err := q.QueryContext(ctx, `SELECT customer, name, role, keys, added FROM staff WHERE customer = ? ORDER BY name`, customer)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Staff
	for rows.Next() {
		var s store.Staff
		var keys, added string
		if err := rows.Scan(&s.Customer, &s.Name, &s.Role, &keys, &added); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(keys), &s.Keys); err != nil {
			return nil, err
		}
		s.Added = parseTime(added)
		out = append(out, s)
	}
	return out, rows.Err()
}

func customerExists(ctx context.Context, tx *sql.Tx, name string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM customers WHERE name = ?`, name).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("customer %q: %w", name, store.ErrNotFound)
	}
	return nil
}

// Propose records an operator's proposed change to a customer's settings;
// the customer is told, and it waits for them.
func (db *DB) Propose(ctx context.Context, p store.Proposal) (*store.Proposal, error) {
	p.ID, p.Created, p.State = randomID("p-"), db.now().UTC(), store.ProposalOpen
	err := db.change(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		if err := customerExists(ctx, tx, p.Customer); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO proposals (id, customer, kind, target, body, summary, proposed_by, created, state)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, p.ID, p.Customer, p.Kind, p.Target, p.Body, p.Summary, p.ProposedBy, fmtTime(p.Created), p.State); err != nil {
			return nil, err
		}
		return []audit.Event{{Time: p.Created, Code: audit.ProposalOpen, Customer: p.Customer, Actor: p.ProposedBy,
			Details: map[string]string{"proposal": p.ID, "kind": p.Kind, "summary": p.Summary}}}, nil
	})
	if err != nil {
		return nil, err
	}
	return &p, nil
}

const proposalCols = `id, customer, kind, target, body, summary, proposed_by, created, state, decided_by, error`

func scanProposal(row interface{ Scan(...any) error }) (*store.Proposal, error) {
	var p store.Proposal
	var created string
	if err := row.Scan(&p.ID, &p.Customer, &p.Kind, &p.Target, &p.Body, &p.Summary, &p.ProposedBy, &created, &p.State, &p.DecidedBy, &p.Error); err != nil {
		return nil, err
	}
	p.Created = parseTime(created)
	return &p, nil
}

// Proposals lists a customer's proposals, newest first.
func (db *DB) Proposals(ctx context.Context, customer string) ([]*store.Proposal, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT `+proposalCols+` FROM proposals WHERE customer = ? ORDER BY created DESC, id LIMIT 200`, customer)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.Proposal
	for rows.Next() {
		p, err := scanProposal(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// CloseProposal records the customer's answer to an open proposal (state
// accepted, declined, or failed with why: accepted, but the change did
// not apply).
func (db *DB) CloseProposal(ctx context.Context, id, state, why, actor string) (*store.Proposal, error) {
	var p *store.Proposal
	err := db.change(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		var err error
		p, err = scanProposal(tx.QueryRowContext(ctx, `SELECT `+proposalCols+` FROM proposals WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("proposal %q: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return nil, err
		}
		open := p.State == store.ProposalOpen || (p.State == store.ProposalAccepted && state == store.ProposalFailed)
		if !open {
			return nil, fmt.Errorf("proposal %s: %w: it is %s already", id, store.ErrConflict, p.State)
		}
		p.State, p.DecidedBy, p.Error = state, actor, why
		if _, err := tx.ExecContext(ctx, `UPDATE proposals SET state = ?, decided_by = ?, error = ? WHERE id = ?`, state, actor, why, id); err != nil {
			return nil, err
		}
		d := map[string]string{"proposal": id, "kind": p.Kind, "state": state, "summary": p.Summary}
		if why != "" {
			d["error"] = why
		}
		return []audit.Event{{Time: db.now().UTC(), Code: audit.ProposalClose, Customer: p.Customer, Actor: actor, Details: d}}, nil
	})
	return p, err
}

// Proposal returns one proposal.
func (db *DB) Proposal(ctx context.Context, id string) (*store.Proposal, error) {
	p, err := scanProposal(db.sql.QueryRowContext(ctx, `SELECT `+proposalCols+` FROM proposals WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("proposal %q: %w", id, store.ErrNotFound)
	}
	return p, err
}

// ApproveGrant approves a grant waiting for its customer, given a
// signature (ssh-keygen -Y sign -n lifeboat-grant) over its ConsentText by
// one of the customer's keys. The record carries the text and the
// signature, so that anyone can check the consent later. The grant's
// window begins now, for the duration asked.
func (db *DB) ApproveGrant(ctx context.Context, id string, signature []byte) (*store.Grant, error) {
	var g *store.Grant
	err := db.change(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		var key ssh.PublicKey
		var text []byte
		check := func(cur *store.Grant) error {
			text = store.ConsentText(cur)
			if cur.State != store.GrantRequested {
				return fmt.Errorf("grant %s: %w: it is %s already; a decision is made once", cur.ID, store.ErrConflict, cur.State)
			}
			cs, err := db.customers(ctx, tx, cur.Customer)
			if err != nil {
				return err
			}
			if len(cs) == 0 || len(cs[0].Keys) == 0 {
				return fmt.Errorf("%w: customer %s has no SSH key on record to approve with (they add one: lifeboat customer set %s --key FILE)", store.ErrConsent, cur.Customer, cur.Customer)
			}
			allowed, err := store.ParseKeys(cs[0].Keys)
			if err != nil {
				return err
			}
			if key, err = sshsig.Verify(signature, text, store.ConsentNamespace, allowed); err != nil {
				return fmt.Errorf("%w: %v", store.ErrConsent, err)
			}
			return nil
		}
		var ev audit.Event
		var err error
		g, ev, err = db.moveGrantTx(ctx, tx, id, store.GrantApproved, audit.RescueApprove, "", "", nil, check)
		if err != nil {
			return nil, err
		}
		fp := ssh.FingerprintSHA256(key)
		actor := "customer:" + g.Customer + " (key " + fp + ")"
		// The window is the duration asked, from now.
		now := db.now().UTC()
		g.Until, g.From = now.Add(g.Until.Sub(g.From)), now
		g.DecidedBy = actor
		if _, err := tx.ExecContext(ctx, `UPDATE grants SET valid_from = ?, valid_until = ?, decided_by = ? WHERE id = ?`,
			fmtTime(g.From), fmtTime(g.Until), actor, id); err != nil {
			return nil, err
		}
		ev = grantEvent(audit.RescueApprove, g, actor, now)
		ev.Details["signer_key"] = fp
		ev.Details["consent"] = string(text)
		ev.Details["signature"] = strings.TrimSpace(string(signature))
		return []audit.Event{ev}, nil
	})
	if err != nil {
		return g, err
	}
	return g, db.reloadGrants(ctx)
}
