package audit

import (
	"context"
	"time"
)

// Code is a stable event code.
type Code string

// Event codes. Keep them stable: dashboards, notices and customers' own
// tooling match on them.
const (
	DHCPOffer       Code = "dhcp.offer"            // an OFFER was sent to a known host
	DHCPAck         Code = "dhcp.ack"              // an ACK was sent to a known host
	BootStart       Code = "boot.start"            // a new netboot of a known host began
	FirstStageFetch Code = "tftp.fetch"            // a first-stage loader went out over TFTP
	ScriptFetch     Code = "http.script"           // the per-boot iPXE script was served
	ImageFetch      Code = "http.image"            // kernel, initramfs or the agent archive was served
	AgentCheckin    Code = "agent.checkin"         // the agent presented a valid boot token
	CheckinRefused  Code = "agent.checkin_refused" // a check-in was refused (replayed, expired, unknown token)
	SSHLogin        Code = "ssh.login"             // a customer key logged in to the unlock prompt
	UnlockSuccess   Code = "unlock.success"        // a passphrase opened at least one volume
	UnlockFailure   Code = "unlock.failure"        // a passphrase opened no volume
	UnlockLockout   Code = "unlock.lockout"        // too many wrong passphrases: the prompt is locked for a while
	Handoff         Code = "handoff"               // the agent is about to kexec the host's own OS
	HandoffFailed   Code = "handoff.failed"        // no boot entry, or the kexec load failed

	// Operator changes, with the operator's name as the actor.
	HostAdd        Code = "host.add"        // a host was added to the inventory
	HostSet        Code = "host.set"        // a host's entry was changed
	HostRemove     Code = "host.remove"     // a host was removed
	CustomerAdd    Code = "customer.add"    // a customer was added
	OperatorAdd    Code = "operator.add"    // an operator was given an API token
	OperatorRemove Code = "operator.remove" // an operator's token was revoked
)

// AgentCodes are the codes the RAM-image agent may report about its own boot.
// The server refuses any other code from an agent, so that a compromised
// agent cannot forge server-side events.
var AgentCodes = map[Code]bool{
	SSHLogin: true, UnlockSuccess: true, UnlockFailure: true, UnlockLockout: true,
	Handoff: true, HandoffFailed: true,
}

// Event is one record of the event log. Details never hold a secret.
type Event struct {
	Seq     int64             `json:"seq,omitempty"` // position in the log, set when it is written
	Time    time.Time         `json:"time"`
	Code    Code              `json:"code"`
	MAC     string            `json:"mac,omitempty"`
	Host    string            `json:"host,omitempty"`
	Boot    string            `json:"boot,omitempty"`
	Actor   string            `json:"actor,omitempty"`
	Details map[string]string `json:"details,omitempty"`
}

// Emitter records events. Emit returns only once the event is durable; a
// caller that gets an error must not go on with the action it records.
type Emitter interface {
	Emit(ctx context.Context, e Event) error
}
