package store

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Rescue scopes: what a grant lets support do.
const (
	ScopePasswordReset = "password-reset" // reset one user's password on the installed OS
	ScopeShell         = "shell"          // a recorded shell in the RAM image
	ScopeConsole       = "console"        // remote hands at the console, with a one-time code
)

// Scopes lists the scopes in the order they are shown.
var Scopes = []string{ScopePasswordReset, ScopeShell, ScopeConsole}

// Policies: how a customer wants grants of a scope handled.
const (
	PolicyApprove = "approve" // the grant waits until the customer approves it
	PolicyNotify  = "notify"  // the grant may be used at once; the customer is told
)

// DefaultPolicy is a scope's policy for a customer who has not chosen one:
// a shell sees everything in RAM, so it waits for the customer; a password
// reset and the console are told.
func DefaultPolicy(scope string) string {
	if scope == ScopeShell {
		return PolicyApprove
	}
	return PolicyNotify
}

// Grant states.
const (
	GrantRequested = "requested" // waiting for the customer's approval
	GrantApproved  = "approved"  // may be used from From until Until
	GrantActive    = "active"    // a rescue boot is using it
	GrantEnded     = "ended"     // the session ended
	GrantExpired   = "expired"   // Until passed
	GrantRevoked   = "revoked"   // withdrawn by staff, an operator or the customer
	GrantDenied    = "denied"    // the customer said no
)

// transitions are the state changes a grant may make.
var transitions = map[string][]string{
	GrantRequested: {GrantApproved, GrantDenied, GrantRevoked, GrantExpired},
	GrantApproved:  {GrantActive, GrantRevoked, GrantExpired},
	GrantActive:    {GrantEnded, GrantRevoked, GrantExpired},
}

// MaxGrantTTL bounds a grant's life: hours, not days.
const MaxGrantTTL = 8 * time.Hour

// GrantRequest is what support asks for.
type GrantRequest struct {
	Host     string        `json:"host"`
	Scope    string        `json:"scope"`
	Ticket   string        `json:"ticket"`
	Reason   string        `json:"reason"`
	TTL      time.Duration `json:"ttl_ns"`
	StaffKey string        `json:"staff_key"` // the staff member's SSH public key, authorized_keys form
}

// Check validates a request.
func (r *GrantRequest) Check() error {
	var errs []error
	if !ValidName(r.Host) {
		errs = append(errs, fmt.Errorf("host %q: not a host name", r.Host))
	}
	if !validScope(r.Scope) {
		errs = append(errs, fmt.Errorf("scope %q: want %s", r.Scope, strings.Join(Scopes, ", ")))
	}
	if r.Ticket == "" || len(r.Ticket) > 100 || !printable(r.Ticket) {
		errs = append(errs, errors.New("ticket: the support ticket this is for is required (at most 100 printable characters)"))
	}
	if len(r.Reason) < 3 || len(r.Reason) > 500 || !printable(r.Reason) {
		errs = append(errs, errors.New("reason: say why, in 3 to 500 printable characters; the customer reads it"))
	}
	if r.TTL < 10*time.Minute || r.TTL > MaxGrantTTL {
		errs = append(errs, fmt.Errorf("ttl %s: want 10m to %s", r.TTL, MaxGrantTTL))
	}
	if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(r.StaffKey)); err != nil {
		errs = append(errs, errors.New("staff key: want the staff member's SSH public key (an authorized_keys line)"))
	}
	return errors.Join(errs...)
}

func validScope(s string) bool {
	for _, x := range Scopes {
		if s == x {
			return true
		}
	}
	return false
}

func printable(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// Grant is a time-limited permission for one staff member to rescue one
// host in one scope, tied to a ticket.
type Grant struct {
	ID        string    `json:"id"`
	Host      string    `json:"host"`
	Customer  string    `json:"customer"`
	Staff     string    `json:"staff"`     // the operator who asked
	StaffKey  string    `json:"staff_key"` // their SSH public key
	Ticket    string    `json:"ticket"`
	Reason    string    `json:"reason"`
	Scope     string    `json:"scope"`
	Policy    string    `json:"policy"` // the policy it was asked under
	State     string    `json:"state"`
	From      time.Time `json:"from"`
	Until     time.Time `json:"until"`
	Created   time.Time `json:"created"`
	Decided   time.Time `json:"decided,omitzero"`
	DecidedBy string    `json:"decided_by,omitempty"`
	// ConsoleCode is a console grant's one-time code, set only in the
	// answer to its request; ConsoleCodeHash is what is kept of it.
	ConsoleCode     string `json:"console_code,omitempty"`
	ConsoleCodeHash string `json:"-"`
}

// Can says whether g may go to state to at now, and why not.
func (g *Grant) Can(to string, now time.Time) error {
	for _, s := range transitions[g.State] {
		if s == to {
			if to == GrantActive && !g.Live(now) {
				return fmt.Errorf("grant %s: %w: not valid now (from %s until %s)", g.ID, ErrConflict, g.From.Format(time.RFC3339), g.Until.Format(time.RFC3339))
			}
			return nil
		}
	}
	return fmt.Errorf("grant %s: %w: it is %s and cannot become %s", g.ID, ErrConflict, g.State, to)
}

// Live reports whether g may be used at t: approved or active, within its
// window.
func (g *Grant) Live(t time.Time) bool {
	return (g.State == GrantApproved || g.State == GrantActive) && !t.Before(g.From) && t.Before(g.Until)
}

// Open reports whether g has not reached an end state.
func (g *Grant) Open() bool { return len(transitions[g.State]) > 0 }

// GrantFilter selects grants; zero values select everything.
type GrantFilter struct {
	Host     string
	Customer string
	State    string
	Limit    int
}

// Policy is a customer's choice for one scope.
type Policy struct {
	Scope   string `json:"scope"`
	Policy  string `json:"policy"`
	Default bool   `json:"default"` // not chosen: the scope's default
}
