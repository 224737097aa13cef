package store

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// ErrNotFound is returned for a name or id the store does not hold.
var ErrNotFound = errors.New("not found")

// ErrInvalid is returned for an entry that does not pass its checks.
var ErrInvalid = errors.New("invalid")

// ErrForbidden is returned for a change the caller may not make: one that
// needs the customer, or someone the customer has not listed.
var ErrForbidden = errors.New("forbidden")

// ErrConsent is an approval whose signature does not prove the customer's
// consent to this grant.
var ErrConsent = errors.New("the signature does not approve this grant")

// ErrConflict is returned when a name, MAC, IP or circuit-id is taken.
var ErrConflict = errors.New("conflict")

// Change says what an operator does to the inventory: each host in Put is
// added or, if its name exists, replaced; each name in Remove is removed.
// A Change is applied whole or not at all.
type Change struct {
	Put    []*Host
	Remove []string
	// Create refuses to replace an existing host (host add).
	Create bool
	// Replace refuses to add a new host (host set).
	Replace bool
}

// ChangeResult counts what a Change did.
type ChangeResult struct {
	Added     int `json:"added"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	Removed   int `json:"removed"`
}

// Customer is a provider's customer: the owner of hosts, and the recipient
// of their notices.
type Customer struct {
	Name        string   `json:"name"`
	DisplayName string   `json:"display_name,omitempty"`
	Emails      []string `json:"emails,omitempty"`
	// AgeRecipient (age1...): the rescue shells' recordings of the
	// customer's hosts are sealed to it; only their key reads them.
	AgeRecipient string `json:"age_recipient,omitempty"`
	// Keys are the customer's own SSH public keys (authorized_keys lines):
	// an approval counts only when one of them signs its exact text.
	Keys []string `json:"keys,omitempty"`
	// TimeZone (IANA) is where notices and the approval page show times.
	TimeZone string `json:"time_zone,omitempty"`
}

// Check validates a customer entry.
func (c *Customer) Check() error {
	if !ValidName(c.Name) {
		return fmt.Errorf("customer name %q: use a DNS-style name (letters, digits, '-', '.')", c.Name)
	}
	if len(c.DisplayName) > 200 || strings.ContainsFunc(c.DisplayName, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("display name: at most 200 printable characters")
	}
	if c.AgeRecipient != "" {
		if _, err := age.ParseX25519Recipient(c.AgeRecipient); err != nil {
			return fmt.Errorf("age recipient: want an age public key (age1..., from age-keygen): %v", err)
		}
	}
	if _, err := ParseKeys(c.Keys); err != nil {
		return fmt.Errorf("customer keys: %w", err)
	}
	if len(c.Keys) > 20 {
		return errors.New("customer keys: at most 20")
	}
	if err := CheckTimeZone(c.TimeZone); err != nil {
		return err
	}
	for _, e := range c.Emails {
		if at := strings.IndexByte(e, '@'); at < 1 || at == len(e)-1 || len(e) > 254 ||
			strings.ContainsFunc(e, func(r rune) bool { return r <= 0x20 || r == 0x7f || r == '<' || r == '>' || r == ',' }) {
			return fmt.Errorf("e-mail %q: want one address like ops@example.com", e)
		}
	}
	return nil
}

// EventFilter selects events; zero values select everything.
type EventFilter struct {
	After int64  // only events with a larger sequence number
	Host  string // only this host's
	Boot  string // only this boot's
	Limit int    // at most this many (default 1000)
}

// BootRecord is one netboot as the store keeps it.
type BootRecord struct {
	ID       string       `json:"id"`
	Host     string       `json:"host"`
	MAC      string       `json:"mac"`
	Firmware Firmware     `json:"firmware"`
	Started  time.Time    `json:"started"`
	Stage    string       `json:"stage"` // the furthest stage reached
	Stages   []StageTimes `json:"stages"`
	// Warnings are what the boot's hardware report says the provider
	// must act on (a device without a driver, a failing disk).
	Warnings []string `json:"warnings,omitempty"`
	// Trust is how the boot started, as its check-in's record says it
	// (Secure Boot, lockdown, whether the image was verified).
	Trust string `json:"trust,omitempty"`
}

// Hardware is a boot's hardware report as stored: the agent's JSON
// (agentapi.Hardware), checked and bounded, never rewritten.
type Hardware struct {
	Host     string    `json:"host"`
	Boot     string    `json:"boot"`
	Received time.Time `json:"received"`
	Report   []byte    `json:"report"`
	Warnings []string  `json:"warnings"`
}

// StageTimes says when a boot reached a stage, and how long after its start.
type StageTimes struct {
	Stage string        `json:"stage"`
	At    time.Time     `json:"at"`
	After time.Duration `json:"after_ns"`
}

// BootFilter selects boots; zero values select everything.
type BootFilter struct {
	Host  string
	Since time.Time
	Limit int // default 100
}

// NewSecret returns 256 random bits, URL-safe.
func NewSecret() string {
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails on Linux
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// Token errors; the check-in handler branches on them.
var (
	ErrTokenUnknown = errors.New("unknown boot token")
	ErrTokenExpired = errors.New("boot token expired")
	ErrTokenUsed    = errors.New("boot token already used")
	ErrTokenBinding = errors.New("boot token belongs to another host or boot")
)

// Binding is what a boot token is bound to.
type Binding struct {
	MAC, Host, Boot string
}

// Operator is a person allowed to use the operator API, or, with Customer
// set, a customer's token that reads that customer's audit records and recordings only.
type Operator struct {
	Name     string    `json:"name"`
	Customer string    `json:"customer,omitempty"`
	Created  time.Time `json:"created"`
}

// Webhook is a customer's notice endpoint. Sealed is its signing secret,
// sealed with the server's secret key; it never leaves the server.
type Webhook struct {
	ID       string    `json:"id"`
	Customer string    `json:"customer"`
	URL      string    `json:"url"`
	Created  time.Time `json:"created"`
	Sealed   string    `json:"-"`
}

// Notice channels.
const (
	ChannelWebhook = "webhook"
	ChannelEmail   = "email"
)

// Notice is one row of the outbox: a record to tell one channel about.
type Notice struct {
	ID       string      `json:"id"` // the same on every attempt: webhook-id, Message-ID
	Channel  string      `json:"channel"`
	Target   string      `json:"target"` // webhook id, or e-mail address
	Customer string      `json:"customer"`
	Created  time.Time   `json:"created"`
	Attempts int         `json:"attempts"`
	State    string      `json:"state"` // pending, delivered, failed
	Error    string      `json:"error,omitempty"`
	Event    audit.Event `json:"event"`
	Webhook  *Webhook    `json:"-"` // for the webhook channel
}

// ErrHostGone is a check-in for a host no longer in the inventory.
var ErrHostGone = errors.New("host no longer in the inventory")

// Check-in refusals that say someone else may be posing as the host.
var (
	// ErrAgentAlive: another boot's agent of the host (or another host
	// key for this boot) is checked in and alive; one host key per host
	// is certified at a time.
	ErrAgentAlive = errors.New("another agent of this host is checked in and alive")
	// ErrWrongPeer: the check-in came from another address than the
	// host's reservation.
	ErrWrongPeer = errors.New("check-in from an address other than the host's reserved one")
	// ErrTokenIssued: the boot's token was issued already; a new boot
	// begins with a DHCP exchange.
	ErrTokenIssued = errors.New("this boot's token was issued already")
	// ErrBootEnded: the boot handed over to its OS (or a newer boot of
	// the host checked in): its report token may say no more.
	ErrBootEnded = errors.New("this boot has ended")
)

// AgentAlive is how long a checked-in agent counts as alive after its last
// check-in or heartbeat (agents send one every agentapi.HeartbeatEvery):
// a host powered off in lifeboat may be certified again this long after.
const AgentAlive = 90 * time.Second

// CheckinRequest is an agent's check-in as the store takes it: in one
// transaction, the boot token is redeemed, the check-in recorded, a report
// token issued and the host's rescue grant, if any, activated; all or
// nothing.
type CheckinRequest struct {
	Token   string // the boot token; looked up by its hash
	MAC     string // what the agent says it is: must match the token
	Boot    string
	HostKey string // fingerprint of the boot's SSH host key (SHA256:...)
	IP      string
	Peer    string // the caller's address, as the server saw it
	// Trust is what the agent saw of how its boot started (checked
	// words, agentapi.BootTrust), for the check-in's record.
	Trust map[string]string
	// Certify signs the boot's host key for the host the token is for,
	// inside the transaction (nothing is written if it fails), and
	// returns the certificate and the details its record carries.
	Certify   func(h *Host, b Binding) (cert string, details map[string]string, err error)
	ReportTTL time.Duration
}

// Checkin is what a check-in was answered. A retry by the same agent (the
// same token and host key, the first answer lost on the wire) gets the
// same answer, with a new report token (the earlier ones stay valid).
type Checkin struct {
	Binding     Binding
	Host        *Host
	Mode        Mode
	HostCert    string
	ReportToken string
	Grant       *Grant // the rescue grant this boot activated, if any
	Retry       bool
	// Live is the agent that is checked in and alive, on ErrAgentAlive:
	// its boot and host key, for the alarm.
	Live *LiveAgent
}

// LiveAgent is the checked-in agent of a host.
type LiveAgent struct {
	Boot, HostKey string
	Seen          time.Time
}
