package api

import (
	"encoding/json"
	"net/netip"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/store/kind"
)

// The API's own types: what goes over the wire between lifeboatd and its
// clients. They are not the store's: the server converts (apiserver), so
// that the store can change without changing what clients see, and so
// that a client links no server code.

// Host is one inventory entry, as in the inventory file.
type Host struct {
	Name           string       `json:"name"`
	MAC            string       `json:"mac"` // the boot NIC
	OtherMACs      []string     `json:"other_macs,omitempty"`
	Customer       string       `json:"customer,omitempty"`
	IP             netip.Addr   `json:"ip"`
	Prefix         int          `json:"prefix"`
	Gateway        netip.Addr   `json:"gateway,omitzero"`
	DNS            []netip.Addr `json:"dns,omitempty"`
	Mode           kind.Mode    `json:"mode"`
	CircuitID      string       `json:"circuit_id,omitempty"` // DHCP option 82 circuit-id
	VLAN           int          `json:"vlan,omitempty"`       // 802.1Q tag of the boot network from iPXE on (0: untagged)
	AuthorizedKeys []string     `json:"authorized_keys"`
}

// MACs returns every MAC of the host, the boot NIC first.
func (h *Host) MACs() []string { return append([]string{h.MAC}, h.OtherMACs...) }

// Customer is a provider's customer.
type Customer struct {
	Name         string   `json:"name"`
	DisplayName  string   `json:"display_name,omitempty"`
	Emails       []string `json:"emails,omitempty"`
	AgeRecipient string   `json:"age_recipient,omitempty"` // recordings are sealed to it
	Keys         []string `json:"keys,omitempty"`          // the customer's SSH keys: approvals are signatures by one of them
	TimeZone     string   `json:"time_zone,omitempty"`     // IANA, for times in notices and on the approval page
}

// CustomerUpdate is the body of PATCH /v1/customers/{name}: the fields
// set are replaced.
type CustomerUpdate struct {
	DisplayName *string   `json:"display_name,omitempty"`
	Emails      *[]string `json:"emails,omitempty"`
	Keys        *[]string `json:"keys,omitempty"`
	TimeZone    *string   `json:"time_zone,omitempty"`
}

// Staff is a staff member a customer's hosts may be granted to.
type Staff struct {
	Customer string    `json:"customer"`
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	Keys     []string  `json:"keys"` // SHA256 fingerprints
	Added    time.Time `json:"added,omitzero"`
}

// Proposal is an operator's proposed change to a customer's settings.
type Proposal struct {
	ID         string    `json:"id"`
	Customer   string    `json:"customer"`
	Kind       string    `json:"kind"`
	Target     string    `json:"target,omitempty"`
	Body       string    `json:"body"`
	Summary    string    `json:"summary"`
	ProposedBy string    `json:"proposed_by"`
	Created    time.Time `json:"created"`
	State      string    `json:"state"`
	DecidedBy  string    `json:"decided_by,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// ChangeResult counts what an inventory change did.
type ChangeResult struct {
	Added     int `json:"added"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	Removed   int `json:"removed"`
}

// Boot is one netboot with the stages it reached.
type Boot struct {
	ID       string        `json:"id"`
	Host     string        `json:"host"`
	MAC      string        `json:"mac"`
	Firmware kind.Firmware `json:"firmware"`
	Started  time.Time     `json:"started"`
	Stage    string        `json:"stage"` // the furthest stage reached
	Stages   []Stage       `json:"stages"`
	// Warnings are what the boot's hardware report says to act on.
	Warnings []string `json:"warnings,omitempty"`
	// Trust is how the boot started (Secure Boot, lockdown, whether the
	// image was verified), as its check-in said.
	Trust string `json:"trust,omitempty"`
}

// Hardware is a host's newest hardware report, from the boot that sent
// it. Report is the agent's report (agentapi.Hardware): every string in
// it is the machine's own.
type Hardware struct {
	Host     string          `json:"host"`
	Boot     string          `json:"boot"`
	Received time.Time       `json:"received"`
	Report   json.RawMessage `json:"report"`
	Warnings []string        `json:"warnings"`
}

// Stage says when a boot reached a stage, and how long after its start.
type Stage struct {
	Stage string        `json:"stage"`
	At    time.Time     `json:"at"`
	After time.Duration `json:"after_ns"`
}

// Webhook is a customer's notice endpoint (its secret is never shown
// again after it is made).
type Webhook struct {
	ID       string    `json:"id"`
	Customer string    `json:"customer"`
	URL      string    `json:"url"`
	Created  time.Time `json:"created"`
}

// Notice is one entry of the outbox: a record told to one channel.
type Notice struct {
	ID       string      `json:"id"`
	Channel  string      `json:"channel"` // webhook, email
	Target   string      `json:"target"`  // webhook id, or e-mail address
	Customer string      `json:"customer"`
	Created  time.Time   `json:"created"`
	Attempts int         `json:"attempts"`
	State    string      `json:"state"` // pending, delivered, failed
	Error    string      `json:"error,omitempty"`
	Event    audit.Event `json:"event"`
}

// GrantRequest is support's request for a rescue grant.
type GrantRequest struct {
	Host     string        `json:"host"`
	Scope    kind.Scope    `json:"scope"`
	Ticket   string        `json:"ticket"`
	Reason   string        `json:"reason"`
	TTL      time.Duration `json:"ttl_ns"`
	StaffKey string        `json:"staff_key"` // authorized_keys form
}

// GrantFilter selects grants in a listing; zero values select all.
type GrantFilter struct {
	Host, Customer string
	State          kind.GrantState
	Limit          int
}

// Grant is a rescue grant.
type Grant struct {
	ID        string          `json:"id"`
	Host      string          `json:"host"`
	Customer  string          `json:"customer"`
	Staff     string          `json:"staff"`
	StaffKey  string          `json:"staff_key"`
	Ticket    string          `json:"ticket"`
	Reason    string          `json:"reason"`
	Scope     kind.Scope      `json:"scope"`
	Policy    kind.Policy     `json:"policy"`
	State     kind.GrantState `json:"state"`
	From      time.Time       `json:"from"`
	Until     time.Time       `json:"until"`
	Created   time.Time       `json:"created"`
	Decided   time.Time       `json:"decided,omitzero"`
	DecidedBy string          `json:"decided_by,omitempty"`
	// ConsoleCode is a console grant's one-time code, only in the answer
	// to its request.
	ConsoleCode string `json:"console_code,omitempty"`
}

// Policy is a customer's choice for one scope.
type Policy struct {
	Scope   kind.Scope  `json:"scope"`
	Policy  kind.Policy `json:"policy"`
	Default bool        `json:"default"` // not chosen: the scope's default
}

// Recording is one rescue shell's recording.
type Recording struct {
	ID       string    `json:"id"`
	Host     string    `json:"host"`
	Boot     string    `json:"boot"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
	Sealed   bool      `json:"sealed,omitempty"` // encrypted to the customer's age key
	Owner    string    `json:"owner,omitempty"`  // the customer whose host it was when it was made
}
