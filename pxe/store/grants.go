package store

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/pxe/store/kind"
)

// Scope is what a grant lets support do (see kind.Scope).
type Scope = kind.Scope

// Rescue scopes.
const (
	ScopePasswordReset = kind.ScopePasswordReset
	ScopeShell         = kind.ScopeShell
	ScopeConsole       = kind.ScopeConsole
)

// Scopes lists the scopes in the order they are shown.
var Scopes = []Scope{ScopePasswordReset, ScopeShell, ScopeConsole}

// PolicyChoice is how a customer wants grants of a scope handled (see
// kind.Policy).
type PolicyChoice = kind.Policy

// Policies.
const (
	PolicyApprove = kind.PolicyApprove
	PolicyNotify  = kind.PolicyNotify
)

// DefaultPolicy is a scope's policy for a customer who has not chosen one:
// a shell and the console are root shells that see everything in RAM and
// can change an unencrypted /boot, so they wait for the customer; a
// password reset is told.
func DefaultPolicy(scope Scope) PolicyChoice {
	if scope == ScopeShell || scope == ScopeConsole {
		return PolicyApprove
	}
	return PolicyNotify
}

// GrantState is where a grant is in its life (see kind.GrantState).
type GrantState = kind.GrantState

// Grant states.
const (
	GrantRequested = kind.GrantRequested
	GrantApproved  = kind.GrantApproved
	GrantActive    = kind.GrantActive
	GrantEnded     = kind.GrantEnded
	GrantExpired   = kind.GrantExpired
	GrantRevoked   = kind.GrantRevoked
	GrantDenied    = kind.GrantDenied
)

// transitions are the state changes a grant may make.
var transitions = map[GrantState][]GrantState{
	GrantRequested: {GrantApproved, GrantDenied, GrantRevoked, GrantExpired},
	GrantApproved:  {GrantActive, GrantRevoked, GrantExpired},
	GrantActive:    {GrantEnded, GrantRevoked, GrantExpired},
}

// MaxGrantTTL bounds a grant's life: hours, not days.
const MaxGrantTTL = 8 * time.Hour

// GrantRequest is what support asks for.
type GrantRequest struct {
	Host     string        `json:"host"`
	Scope    Scope         `json:"scope"`
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
	if !ValidScope(r.Scope) {
		errs = append(errs, fmt.Errorf("scope %q: want %s", r.Scope, ScopeList()))
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

// ScopeList is the scopes for a message: "password-reset, shell, console".
func ScopeList() string {
	names := make([]string, len(Scopes))
	for i, s := range Scopes {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// ValidScope says whether s is one of the Scopes.
func ValidScope(s Scope) bool {
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
	ID        string       `json:"id"`
	Host      string       `json:"host"`
	Customer  string       `json:"customer"`
	Staff     string       `json:"staff"`     // the operator who asked
	StaffKey  string       `json:"staff_key"` // their SSH public key
	Ticket    string       `json:"ticket"`
	Reason    string       `json:"reason"`
	Scope     Scope        `json:"scope"`
	Policy    PolicyChoice `json:"policy"` // the policy it was asked under
	State     GrantState   `json:"state"`
	From      time.Time    `json:"from"`
	Until     time.Time    `json:"until"`
	Created   time.Time    `json:"created"`
	Decided   time.Time    `json:"decided,omitzero"`
	DecidedBy string       `json:"decided_by,omitempty"`
	// ConsoleCode is a console grant's one-time code, set only in the
	// answer to its request; ConsoleCodeHash is what is kept of it.
	ConsoleCode     string `json:"console_code,omitempty"`
	ConsoleCodeHash string `json:"-"`
}

// Can says whether g may go to state to at now, and why not.
func (g *Grant) Can(to GrantState, now time.Time) error {
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
	State    GrantState
	Limit    int
}

// Policy is a customer's choice for one scope.
type Policy struct {
	Scope   Scope        `json:"scope"`
	Policy  PolicyChoice `json:"policy"`
	Default bool         `json:"default"` // not chosen: the scope's default
}
