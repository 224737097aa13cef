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
	FirstStageFetch Code = "tftp.fetch"            // a first-stage loader was fetched (TFTP, or HTTP for UEFI HTTP boot)
	ScriptFetch     Code = "http.script"           // the per-boot iPXE script was served
	ImageFetch      Code = "http.image"            // kernel, initramfs or the agent archive was served
	AgentCheckin    Code = "agent.checkin"         // the agent presented a valid boot token
	CheckinRefused  Code = "agent.checkin_refused" // a check-in was refused (replayed, expired, unknown token)
	CheckinRetry    Code = "agent.checkin_retry"   // the token and host key of a check-in came again (its answer lost, or a replay by one who saw it) and got the same answer
	AgentConflict   Code = "agent.conflict"        // a second machine claimed to be a host whose agent is checked in and alive: refused, and the customer alarmed
	AgentReset      Code = "agent.reset"           // an operator ended a host's live agent: the next boot may be certified at once (details: boot, host_key)
	SSHLogin        Code = "ssh.login"             // a customer key logged in to the unlock prompt
	UnlockSuccess   Code = "unlock.success"        // a passphrase opened at least one volume
	UnlockFailure   Code = "unlock.failure"        // a passphrase opened no volume
	UnlockLockout   Code = "unlock.lockout"        // too many wrong passphrases: the prompt is locked for a while
	Handoff         Code = "handoff"               // the agent is about to kexec the host's own OS
	HandoffFailed   Code = "handoff.failed"        // no boot entry, or the kexec load failed
	BootHardware    Code = "boot.hardware"         // the agent reported the machine's hardware (details: counts, report_sha256, warnings)

	// Operator changes, with the operator's name as the actor.
	HostAdd              Code = "host.add"               // a host was added to the inventory
	HostSet              Code = "host.set"               // a host's entry was changed
	HostRemove           Code = "host.remove"            // a host was removed
	CustomerAdd          Code = "customer.add"           // a customer was added
	OperatorAdd          Code = "operator.add"           // an operator was given an API token
	OperatorRemove       Code = "operator.remove"        // an operator's token was revoked
	WebhookAdd           Code = "webhook.add"            // a customer's webhook was added
	WebhookRemove        Code = "webhook.remove"         // a customer's webhook was removed
	CustomerToken        Code = "customer.token"         // a customer was given (or re-given) an API token
	CustomerAgeRecipient Code = "customer.age_recipient" // the age key recordings are sealed to was set or removed
	CustomerSet          Code = "customer.set"           // a customer's e-mails, keys, display name or time zone changed (details: what, before and after)
	StaffAdd             Code = "staff.add"              // a staff member may now be granted the customer's hosts (details: name, role, keys)
	StaffRemove          Code = "staff.remove"           // a staff member was taken off the customer's list
	ProposalOpen         Code = "proposal.open"          // an operator proposed a change to the customer's settings; it waits for the customer
	ProposalClose        Code = "proposal.close"         // the customer accepted or declined a proposal (details: state)
	OperatorRefused      Code = "operator.refused"       // an operator tried what needs the customer, and was refused (details: what, why)

	// Rescue grants, with the acting operator, customer or "system".
	RescueRequest Code = "rescue.request" // support asked for a grant (details: scope, ticket, reason, window, policy)
	RescueApprove Code = "rescue.approve" // the grant may be used: approved by the customer, or at once under a notify policy
	RescueDeny    Code = "rescue.deny"    // the customer said no
	RescueRevoke  Code = "rescue.revoke"  // the grant was withdrawn
	RescueExpire  Code = "rescue.expire"  // its window closed
	RescueActive  Code = "rescue.active"  // the host checked in for a rescue boot under the grant
	RescuePolicy  Code = "rescue.policy"  // a customer's policy for a scope was set

	// Reported by the RAM image during a rescue boot, with the key's
	// fingerprint as the actor.
	SSHRefused           Code = "ssh.refused"            // keys offered that may not log in (details: keys, remote)
	RescuePasswordReset  Code = "rescue.password_reset"  // a user's password is about to be reset (details: user, shadow digests before and after; never a hash)
	RescueResetRefused   Code = "rescue.reset_refused"   // a reset was refused: the root is still encrypted
	RescueShell          Code = "rescue.shell"           // a recorded shell began (details: recording)
	RescueShellEnd       Code = "rescue.shell_end"       // a recorded shell ended (details: recording, bytes, exit status)
	RescueConsole        Code = "rescue.console"         // the console code was typed right: a recorded console shell began
	RescueConsoleRefused Code = "rescue.console_refused" // a wrong console code (details: console, tries left)
	RescueEnd            Code = "rescue.end"             // the rescue session ended; the host reboots into its default mode

	// The notice relay.
	NoticeFailed Code = "notice.failed" // a notice could not be delivered for three days; the relay gave up
)

// ReasonConnectionLimit is the reason of an ssh.refused record for
// connections turned away because too many were open at once (details:
// connections, remote: the first's address).
const ReasonConnectionLimit = "connection limit"

// AgentCodes are the codes the RAM-image agent may report about its own boot.
// The server refuses any other code from an agent, so that a compromised
// agent cannot forge server-side events.
var AgentCodes = map[Code]bool{
	SSHLogin: true, UnlockSuccess: true, UnlockFailure: true, UnlockLockout: true,
	Handoff: true, HandoffFailed: true,
	SSHRefused: true, RescuePasswordReset: true, RescueResetRefused: true, RescueShell: true, RescueShellEnd: true, RescueEnd: true,
	RescueConsole: true, RescueConsoleRefused: true,
}

// Notify are the codes the customer who owns the host is told about. A
// notice is written to the outbox in the transaction of its record.
var Notify = map[Code]bool{
	AgentCheckin: true, CheckinRefused: true, CheckinRetry: true, AgentConflict: true, AgentReset: true, SSHLogin: true, UnlockSuccess: true, UnlockFailure: true,
	UnlockLockout: true, Handoff: true, HandoffFailed: true,
	RescueRequest: true, RescueApprove: true, RescueActive: true, RescueDeny: true, RescueRevoke: true, RescueExpire: true, RescuePolicy: true,
	SSHRefused: true, RescuePasswordReset: true, RescueResetRefused: true, RescueShell: true, RescueShellEnd: true, RescueEnd: true,
	RescueConsole: true, RescueConsoleRefused: true, CustomerAgeRecipient: true,
	// Changes to who is told, who may act and what the host is: the
	// customer hears of each, on the channels they had before it.
	HostAdd: true, HostSet: true, HostRemove: true, WebhookAdd: true, WebhookRemove: true, CustomerToken: true,
	CustomerSet: true, StaffAdd: true, StaffRemove: true, ProposalOpen: true, ProposalClose: true, OperatorRefused: true,
}

// Event is one record of the event log. Details never hold a secret.
//
// Once written, an event is a record of the audit chain (see chain.go):
// Salt, Prev and Hash are set by Seal. A redacted record carries only Seq,
// Digest and Hash.
type Event struct {
	Seq      int64             `json:"seq,omitempty"` // position in the log, set when it is written
	Time     time.Time         `json:"time,omitzero"`
	Code     Code              `json:"code,omitempty"`
	Customer string            `json:"customer,omitempty"` // the owner of Host when the event was written
	MAC      string            `json:"mac,omitempty"`
	Host     string            `json:"host,omitempty"`
	Boot     string            `json:"boot,omitempty"`
	Actor    string            `json:"actor,omitempty"`
	Details  map[string]string `json:"details,omitempty"`
	Salt     string            `json:"salt,omitempty"`
	Prev     string            `json:"prev,omitempty"`
	Digest   string            `json:"digest,omitempty"` // redacted records only
	Hash     string            `json:"hash,omitempty"`
}

// Emitter records events. Emit returns only once the event is durable; a
// caller that gets an error must not go on with the action it records.
type Emitter interface {
	Emit(ctx context.Context, e Event) error
}

// Queuer records events in order with every other, but without waiting
// for them to be durable. It is for DHCP answers only: there the boot's
// record (boot.start, emitted and waited for) is what must come first, and
// the OFFERs and ACKs are written in the next group commit, so that a
// burst of DHCP does not wait on the disk packet by packet. Queue fails
// only when the log can take nothing more.
type Queuer interface {
	Queue(e Event) error
}
