package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/lifeboat-boot/lifeboat/pxe/keys/authkeys"

	"github.com/lifeboat-boot/lifeboat/pxe/store/kind"
)

// Mode is what a host's netboots are for (see kind.Mode).
type Mode = kind.Mode

// Modes a host can be in.
const (
	ModeUnlock = kind.ModeUnlock
	ModeDisk   = kind.ModeDisk
	ModeRescue = kind.ModeRescue // never set on a host: a live grant's boot
)

// Host is one entry of the inventory: everything that decides the fate of a
// netboot from this machine.
type Host struct {
	Name string `json:"name"`
	// MAC is the host's boot NIC: its boots are keyed by it and its iPXE
	// script URL names it. OtherMACs are further NICs it may PXE-boot from.
	MAC       string       `json:"mac"`
	OtherMACs []string     `json:"other_macs,omitempty"`
	Customer  string       `json:"customer,omitempty"`
	IP        netip.Addr   `json:"ip"`
	Prefix    int          `json:"prefix"` // netmask length of the reservation
	Gateway   netip.Addr   `json:"gateway,omitzero"`
	DNS       []netip.Addr `json:"dns,omitempty"`
	Mode      Mode         `json:"mode"`
	// CircuitID identifies the host by the switch port its relay reports
	// (DHCP option 82, circuit-id), for hosts whose MAC is not known yet
	// (a replaced NIC, a new machine in a known slot).
	CircuitID string `json:"circuit_id,omitempty"`
	// VLAN is the 802.1Q tag of the host's boot network (0: untagged).
	// The firmware's PXE stage runs untagged, on an address of lifeboatd's
	// first-stage pool; iPXE and then the RAM image tag their frames, and
	// IP is the host's address on that VLAN.
	VLAN           int      `json:"vlan,omitempty"`
	AuthorizedKeys []string `json:"authorized_keys"`
}

// MACs returns every MAC of the host, the boot NIC first.
func (h *Host) MACs() []string { return append([]string{h.MAC}, h.OtherMACs...) }

// Inventory answers the one question that decides a host's fate.
type Inventory interface {
	// Lookup returns the host with this MAC, or false: stay silent.
	Lookup(mac net.HardwareAddr) (*Host, bool)
	// LookupIP finds the host holding this reservation.
	LookupIP(ip netip.Addr) (*Host, bool)
	// LookupCircuit finds the host behind a relay's circuit-id.
	LookupCircuit(id string) (*Host, bool)
}

// Index is an in-memory Inventory: the parsed import file, and the DB's
// snapshot that DHCP reads without a query.
type Index struct {
	hosts     []*Host // by name
	byMAC     map[string]*Host
	byIP      map[netip.Addr]*Host
	byCircuit map[string]*Host
}

// LoadInventory reads and checks an inventory file (the import format).
func LoadInventory(path string) (*Index, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	inv, err := ParseInventory(data)
	if err != nil {
		return nil, fmt.Errorf("inventory %s: %w", path, err)
	}
	return inv, nil
}

// ParseInventory parses the JSON form: {"hosts": [ ... ]}. Every problem
// found is reported, not just the first, so an operator fixes the file once.
func ParseInventory(data []byte) (*Index, error) {
	var doc struct {
		Hosts []*Host `json:"hosts"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("not valid inventory JSON: %w", err)
	}
	return NewIndex(doc.Hosts)
}

// NewIndex checks hosts, each on its own and against each other (names,
// MACs, IPs and circuit-ids are unique), and indexes them.
func NewIndex(hosts []*Host) (*Index, error) {
	inv := &Index{byMAC: map[string]*Host{}, byIP: map[netip.Addr]*Host{}, byCircuit: map[string]*Host{}}
	byName := map[string]bool{}
	var errs []error
	for i, h := range hosts {
		if h == nil {
			errs = append(errs, fmt.Errorf("host #%d: empty entry", i+1))
			continue
		}
		if err := h.Check(); err != nil {
			errs = append(errs, fmt.Errorf("host #%d (%q): %w", i+1, h.Name, err))
			continue
		}
		if err := inv.conflict(h, byName[h.Name]); err != nil {
			errs = append(errs, err)
			continue
		}
		byName[h.Name] = true
		inv.add(h)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortFunc(inv.hosts, func(a, b *Host) int { return strings.Compare(a.Name, b.Name) })
	return inv, nil
}

// conflict says which of h's unique keys another host holds already.
func (inv *Index) conflict(h *Host, nameTaken bool) error {
	if nameTaken {
		return fmt.Errorf("host %q: %w: the name is taken", h.Name, ErrConflict)
	}
	for _, m := range h.MACs() {
		if o, dup := inv.byMAC[m]; dup && o.Name != h.Name {
			return fmt.Errorf("host %q: %w: MAC %s already belongs to %q", h.Name, ErrConflict, m, o.Name)
		}
	}
	if o, dup := inv.byIP[h.IP]; dup && o.Name != h.Name {
		return fmt.Errorf("host %q: %w: IP %s already reserved for %q", h.Name, ErrConflict, h.IP, o.Name)
	}
	if o, dup := inv.byCircuit[h.CircuitID]; dup && h.CircuitID != "" && o.Name != h.Name {
		return fmt.Errorf("host %q: %w: circuit_id %q already belongs to %q", h.Name, ErrConflict, h.CircuitID, o.Name)
	}
	return nil
}

func (inv *Index) add(h *Host) {
	inv.hosts = append(inv.hosts, h)
	for _, m := range h.MACs() {
		inv.byMAC[m] = h
	}
	inv.byIP[h.IP] = h
	if h.CircuitID != "" {
		inv.byCircuit[h.CircuitID] = h
	}
}

// Hosts returns the hosts sorted by name.
func (inv *Index) Hosts() []*Host { return inv.hosts }

// ByName returns the host called name.
func (inv *Index) ByName(name string) (*Host, bool) {
	i, ok := slices.BinarySearchFunc(inv.hosts, name, func(h *Host, n string) int { return strings.Compare(h.Name, n) })
	if !ok {
		return nil, false
	}
	return inv.hosts[i], true
}

// NameRE is what a host name may look like: a DNS name. Names end up in
// iPXE scripts, logs and notices, so nothing else gets in.
var NameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$`)

// ValidName says whether s may name a host or a customer.
func ValidName(s string) bool { return NameRE.MatchString(s) && len(s) <= 253 }

func canonicalMAC(s string) (string, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return "", fmt.Errorf("mac %q is not an Ethernet MAC like 52:54:00:12:34:56", s)
	}
	return mac.String(), nil // canonical lower-case form for lookups
}

// Check validates a host entry and puts it in canonical form (lower-case
// MACs, trimmed keys, defaults filled in). Everything in it ends up in
// iPXE scripts, DHCP replies, logs and notices, so it is checked strictly.
func (h *Host) Check() error {
	if !ValidName(h.Name) {
		return fmt.Errorf("name %q: use a DNS-style name (letters, digits, '-', '.')", h.Name)
	}
	var err error
	if h.MAC, err = canonicalMAC(h.MAC); err != nil {
		return err
	}
	seen := map[string]bool{h.MAC: true}
	for i, m := range h.OtherMACs {
		if h.OtherMACs[i], err = canonicalMAC(m); err != nil {
			return fmt.Errorf("other_macs: %w", err)
		}
		if seen[h.OtherMACs[i]] {
			return fmt.Errorf("other_macs: %s is listed twice", h.OtherMACs[i])
		}
		seen[h.OtherMACs[i]] = true
	}
	slices.Sort(h.OtherMACs) // one order whatever the input's, as the store reads them back

	if h.Customer != "" && !ValidName(h.Customer) {
		return fmt.Errorf("customer %q: use a DNS-style name (letters, digits, '-', '.')", h.Customer)
	}
	if len(h.CircuitID) > 255 || strings.ContainsFunc(h.CircuitID, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("circuit_id %q: at most 255 printable characters", h.CircuitID)
	}
	if !h.IP.Is4() {
		return fmt.Errorf("ip %q: an IPv4 reservation is required", h.IP)
	}
	if h.Prefix == 0 {
		h.Prefix = 24
	}
	if h.Prefix < 1 || h.Prefix > 30 {
		return fmt.Errorf("prefix %d: want 1..30", h.Prefix)
	}
	if h.VLAN < 0 || h.VLAN > 4094 {
		return fmt.Errorf("vlan %d: want a tag of 1..4094 (0 or none: untagged)", h.VLAN)
	}
	switch h.Mode {
	case "":
		h.Mode = ModeUnlock
	case ModeUnlock, ModeDisk:
	default:
		return fmt.Errorf("mode %q: want %q or %q", h.Mode, ModeUnlock, ModeDisk)
	}
	if len(h.AuthorizedKeys) == 0 {
		return errors.New("authorized_keys is empty: nobody could log in to unlock this host")
	}
	for j, k := range h.AuthorizedKeys {
		if _, err := authkeys.Parse(k); err != nil {
			return fmt.Errorf("authorized_keys[%d]: %v (want one line like \"ssh-ed25519 AAAA... comment\", optionally from=\"10.1.2.0/24\")", j, err)
		}
		h.AuthorizedKeys[j] = strings.TrimSpace(k)
	}
	return nil
}

// Lookup implements Inventory.
func (inv *Index) Lookup(mac net.HardwareAddr) (*Host, bool) {
	h, ok := inv.byMAC[mac.String()]
	return h, ok
}

// LookupIP implements Inventory.
func (inv *Index) LookupIP(ip netip.Addr) (*Host, bool) {
	h, ok := inv.byIP[ip.Unmap()]
	return h, ok
}

// LookupCircuit implements Inventory.
func (inv *Index) LookupCircuit(id string) (*Host, bool) {
	if id == "" {
		return nil, false
	}
	h, ok := inv.byCircuit[id]
	return h, ok
}

// Rescue returns h as it boots while grant g is live: in rescue mode, into
// lifeboat's RAM image whatever its own mode. h itself is not changed: the
// inventory's entries are shared.
func Rescue(h *Host) *Host {
	c := *h
	c.Mode = ModeRescue
	return &c
}
