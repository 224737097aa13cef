package main

import (
	"fmt"
	"slices"
	"strings"
)

// command is one CLI command: the table below is both the dispatch and
// the usage text, so that the two cannot disagree.
type command struct {
	path string // the words that name it: "host add"
	args string // what follows them, for the usage line
	help string
	run  func(e *env, args []string) error
}

var commands = []command{
	{"whoami", "", "the operator (or customer) your token belongs to", (*env).whoami},
	{"host list", "", "the inventory", (*env).hostList},
	{"host show", "NAME", "one host", (*env).hostShow},
	{"host hardware", "NAME", "what the host's newest boot into lifeboat found: CPU, memory, NICs, disks, devices without a driver", (*env).hostHardware},
	{"host add", "NAME --mac MAC --ip IP --key-file FILE [flags]", "add a host", func(e *env, a []string) error { return e.hostAddSet(a, true) }},
	{"host set", "NAME [flags]", "change only the fields given", func(e *env, a []string) error { return e.hostAddSet(a, false) }},
	{"host remove", "NAME", "remove a host", (*env).hostRemove},
	{"host reset", "NAME", "end the host's live lifeboat agent (replaced or powered off in lifeboat), so that its next boot is certified at once", (*env).hostReset},
	{"host import", "FILE", "add or replace the hosts of an inventory file (- for stdin), all or none", (*env).hostImport},
	{"customer add", "NAME [--display-name S] [--email ADDR]... [--key-file FILE]... [--time-zone TZ]", "add a customer, with the SSH keys they approve grants with", (*env).customerAdd},
	{"customer list", "", "the customers", (*env).customerList},
	{"customer show", "NAME", "one customer's settings and keys", (*env).customerShow},
	{"customer set", "NAME [--email ADDR]... [--key-file FILE]... [--time-zone TZ] [--display-name S]", "change them (the customer, with their token; an operator proposes)", (*env).customerSet},
	{"customer token", "NAME [--key FILE]", "the customer gets their API token with their own SSH key (--key), or a new one with theirs", (*env).customerToken},
	{"customer proposals", "NAME", "changes operators proposed to the customer, and what became of them", (*env).customerProposals},
	{"customer accept", "PROPOSAL", "accept a proposed change (the customer's token)", customerAnswer(true)},
	{"customer decline", "PROPOSAL", "decline it", customerAnswer(false)},
	{"customer staff list", "NAME", "the staff who may be granted the customer's hosts", (*env).staffList},
	{"customer staff add", "NAME STAFF --role R --key SHA256:...", "put a staff member on the list (the customer is told first)", (*env).staffAdd},
	{"customer staff remove", "NAME STAFF", "take them off it; their open grants there are revoked", (*env).staffRemove},
	{"customer webhook add", "NAME URL", "add a notice webhook; prints its signing secret once", (*env).webhookAdd},
	{"customer webhook list", "NAME", "the customer's webhooks", (*env).webhookList},
	{"customer webhook remove", "NAME ID", "remove one", (*env).webhookRemove},
	{"customer policy", "NAME [SCOPE approve|notify]", "how the customer's grants are handled, per scope (defaults: shell approve, others notify)", (*env).customerPolicy},
	{"customer age-recipient", "NAME age1...|--remove", "seal the rescue recordings of the customer's hosts to their age key", (*env).customerAge},
	{"rescue request", "HOST --scope S --ticket T --reason R --key-file FILE [--ttl 2h]", "ask for a rescue grant (password-reset, shell, console) as yourself", (*env).rescueRequest},
	{"rescue list", "[--host H] [--state S]", "grants, newest first", (*env).rescueList},
	{"rescue show", "ID", "one grant", (*env).rescueShow},
	{"rescue approve", "ID --key FILE | --signature FILE | --show", "approve a grant on your hosts with your SSH key's signature (the customer)", (*env).rescueApprove},
	{"rescue revoke", "ID", "withdraw a grant that has not ended (a customer, with their token: any grant on their hosts)", (*env).rescueRevoke},
	{"recording list", "", "rescue shells' recordings (a customer: those of your hosts)", (*env).recordingList},
	{"recording play", "ID [--speed 1] [--identity FILE]", "replay one in this terminal (a sealed one with the customer's age key)", (*env).recordingPlay},
	{"recording verify", "ID [--identity FILE]", "check a recording against its audit record's SHA-256; exit 1 if it changed", (*env).recordingVerify},
	{"recording get", "ID [-o FILE] [--identity FILE]", "download one (asciicast v2; sealed as stored without --identity)", (*env).recordingGet},
	{"audit verify", "[--customer] [--receipt SEQ:HASH]... [--audit-key KEY] [--on-server]", "check the tamper-evident audit chain; exit 1 if broken", (*env).auditVerify},
	{"audit key", "", "the key lifeboatd signs audit checkpoints with; pin it (audit verify --audit-key)", (*env).auditKey},
	{"audit list", "[--after SEQ]", "the audit records you may read (a customer: your own)", (*env).auditList},
	{"notices", "[--customer NAME]", "the notice outbox: what was told to whom, and whether it arrived", (*env).notices},
	{"ca", "", "the known_hosts line that makes lifeboat host keys trusted", (*env).ca},
	{"ssh-config", "[--krl FILE]", "what a customer's ssh needs: the known_hosts line, and RevokedHostKeys for ended boots", (*env).sshConfig},
	{"krl", "[-o FILE]", "the revocation list of host certificates whose boot has ended (OpenSSH KRL)", (*env).krl},
	{"boot list", "[--host NAME] [--limit N]", "boots, newest first, with the stage reached", (*env).bootList},
	{"boot show", "ID", "a boot's stages with their timings", (*env).bootShow},
	{"events", "[--host NAME] [--boot ID] [--after SEQ] [--limit N] [--follow]", "the event log (--follow: live)", (*env).events},
	{"version", "", "this program's version", func(e *env, _ []string) error { fmt.Fprintln(e.out, "lifeboat", version); return nil }},
}

// alias maps the other spellings people type to a command's word.
var alias = map[string]string{
	"hosts": "host", "customers": "customer", "webhooks": "webhook", "policies": "policy", "recordings": "recording",
	"notice": "notices", "proposal": "proposals", "boots": "boot", "event": "events", "ls": "list", "rm": "remove",
}

// find returns the command that args name (the one with the most words)
// and the arguments after its words. When args name a group ("host") but
// none of its commands, the error lists them.
func find(args []string) (*command, []string, error) {
	var best *command
	n := 0
	for i := range commands {
		c := &commands[i]
		words := strings.Fields(c.path)
		if len(words) > len(args) || len(words) <= n {
			continue
		}
		if slices.EqualFunc(words, args[:len(words)], func(w, a string) bool { return w == a || alias[a] == w }) {
			best, n = c, len(words)
		}
	}
	if best != nil {
		return best, args[n:], nil
	}
	// No command: say what the longest group the words begin offers.
	for depth := len(args); depth >= 1; depth-- {
		if next := children(args[:depth]); len(next) > 0 {
			got := ""
			if depth < len(args) {
				got = args[depth]
			}
			return nil, nil, usageError{fmt.Sprintf("%s %q: want %s", strings.Join(args[:depth], " "), got, orList(next))}
		}
	}
	return nil, nil, usageError{fmt.Sprintf("unknown command %q (lifeboat --help lists them)", args[0])}
}

// children lists the next words of the commands under group prefix.
func children(prefix []string) []string {
	var out []string
	for _, c := range commands {
		words := strings.Fields(c.path)
		if len(words) <= len(prefix) || !slices.EqualFunc(prefix, words[:len(prefix)], func(a, w string) bool { return w == a || alias[a] == w }) {
			continue
		}
		if w := words[len(prefix)]; !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

func orList(ws []string) string {
	if len(ws) == 1 {
		return ws[0]
	}
	return strings.Join(ws[:len(ws)-1], ", ") + " or " + ws[len(ws)-1]
}

func (e *env) dispatch(args []string) error {
	c, rest, err := find(args)
	if err != nil {
		return err
	}
	return c.run(e, rest)
}

// usage is the top-level help, made from the table.
func usage() string {
	var b strings.Builder
	b.WriteString("usage: lifeboat [global flags] COMMAND [flags] [ARGS]\n\ncommands:\n")
	for _, c := range commands {
		line := "  " + strings.TrimSpace(c.path+" "+c.args)
		if len(line) <= 34 {
			fmt.Fprintf(&b, "%-36s%s\n", line, c.help)
		} else {
			fmt.Fprintf(&b, "%s\n%36s%s\n", line, "", c.help)
		}
	}
	b.WriteString(`
Every listing takes --json. 'lifeboat COMMAND --help' shows a command's flags.
Exit status: 0 done, 1 refused by the server, 2 bad usage, 3 server unreachable or token refused.

global flags:
`)
	return b.String()
}
