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
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// Lookup implements store.Inventory from the in-memory snapshot; a host
// with an approved rescue grant comes back in rescue mode.
func (db *DB) Lookup(mac net.HardwareAddr) (*store.Host, bool) {
	return db.withGrant(db.inv.Load().Lookup(mac))
}

// LookupIP implements store.Inventory from the in-memory snapshot.
func (db *DB) LookupIP(ip netip.Addr) (*store.Host, bool) {
	return db.withGrant(db.inv.Load().LookupIP(ip))
}

// LookupCircuit implements store.Inventory from the in-memory snapshot.
func (db *DB) LookupCircuit(id string) (*store.Host, bool) {
	return db.withGrant(db.inv.Load().LookupCircuit(id))
}

// withGrant puts h in rescue mode while an approved grant for it is live.
func (db *DB) withGrant(h *store.Host, ok bool) (*store.Host, bool) {
	if !ok {
		return h, ok
	}
	if db.liveGrant(h.Name) != nil {
		return store.Rescue(h), true
	}
	return h, true
}

// Hosts lists the inventory, sorted by name. The entries are shared: do
// not modify them.
func (db *DB) Hosts() []*store.Host { return db.inv.Load().Hosts() }

// Host returns one host by name.
// It is the host as stored (its own mode, even while a grant is live), so
// that an operator's read-modify-write keeps it.
func (db *DB) Host(name string) (*store.Host, error) {
	if h, ok := db.inv.Load().ByName(name); ok {
		return h, nil
	}
	return nil, fmt.Errorf("host %q: %w", name, store.ErrNotFound)
}

// reload rebuilds the snapshot from the tables.
func (db *DB) reload(ctx context.Context) error {
	rows, err := db.sql.QueryContext(ctx, `SELECT name, COALESCE(customer, ''), ip, prefix, gateway, dns, mode,
		COALESCE(circuit_id, ''), vlan, authorized_keys FROM hosts ORDER BY name`)
	if err != nil {
		return err
	}
	var hosts []*store.Host
	byName := map[string]*store.Host{}
	for rows.Next() {
		h := &store.Host{}
		var ip, gw, dns, keys string
		if err := rows.Scan(&h.Name, &h.Customer, &ip, &h.Prefix, &gw, &dns, &h.Mode, &h.CircuitID, &h.VLAN, &keys); err != nil {
			rows.Close()
			return err
		}
		h.IP, _ = netip.ParseAddr(ip)
		h.Gateway, _ = netip.ParseAddr(gw)
		if err := json.Unmarshal([]byte(dns), &h.DNS); err != nil {
			rows.Close()
			return fmt.Errorf("host %s: dns: %w", h.Name, err)
		}
		if err := json.Unmarshal([]byte(keys), &h.AuthorizedKeys); err != nil {
			rows.Close()
			return fmt.Errorf("host %s: keys: %w", h.Name, err)
		}
		hosts = append(hosts, h)
		byName[h.Name] = h
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	mrows, err := db.sql.QueryContext(ctx, `SELECT mac, host, primary_mac FROM host_macs ORDER BY mac`)
	if err != nil {
		return err
	}
	defer mrows.Close()
	for mrows.Next() {
		var mac, host string
		var primary bool
		if err := mrows.Scan(&mac, &host, &primary); err != nil {
			return err
		}
		if h := byName[host]; h != nil {
			if primary {
				h.MAC = mac
			} else {
				h.OtherMACs = append(h.OtherMACs, mac)
			}
		}
	}
	if err := mrows.Err(); err != nil {
		return err
	}
	idx, err := store.NewIndex(hosts)
	if err != nil {
		return fmt.Errorf("inventory in the database does not check: %w", err)
	}
	db.inv.Store(idx)
	return nil
}

// Apply checks and applies a change in one transaction, with one event per
// host changed, recorded under actor in that same transaction: the change
// and its record are committed together or not at all.
func (db *DB) Apply(ctx context.Context, c store.Change, actor string) (store.ChangeResult, error) {
	db.hostMu.Lock()
	defer db.hostMu.Unlock()
	var res store.ChangeResult
	cur := db.inv.Load()
	byName := map[string]*store.Host{}
	for _, h := range cur.Hosts() {
		byName[h.Name] = h
	}
	var errs []error
	next := maps.Clone(byName) // the inventory as it will be
	for _, name := range c.Remove {
		if _, ok := byName[name]; !ok {
			errs = append(errs, fmt.Errorf("host %q: %w", name, store.ErrNotFound))
			continue
		}
		delete(next, name)
	}
	customers, err := db.customerSet(ctx)
	if err != nil {
		return res, err
	}
	var write []*store.Host // new or changed, in the change's order
	seen := map[string]bool{}
	for i, h := range c.Put {
		if h == nil {
			errs = append(errs, fmt.Errorf("host #%d: %w: empty entry", i+1, store.ErrInvalid))
			continue
		}
		h := *h
		if err := h.Check(); err != nil {
			errs = append(errs, fmt.Errorf("host %q: %w: %v", h.Name, store.ErrInvalid, err))
			continue
		}
		if seen[h.Name] {
			errs = append(errs, fmt.Errorf("host %q: %w: listed twice", h.Name, store.ErrInvalid))
			continue
		}
		seen[h.Name] = true
		old, exists := byName[h.Name]
		if exists && c.Create {
			errs = append(errs, fmt.Errorf("host %q: %w: it exists already (use 'host set' to change it)", h.Name, store.ErrConflict))
			continue
		} else if !exists && c.Replace {
			errs = append(errs, fmt.Errorf("host %q: %w (use 'host add' to add it)", h.Name, store.ErrNotFound))
			continue
		}
		if h.Customer != "" && !customers[h.Customer] {
			errs = append(errs, fmt.Errorf("host %q: customer %q: %w (add it first: lifeboat customer add %s)", h.Name, h.Customer, store.ErrNotFound, h.Customer))
			continue
		}
		if exists && sameHost(old, &h) {
			res.Unchanged++
			continue
		}
		next[h.Name] = &h
		write = append(write, &h)
	}
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	// The whole inventory after the change must check, so that two hosts
	// of one change cannot take each other's MAC, IP or circuit-id. Hosts
	// left as they are go first, the written ones after them in the
	// change's order, so that a conflict is reported against the host
	// being written, the same way every time. The index built here is the
	// new snapshot once the change is committed.
	all := make([]*store.Host, 0, len(next))
	for _, h := range cur.Hosts() {
		if next[h.Name] == h {
			all = append(all, h)
		}
	}
	idx, err := store.NewIndex(append(all, write...))
	if err != nil {
		return res, err
	}

	err = db.change(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		var evs []audit.Event
		now := db.now().UTC()
		for _, name := range c.Remove {
			if _, err := tx.ExecContext(ctx, `DELETE FROM hosts WHERE name = ?`, name); err != nil {
				return nil, err
			}
			evs = append(evs, audit.Event{Time: now, Code: audit.HostRemove, Customer: byName[name].Customer, Host: name, MAC: byName[name].MAC, Actor: actor})
			res.Removed++
		}
		// Addresses, MACs and circuit-ids may move between hosts within one
		// change (two hosts swapping IPs): free those of every host being
		// rewritten before any is taken again, so that no UNIQUE check sees
		// a half-done change.
		for _, h := range write {
			if _, exists := byName[h.Name]; !exists {
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE hosts SET ip = ?, circuit_id = NULL WHERE name = ?`, "moving:"+h.Name, h.Name); err != nil {
				return nil, err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM host_macs WHERE host = ?`, h.Name); err != nil {
				return nil, err
			}
		}
		for _, h := range write {
			old, exists := byName[h.Name]
			if err := writeHost(ctx, tx, h, exists, now); err != nil {
				return nil, err
			}
			ev := audit.Event{Time: now, Code: audit.HostAdd, Customer: h.Customer, Host: h.Name, MAC: h.MAC, Actor: actor, Details: hostDetails(h)}
			if exists {
				ev.Code, ev.Details = audit.HostSet, diffHosts(old, h)
				res.Updated++
				if old.Customer != "" && old.Customer != h.Customer {
					// The customer it leaves hears of it as well.
					moved := ev
					moved.Customer = old.Customer
					evs = append(evs, moved)
				}
			} else {
				res.Added++
			}
			evs = append(evs, ev)
		}
		return evs, nil
	})
	if err != nil {
		return store.ChangeResult{}, err
	}
	db.inv.Store(idx)
	return res, nil
}

func writeHost(ctx context.Context, tx *sql.Tx, h *store.Host, exists bool, now time.Time) error {
	dns, _ := json.Marshal(h.DNS)
	if h.DNS == nil {
		dns = []byte("[]")
	}
	keys, _ := json.Marshal(h.AuthorizedKeys)
	gw := ""
	if h.Gateway.IsValid() {
		gw = h.Gateway.String()
	}
	var cust, circuit any
	if h.Customer != "" {
		cust = h.Customer
	}
	if h.CircuitID != "" {
		circuit = h.CircuitID
	}
	if exists {
		if _, err := tx.ExecContext(ctx, `UPDATE hosts SET customer = ?, ip = ?, prefix = ?, gateway = ?, dns = ?, mode = ?,
			circuit_id = ?, vlan = ?, authorized_keys = ?, updated = ? WHERE name = ?`,
			cust, h.IP.String(), h.Prefix, gw, string(dns), h.Mode, circuit, h.VLAN, string(keys), fmtTime(now), h.Name); err != nil {
			return err
		}
	} else if _, err := tx.ExecContext(ctx, `INSERT INTO hosts (name, customer, ip, prefix, gateway, dns, mode, circuit_id,
		vlan, authorized_keys, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		h.Name, cust, h.IP.String(), h.Prefix, gw, string(dns), h.Mode, circuit, h.VLAN, string(keys), fmtTime(now), fmtTime(now)); err != nil {
		return err
	}
	for i, m := range h.MACs() {
		if _, err := tx.ExecContext(ctx, `INSERT INTO host_macs (mac, host, primary_mac) VALUES (?, ?, ?)`, m, h.Name, i == 0); err != nil {
			return err
		}
	}
	return nil
}

func sameHost(a, b *store.Host) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// hostDetails is what an event says about a host: no keys, only their
// fingerprints.
func hostDetails(h *store.Host) map[string]string {
	d := map[string]string{"ip": h.IP.String(), "mode": string(h.Mode), "macs": strings.Join(h.MACs(), ",")}
	if h.Customer != "" {
		d["customer"] = h.Customer
	}
	if h.CircuitID != "" {
		d["circuit_id"] = h.CircuitID
	}
	if h.VLAN != 0 {
		d["vlan"] = strconv.Itoa(h.VLAN)
	}
	d["keys"] = strings.Join(store.Fingerprints(h.AuthorizedKeys), ",")
	return d
}

// diffHosts lists the fields that changed, old → new.
func diffHosts(a, b *store.Host) map[string]string {
	da, db := hostDetails(a), hostDetails(b)
	out := map[string]string{}
	for k, v := range db {
		if da[k] != v {
			out[k] = da[k] + " → " + v
		}
	}
	for k, v := range da {
		if _, ok := db[k]; !ok {
			out[k] = v + " → "
		}
	}
	if a.Prefix != b.Prefix || a.Gateway != b.Gateway || !slices.Equal(a.DNS, b.DNS) {
		out["network"] = "changed"
	}
	return out
}

// AddCustomer adds a customer, recorded under actor.
func (db *DB) AddCustomer(ctx context.Context, c store.Customer, actor string) error {
	if err := c.Check(); err != nil {
		return fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	db.hostMu.Lock()
	defer db.hostMu.Unlock()
	emails, _ := json.Marshal(c.Emails)
	if c.Emails == nil {
		emails = []byte("[]")
	}
	return db.change(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM customers WHERE name = ?`, c.Name).Scan(&n); err != nil {
			return nil, err
		}
		if n > 0 {
			return nil, fmt.Errorf("customer %q: %w: it exists already", c.Name, store.ErrConflict)
		}
		now := db.now().UTC()
		keys, _ := json.Marshal(nonNil(c.Keys))
		if _, err := tx.ExecContext(ctx, `INSERT INTO customers (name, display_name, emails, created, age_recipient, keys, time_zone) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			c.Name, c.DisplayName, string(emails), fmtTime(now), c.AgeRecipient, string(keys), c.TimeZone); err != nil {
			return nil, err
		}
		return []audit.Event{{Time: now, Code: audit.CustomerAdd, Actor: actor, Details: map[string]string{"customer": c.Name,
			"keys": strings.Join(store.Fingerprints(c.Keys), ",")}}}, nil
	})
}

// SetAgeRecipient sets (or, with "", removes) the age recipient the
// recordings of a customer's hosts are sealed to, with its record.
func (db *DB) SetAgeRecipient(ctx context.Context, customer, recipient, actor string) error {
	c := store.Customer{Name: customer, AgeRecipient: recipient}
	if err := c.Check(); err != nil {
		return fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	return db.change(ctx, func(tx *sql.Tx) ([]audit.Event, error) {
		res, err := tx.ExecContext(ctx, `UPDATE customers SET age_recipient = ? WHERE name = ?`, recipient, customer)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil, fmt.Errorf("customer %q: %w", customer, store.ErrNotFound)
		}
		d := map[string]string{"customer": customer, "age_recipient": cmp.Or(recipient, "(removed)")}
		return []audit.Event{{Time: db.now().UTC(), Code: audit.CustomerAgeRecipient, Customer: customer, Actor: actor, Details: d}}, nil
	})
}

// HostAgeRecipient returns the age recipient of host's customer, "" if it
// has none (or the host no customer).
func (db *DB) HostAgeRecipient(host string) (string, error) {
	var r string
	err := db.sql.QueryRow(`SELECT COALESCE(c.age_recipient, '') FROM hosts h LEFT JOIN customers c ON c.name = h.customer WHERE h.name = ?`, host).Scan(&r)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return r, err
}

// Customers lists the customers by name.
func (db *DB) Customers(ctx context.Context) ([]store.Customer, error) {
	return db.customers(ctx, db.sql, "")
}

// Customer returns one customer.
func (db *DB) Customer(ctx context.Context, name string) (*store.Customer, error) {
	cs, err := db.customers(ctx, db.sql, name)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("customer %q: %w", name, store.ErrNotFound)
	}
	return &cs[0], nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// customers lists the customers (only name's, if set).
func (db *DB) customers(ctx context.Context, q querier, name string) ([]store.Customer, error) {
	rows, err := q.QueryContext(ctx, `SELECT name, display_name, emails, age_recipient, keys, time_zone FROM customers
		WHERE name = ? OR ? = '' ORDER BY name`, name, name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Customer
	for rows.Next() {
		var c store.Customer
		var emails, keys string
		if err := rows.Scan(&c.Name, &c.DisplayName, &emails, &c.AgeRecipient, &keys, &c.TimeZone); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(emails), &c.Emails); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(keys), &c.Keys); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (db *DB) customerSet(ctx context.Context) (map[string]bool, error) {
	cs, err := db.Customers(ctx)
	if err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for _, c := range cs {
		m[c.Name] = true
	}
	return m, nil
}
