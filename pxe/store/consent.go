package store

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// ConsentNamespace is the ssh-keygen -Y sign namespace (-n) of a customer's
// approval of a grant: a signature made for anything else does not count.
const ConsentNamespace = "lifeboat-grant"

// ConsentText is the exact text a customer signs to approve g: everything
// the approval lets happen, and nothing that changes when it is approved
// (the window is a duration from the approval). It is kept in the
// approval's record with the signature, so anyone can check it later with
// ssh-keygen -Y verify and the customer's public key.
func ConsentText(g *Grant) []byte {
	fp := "-"
	if pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(g.StaffKey)); err == nil {
		fp = ssh.FingerprintSHA256(pk)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "lifeboat: I approve rescue grant %s\n", g.ID)
	fmt.Fprintf(&b, "host: %s\n", g.Host)
	fmt.Fprintf(&b, "customer: %s\n", g.Customer)
	fmt.Fprintf(&b, "staff: %s\n", g.Staff)
	fmt.Fprintf(&b, "staff key: %s\n", fp)
	fmt.Fprintf(&b, "scope: %s\n", g.Scope)
	fmt.Fprintf(&b, "ticket: %s\n", strconv.Quote(g.Ticket))
	fmt.Fprintf(&b, "reason: %s\n", strconv.Quote(g.Reason))
	fmt.Fprintf(&b, "asked: %s\n", g.Created.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "for: %d minutes from my approval\n", int(g.Until.Sub(g.From).Round(time.Minute)/time.Minute))
	return []byte(b.String())
}

// TokenNamespace is the ssh-keygen -Y sign namespace of a customer's
// request for an API token of their own.
const TokenNamespace = "lifeboat-token"

// TokenText is what a customer signs to be given an API token: the
// server's one-time nonce, so that a signature seen once is worth nothing.
func TokenText(customer, nonce string) []byte {
	return fmt.Appendf(nil, "lifeboat: issue an API token for customer %s\nnonce: %s\n", customer, nonce)
}

// ParseKeys parses authorized_keys lines (without options: a consent or
// staff key is a bare key).
func ParseKeys(lines []string) ([]ssh.PublicKey, error) {
	var out []ssh.PublicKey
	for i, l := range lines {
		pk, _, opts, rest, err := ssh.ParseAuthorizedKey([]byte(l))
		if err != nil {
			return nil, fmt.Errorf("key %d: want an SSH public key line (ssh-ed25519 AAAA... comment)", i+1)
		}
		if len(opts) > 0 || len(strings.TrimSpace(string(rest))) > 0 {
			return nil, fmt.Errorf("key %d: one bare public key per entry, without authorized_keys options", i+1)
		}
		out = append(out, pk)
	}
	return out, nil
}

// Fingerprints returns the SHA256 fingerprints of authorized_keys lines;
// lines that do not parse are left out.
func Fingerprints(lines []string) []string {
	var out []string
	for _, l := range lines {
		if pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(l)); err == nil {
			out = append(out, ssh.FingerprintSHA256(pk))
		}
	}
	return out
}

// Staff is a member of the provider's staff whom a customer's hosts may be
// granted to: the list customers are promised, with every change told.
type Staff struct {
	Customer string    `json:"customer"`
	Name     string    `json:"name"` // the operator's name
	Role     string    `json:"role"`
	Keys     []string  `json:"keys"` // SHA256 fingerprints of the SSH keys they rescue with
	Added    time.Time `json:"added"`
}

// Check validates a staff entry.
func (s *Staff) Check() error {
	var errs []error
	if !ValidName(s.Name) {
		errs = append(errs, fmt.Errorf("staff name %q: the operator's name", s.Name))
	}
	if s.Role == "" || len(s.Role) > 100 || !printable(s.Role) {
		errs = append(errs, errors.New("role: say what they do (at most 100 printable characters), e.g. \"support, 2nd line\""))
	}
	if len(s.Keys) == 0 {
		errs = append(errs, errors.New("keys: at least one SSH key fingerprint (SHA256:...) they rescue with"))
	}
	for _, k := range s.Keys {
		if !strings.HasPrefix(k, "SHA256:") || len(k) != 50 || !printable(k) {
			errs = append(errs, fmt.Errorf("key %q: want a fingerprint as ssh-keygen -lf prints it (SHA256: and 43 characters)", k))
		}
	}
	return errors.Join(errs...)
}

// May reports whether staff member name, with the SSH key staffKey (an
// authorized_keys line), is on list.
func May(list []Staff, name, staffKey string) bool {
	fps := Fingerprints([]string{staffKey})
	if len(fps) != 1 {
		return false
	}
	for _, s := range list {
		if s.Name == name && slices.Contains(s.Keys, fps[0]) {
			return true
		}
	}
	return false
}

// Proposal is a change to a customer's settings that an operator asked
// for: it takes effect only when the customer accepts it with their own
// token.
type Proposal struct {
	ID         string    `json:"id"`
	Customer   string    `json:"customer"`
	Kind       string    `json:"kind"`    // what it changes: webhook.add, policy, ...
	Target     string    `json:"target"`  // e.g. the scope of a policy, the id of a webhook
	Body       string    `json:"body"`    // the change, as the API call would carry it (JSON)
	Summary    string    `json:"summary"` // in words, for the notice
	ProposedBy string    `json:"proposed_by"`
	Created    time.Time `json:"created"`
	State      string    `json:"state"` // proposed, accepted, declined, failed
	DecidedBy  string    `json:"decided_by,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// Proposal states.
const (
	ProposalOpen     = "proposed"
	ProposalAccepted = "accepted"
	ProposalDeclined = "declined"
	ProposalFailed   = "failed"
)

// CheckTimeZone checks an IANA time zone name ("" is UTC).
func CheckTimeZone(tz string) error {
	if tz == "" {
		return nil
	}
	if len(tz) > 64 || !printable(tz) {
		return fmt.Errorf("time zone %q: want an IANA name like Europe/Berlin", tz)
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return fmt.Errorf("time zone %q: want an IANA name like Europe/Berlin: %v", tz, err)
	}
	return nil
}
