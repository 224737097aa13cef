package notify

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// Payload is the JSON body of a webhook, in the Standard Webhooks shape.
type Payload struct {
	Type      string    `json:"type"` // the audit code
	Timestamp time.Time `json:"timestamp"`
	Data      Data      `json:"data"`
}

// Data is what a notice says.
type Data struct {
	Summary  string            `json:"summary"`
	Customer string            `json:"customer"`
	Host     string            `json:"host,omitempty"`
	MAC      string            `json:"mac,omitempty"`
	Boot     string            `json:"boot,omitempty"`
	Actor    string            `json:"actor,omitempty"`
	Details  map[string]string `json:"details,omitempty"`
	Receipt  audit.Receipt     `json:"receipt"`
	// ApproveURL is the page where the customer approves (with a
	// signature) or denies a rescue grant that waits for them.
	ApproveURL string `json:"approve_url,omitempty"`
	// RevokeURL is the page where the customer ends a grant that may be
	// used (approved, or a rescue boot under it).
	RevokeURL string `json:"revoke_url,omitempty"`
	// Checkpoint is lifeboatd's newest signed head of the audit chain at
	// the time of sending: keep it with the receipt.
	Checkpoint *audit.Checkpoint `json:"checkpoint,omitempty"`
}

// Message is a notice as the channels send it. It depends on the record
// and the checkpoint sent with it only.
type Message struct {
	Subject string
	Text    string // the e-mail body, plain text
	JSON    []byte // the webhook body
}

// summary says in one line what happened.
func summary(e audit.Event) string {
	d := e.Details
	switch e.Code {
	case audit.AgentCheckin:
		if d["trust"] != "" {
			return fmt.Sprintf("%s booted into lifeboat; its host key this boot is %s. %s", e.Host, cmp.Or(d["host_key"], "unknown"), upperFirst(d["trust"]))
		}
		return fmt.Sprintf("%s booted into lifeboat; its host key this boot is %s", e.Host, cmp.Or(d["host_key"], "unknown"))
	case audit.CheckinRetry:
		return fmt.Sprintf("%s's check-in came again from %s with the same host key %s: its first answer was lost, or someone who saw the check-in sent it again", e.Host, cmp.Or(d["peer"], "an unknown address"), cmp.Or(d["host_key"], "unknown"))
	case audit.AgentConflict:
		return fmt.Sprintf("ALARM: two machines claimed to be %s. The one checked in (host key %s, last heard from at %s) is still up; another, from %s, just tried to check in as it (host key %s) and got no certificate. Do not unlock %s until you have checked which machine you reach: if you or your provider just restarted it, this was that restart",
			e.Host, cmp.Or(d["live_host_key"], "unknown"), cmp.Or(d["live_seen"], "an earlier time"), cmp.Or(d["peer"], "an unknown address"), cmp.Or(d["host_key"], "unknown"), e.Host)
	case audit.AgentReset:
		return fmt.Sprintf("%s ended the lifeboat session of %s (boot %s, host key %s): the next machine that boots as %s gets a certificate at once", e.Actor, e.Host, cmp.Or(d["boot"], "unknown"), cmp.Or(d["host_key"], "unknown"), e.Host)
	case audit.CheckinRefused:
		return fmt.Sprintf("a check-in for %s was refused (%s) from %s", e.Host, d["reason"], cmp.Or(d["peer"], "an unknown address"))
	case audit.SSHLogin:
		if d["role"] == "staff" {
			return fmt.Sprintf("the rescue grant's staff member logged in to %s with key %s from %s", e.Host, e.Actor, cmp.Or(d["remote"], "an unknown address"))
		}
		return fmt.Sprintf("someone logged in to %s's unlock prompt with key %s from %s", e.Host, e.Actor, cmp.Or(d["remote"], "an unknown address"))
	case audit.UnlockSuccess:
		return fmt.Sprintf("%s: the disk was unlocked (%s)", e.Host, d["volumes"])
	case audit.UnlockFailure:
		return fmt.Sprintf("%s: a wrong passphrase was typed (%s in a row; %s tries left before a lockout)", e.Host, cmp.Or(d["failed_tries"], "?"), cmp.Or(d["tries_left"], "?"))
	case audit.UnlockLockout:
		return fmt.Sprintf("%s: too many wrong passphrases; the prompt is locked for %s", e.Host, d["lockout"])
	case audit.Handoff:
		return fmt.Sprintf("%s is booting its own operating system (%s)", e.Host, cmp.Or(d["entry"], "default entry"))
	case audit.HandoffFailed:
		return fmt.Sprintf("%s could not boot its own operating system: %s", e.Host, d["reason"])
	case audit.RescueRequest:
		if d["state"] == "requested" {
			return fmt.Sprintf("%s asks for a %s grant on %s for %s (ticket %s): it waits for your approval", d["staff"], d["scope"], e.Host, window(d), d["ticket"])
		}
		return fmt.Sprintf("%s was given a %s grant on %s (ticket %s) under your notify policy", d["staff"], d["scope"], e.Host, d["ticket"])
	case audit.RescueApprove:
		return fmt.Sprintf("the %s grant on %s for %s is approved (by %s), valid until %s", d["scope"], e.Host, d["staff"], e.Actor, d["until"])
	case audit.RescueDeny:
		return fmt.Sprintf("the %s grant on %s for %s was denied", d["scope"], e.Host, d["staff"])
	case audit.RescueRevoke:
		return fmt.Sprintf("the %s grant on %s for %s was revoked by %s", d["scope"], e.Host, d["staff"], e.Actor)
	case audit.RescueExpire:
		return fmt.Sprintf("the %s grant on %s for %s has expired", d["scope"], e.Host, d["staff"])
	case audit.HostAdd:
		return fmt.Sprintf("%s added host %s to your account", e.Actor, e.Host)
	case audit.HostSet:
		return fmt.Sprintf("%s changed host %s (%s)", e.Actor, e.Host, changed(d))
	case audit.HostRemove:
		return fmt.Sprintf("%s removed host %s from your account", e.Actor, e.Host)
	case audit.WebhookAdd:
		return fmt.Sprintf("%s added a webhook for your notices, to %s", e.Actor, d["url_host"])
	case audit.WebhookRemove:
		return fmt.Sprintf("%s removed webhook %s: it gets no more notices", e.Actor, d["webhook"])
	case audit.CustomerToken:
		if d["replaces"] == "true" {
			return fmt.Sprintf("%s made a new API token for your account; the one before no longer works", e.Actor)
		}
		return fmt.Sprintf("%s made your account's API token", e.Actor)
	case audit.CustomerSet:
		return fmt.Sprintf("%s changed your account's settings (%s)", e.Actor, changed(d))
	case audit.StaffAdd:
		return fmt.Sprintf("%s put %s (%s) on the list of staff who may be granted your hosts, with keys %s", e.Actor, d["name"], d["role"], d["keys"])
	case audit.StaffRemove:
		return fmt.Sprintf("%s took %s off the list of staff who may be granted your hosts", e.Actor, d["name"])
	case audit.OperatorRefused:
		return fmt.Sprintf("%s tried to %s and was refused: %s", e.Actor, d["what"], d["why"])
	case audit.ProposalOpen:
		return fmt.Sprintf("%s proposes to %s; it applies only if you accept it (proposal %s)", e.Actor, d["summary"], d["proposal"])
	case audit.ProposalClose:
		return fmt.Sprintf("proposal %s (%s) was %s by %s", d["proposal"], d["summary"], d["state"], e.Actor)
	case audit.RescuePolicy:
		return fmt.Sprintf("your policy for %s grants is now %q", d["scope"], d["policy"])
	case audit.RescueActive:
		return fmt.Sprintf("%s booted into rescue for the %s grant of %s (ticket %s), until %s", e.Host, d["scope"], d["staff"], d["ticket"], d["until"])
	case audit.RescuePasswordReset:
		return fmt.Sprintf("support is resetting the password of user %s on %s (/etc/shadow sha256 %s -> %s)", d["user"], e.Host, short(d["shadow_before"]), short(d["shadow_after"]))
	case audit.RescueResetRefused:
		return fmt.Sprintf("support could not reset the password of %s on %s: its disk is encrypted and locked (unlock it if you want the reset)", d["user"], e.Host)
	case audit.RescueShell:
		return fmt.Sprintf("support opened a recorded shell on %s (grant %s, recording %s)", e.Host, d["grant"], d["recording"])
	case audit.RescueShellEnd:
		return fmt.Sprintf("the recorded shell on %s ended (recording %s, %s bytes)", e.Host, d["recording"], d["bytes"])
	case audit.RescueEnd:
		return fmt.Sprintf("the rescue session on %s is over (%s); it reboots into its own system", e.Host, cmp.Or(d["reason"], "grant ended"))
	case audit.RescueConsole:
		return fmt.Sprintf("someone typed the right one-time code at %s's console (grant %s): a recorded console shell began (recording %s)", e.Host, d["grant"], d["recording"])
	case audit.RescueConsoleRefused:
		return fmt.Sprintf("a wrong one-time code was typed at %s's console %s (%s tries left)", e.Host, d["console"], d["tries_left"])
	case audit.SSHRefused:
		if d["reason"] == audit.ReasonConnectionLimit {
			return fmt.Sprintf("connections to %s were turned away: too many at once (%s so far, the first from %s)", e.Host, cmp.Or(d["connections"], "1"), cmp.Or(d["remote"], "an unknown address"))
		}
		return fmt.Sprintf("a login to %s with a key that may not log in was refused (%s from %s)", e.Host, d["keys"], cmp.Or(d["remote"], "an unknown address"))
	}
	return fmt.Sprintf("%s: %s", cmp.Or(e.Host, e.Customer), e.Code)
}

// window is a grant's duration in words, from its record.
func window(d map[string]string) string {
	from, err1 := time.Parse(time.RFC3339, d["from"])
	until, err2 := time.Parse(time.RFC3339, d["until"])
	if err1 != nil || err2 != nil {
		return "a while"
	}
	return store.Duration(until.Sub(from))
}

// changed lists the fields a change record names, "what: before → after".
func changed(d map[string]string) string {
	keys := slices.Sorted(maps.Keys(d))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+": "+d[k])
	}
	return cmp.Or(strings.Join(parts, "; "), "nothing")
}

// Render makes the notice for a record; approveURL, if set, is the
// approval page of the grant it asks about; cp, if set, the newest signed
// checkpoint of the chain.
func Render(e audit.Event, approveURL string, cp *audit.Checkpoint) Message {
	// Fields come partly from the RAM image: none may start a line of its own.
	e.Host, e.MAC, e.Boot, e.Actor, e.Customer = oneLine(e.Host), oneLine(e.MAC), oneLine(e.Boot), oneLine(e.Actor), oneLine(e.Customer)
	if len(e.Details) > 0 {
		d := make(map[string]string, len(e.Details))
		for k, v := range e.Details {
			d[oneLine(k)] = oneLine(v)
		}
		e.Details = d
	}
	sum := summary(e)
	receipt := audit.Receipt{Seq: e.Seq, Hash: e.Hash}
	waits := e.Code == audit.RescueRequest && e.Details["state"] == string(store.GrantRequested)
	var revokeURL string
	if !waits {
		approveURL, revokeURL = "", approveURL
	}
	body, _ := json.Marshal(Payload{Type: string(e.Code), Timestamp: e.Time.UTC(), Data: Data{Summary: sum, Customer: e.Customer,
		Host: e.Host, MAC: e.MAC, Boot: e.Boot, Actor: e.Actor, Details: e.Details, Receipt: receipt, ApproveURL: approveURL, RevokeURL: revokeURL, Checkpoint: cp}})
	var b strings.Builder
	fmt.Fprintf(&b, "%s.\n\n", upperFirst(sum))
	if revokeURL != "" {
		fmt.Fprintf(&b, "To end this grant now (a session in progress ends within seconds):\n  %s\n  or: lifeboat rescue revoke %s, with your token\n\n", revokeURL, e.Details["grant"])
	}
	if waits {
		fmt.Fprintf(&b, "If you approve:\n")
		for _, m := range store.Meaning(store.Scope(e.Details["scope"])) {
			fmt.Fprintf(&b, "  - %s\n", m)
		}
		fmt.Fprintf(&b, "\n%s\n\n", store.AfterApproval)
		if approveURL != "" {
			fmt.Fprintf(&b, "To approve (with a signature by one of your SSH keys) or deny, open this page;\n"+
				"it is for this grant only, and a decision is made once:\n  %s\n\n", approveURL)
		}
		fmt.Fprintf(&b, "Or, with your token: lifeboat rescue approve %s --key ~/.ssh/id_ed25519\n\n", e.Details["grant"])
	}
	fmt.Fprintf(&b, "%-14s%s\n", "What:", e.Code)
	fmt.Fprintf(&b, "%-14s%s\n", "When:", e.Time.UTC().Format("2006-01-02 15:04:05 MST"))
	if e.Host != "" && e.MAC != "" {
		fmt.Fprintf(&b, "%-14s%s (%s)\n", "Host:", e.Host, e.MAC)
	} else if e.Host != "" {
		fmt.Fprintf(&b, "%-14s%s\n", "Host:", e.Host)
	}
	if e.Boot != "" {
		fmt.Fprintf(&b, "%-14s%s\n", "Boot:", e.Boot)
	}
	if e.Actor != "" {
		fmt.Fprintf(&b, "%-14s%s\n", "Who:", e.Actor)
	}
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%-14s%s\n", k+":", e.Details[k])
	}
	if e.Code == audit.AgentCheckin {
		b.WriteString("\nThe host key is certified by your provider's SSH certificate authority: with its\n" +
			"@cert-authority line in known_hosts, ssh checks it for you. To check by hand, compare\n" +
			"the fingerprint above with the one ssh shows.\n")
	}
	fmt.Fprintf(&b, "\nAudit receipt: record %d, chain hash %s\n", receipt.Seq, receipt.Hash)
	fmt.Fprintf(&b, "Keep it. To check later that the provider's log still holds this record unchanged:\n")
	fmt.Fprintf(&b, "  lifeboat audit verify --customer --receipt %s\n", receipt)
	if cp != nil {
		fmt.Fprintf(&b, "Signed checkpoint of the whole log: record %d, hash %s, at %s,\nsignature %s\n",
			cp.Seq, cp.Hash, cp.Time.UTC().Format(time.RFC3339), cp.Sig)
	}
	fmt.Fprintf(&b, "\nYou get this because this address is on file for customer %s.\n", e.Customer)
	subject := "[lifeboat] " + sum
	if len(subject) > 150 {
		subject = subject[:150] + "…"
	}
	return Message{Subject: printable(subject), Text: printable(b.String()), JSON: body}
}

// printable replaces control characters but newlines: details come partly
// from the RAM image, which must not be able to forge lines of a mail.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

var lineBreaks = strings.NewReplacer("\r", " ", "\n", " ")

func oneLine(s string) string { return lineBreaks.Replace(s) }

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func short(digest string) string { return digest[:min(len(digest), 16)] }
