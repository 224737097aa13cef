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
	"strings"

	"golang.org/x/crypto/ssh"
)

// Modes a host can be in.
const (
	// ModeUnlock: every netboot lands at the unlock prompt.
	ModeUnlock = "unlock"
	// ModeDisk: iPXE exits at once and the firmware boots the local disk.
	ModeDisk = "disk"
)

// Host is one entry of the inventory: everything that decides the fate of a
// netboot from this machine.
type Host struct {
	Name    string       `json:"name"`
	MAC     string       `json:"mac"`
	IP      netip.Addr   `json:"ip"`
	Prefix  int          `json:"prefix"` // netmask length of the reservation
	Gateway netip.Addr   `json:"gateway,omitzero"`
	DNS     []netip.Addr `json:"dns,omitempty"`
	Mode    string       `json:"mode"`
	// CircuitID identifies the host by the switch port its relay reports
	// (DHCP option 82, circuit-id), for hosts whose MAC is not known yet
	// (a replaced NIC, a new machine in a known slot).
	CircuitID      string   `json:"circuit_id,omitempty"`
	AuthorizedKeys []string `json:"authorized_keys"`
}

// Inventory answers the one question that decides a host's fate.
type Inventory interface {
	// Lookup returns the host with this MAC, or false: stay silent.
	Lookup(mac net.HardwareAddr) (*Host, bool)
	// LookupIP finds the host holding this reservation.
	LookupIP(ip netip.Addr) (*Host, bool)
	// LookupCircuit finds the host behind a relay's circuit-id.
	LookupCircuit(id string) (*Host, bool)
}

// FileInventory is an Inventory read from a JSON file at start.
type FileInventory struct {
	byMAC     map[string]*Host
	byIP      map[netip.Addr]*Host
	byCircuit map[string]*Host
}

// LoadInventory reads and checks an inventory file.
func LoadInventory(path string) (*FileInventory, error) {
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
func ParseInventory(data []byte) (*FileInventory, error) {
	var doc struct {
		Hosts []*Host `json:"hosts"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("not valid inventory JSON: %w", err)
	}
	inv := &FileInventory{byMAC: map[string]*Host{}, byIP: map[netip.Addr]*Host{}, byCircuit: map[string]*Host{}}
	var errs []error
	for i, h := range doc.Hosts {
		if h == nil {
			errs = append(errs, fmt.Errorf("host #%d: empty entry", i+1))
			continue
		}
		if err := h.check(); err != nil {
			errs = append(errs, fmt.Errorf("host #%d (%q): %w", i+1, h.Name, err))
			continue
		}
		if o, dup := inv.byMAC[h.MAC]; dup {
			errs = append(errs, fmt.Errorf("host %q: MAC %s already belongs to %q", h.Name, h.MAC, o.Name))
			continue
		}
		if o, dup := inv.byIP[h.IP]; dup {
			errs = append(errs, fmt.Errorf("host %q: IP %s already reserved for %q", h.Name, h.IP, o.Name))
			continue
		}
		if o, dup := inv.byCircuit[h.CircuitID]; dup && h.CircuitID != "" {
			errs = append(errs, fmt.Errorf("host %q: circuit_id %q already belongs to %q", h.Name, h.CircuitID, o.Name))
			continue
		}
		inv.byMAC[h.MAC] = h
		inv.byIP[h.IP] = h
		if h.CircuitID != "" {
			inv.byCircuit[h.CircuitID] = h
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return inv, nil
}

// NameRE is what a host name may look like: a DNS name. Names end up in
// iPXE scripts, logs and notices, so nothing else gets in.
var NameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$`)

func (h *Host) check() error {
	if !NameRE.MatchString(h.Name) || len(h.Name) > 253 {
		return fmt.Errorf("name %q: use a DNS-style name (letters, digits, '-', '.')", h.Name)
	}
	mac, err := net.ParseMAC(h.MAC)
	if err != nil || len(mac) != 6 {
		return fmt.Errorf("mac %q is not an Ethernet MAC like 52:54:00:12:34:56", h.MAC)
	}
	h.MAC = mac.String() // canonical lower-case form for lookups
	if !h.IP.Is4() {
		return fmt.Errorf("ip %q: an IPv4 reservation is required", h.IP)
	}
	if h.Prefix == 0 {
		h.Prefix = 24
	}
	if h.Prefix < 1 || h.Prefix > 30 {
		return fmt.Errorf("prefix %d: want 1..30", h.Prefix)
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
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
			return fmt.Errorf("authorized_keys[%d]: %v (want one line like \"ssh-ed25519 AAAA... comment\")", j, err)
		}
		h.AuthorizedKeys[j] = strings.TrimSpace(k)
	}
	return nil
}

// Lookup implements Inventory.
func (inv *FileInventory) Lookup(mac net.HardwareAddr) (*Host, bool) {
	h, ok := inv.byMAC[mac.String()]
	return h, ok
}

// LookupIP implements Inventory.
func (inv *FileInventory) LookupIP(ip netip.Addr) (*Host, bool) {
	h, ok := inv.byIP[ip.Unmap()]
	return h, ok
}

// LookupCircuit implements Inventory.
func (inv *FileInventory) LookupCircuit(id string) (*Host, bool) {
	if id == "" {
		return nil, false
	}
	h, ok := inv.byCircuit[id]
	return h, ok
}
