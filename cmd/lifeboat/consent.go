package main

import (
	"bytes"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/operator/api"
)

// customerShow prints one customer's settings.
func (e *env) customerShow(args []string) error {
	fs := e.flags("customer show")
	pos, err := parse(fs, args, 1, "one customer name")
	if err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	c, err := e.client.Customer(e.ctx, pos[0])
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(c)
	}
	fmt.Fprintf(e.out, "name:          %s\ndisplay name:  %s\ne-mail:        %s\ntime zone:     %s\nage recipient: %s\n",
		clean(c.Name), cmp.Or(clean(c.DisplayName), "-"), cmp.Or(clean(strings.Join(c.Emails, ", ")), "-"), cmp.Or(clean(c.TimeZone), "UTC"), cmp.Or(clean(c.AgeRecipient), "-"))
	fmt.Fprintf(e.out, "keys (approvals are signatures by one of them):\n")
	if len(c.Keys) == 0 {
		fmt.Fprintln(e.out, "  none: no grant that waits for approval can be approved")
	}
	for _, k := range c.Keys {
		fmt.Fprintf(e.out, "  %s\n", clean(k))
	}
	return nil
}

// customerSet changes a customer's settings: the customer with their own
// token; an operator proposes (unless the provider's contract lets them).
func (e *env) customerSet(args []string) error {
	fs := e.flags("customer set")
	display := fs.String("display-name", "", "name shown in notices")
	tz := fs.String("time-zone", "", "IANA time zone for notices and the approval page, e.g. Europe/Berlin")
	var emails, keyFiles listFlag
	fs.Var(&emails, "email", "address for notices (repeatable; replaces the list; \"\" empties it)")
	fs.Var(&keyFiles, "key-file", "the customer's SSH public keys, authorized_keys format (repeatable; replaces the keys)")
	pos, err := parse(fs, args, 1, "one customer name")
	if err != nil {
		return err
	}
	var u api.CustomerUpdate
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "display-name":
			u.DisplayName = display
		case "time-zone":
			u.TimeZone = tz
		case "email":
			list := []string{}
			for _, a := range emails {
				if a != "" {
					list = append(list, a)
				}
			}
			u.Emails = &list
		}
	})
	if len(keyFiles) > 0 {
		var keys []string
		for _, f := range keyFiles {
			k, err := readKeys(f)
			if err != nil {
				return err
			}
			keys = append(keys, k...)
		}
		u.Keys = &keys
	}
	if u == (api.CustomerUpdate{}) {
		return usageError{"customer set: nothing to change (--display-name, --email, --key-file, --time-zone)"}
	}
	if err := e.connect(); err != nil {
		return err
	}
	c, err := e.client.UpdateCustomer(e.ctx, pos[0], u)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(c)
	}
	fmt.Fprintf(e.out, "customer %s changed; they have been told\n", clean(c.Name))
	return nil
}

// customerProposals lists what operators proposed to a customer.
func (e *env) customerProposals(args []string) error {
	fs := e.flags("customer proposals")
	pos, err := parse(fs, args, 1, "one customer name")
	if err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	ps, err := e.client.Proposals(e.ctx, pos[0])
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(api.ProposalList{Proposals: ps})
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tBY\tWHEN\tWHAT")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.ID, p.State, clean(p.ProposedBy), p.Created.Local().Format(time.DateTime), clean(p.Summary))
	}
	return tw.Flush()
}

// customerAnswer accepts or declines a proposal, with the customer's token.
func customerAnswer(accept bool) func(e *env, args []string) error {
	return func(e *env, args []string) error {
		name := map[bool]string{true: "customer accept", false: "customer decline"}[accept]
		fs := e.flags(name)
		pos, err := parse(fs, args, 1, "one proposal id")
		if err != nil {
			return err
		}
		if err := e.connect(); err != nil {
			return err
		}
		var out map[string]any
		if err := e.client.AnswerProposal(e.ctx, pos[0], accept, &out); err != nil {
			return err
		}
		if e.json {
			return e.printJSON(out)
		}
		if !accept {
			fmt.Fprintf(e.out, "proposal %s declined\n", clean(pos[0]))
			return nil
		}
		fmt.Fprintf(e.out, "proposal %s accepted: the change is made\n", clean(pos[0]))
		if sec, ok := out["secret"].(string); ok {
			fmt.Fprintf(e.out, "webhook signing secret (shown once; the receiver verifies webhook-signature with it):\n%s\n", sec)
		}
		return nil
	}
}

func (e *env) staffList(args []string) error {
	fs := e.flags("customer staff list")
	pos, err := parse(fs, args, 1, "one customer name")
	if err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	list, err := e.client.Staff(e.ctx, pos[0])
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(api.StaffList{Staff: list})
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tKEYS\tSINCE")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", clean(s.Name), clean(s.Role), clean(strings.Join(s.Keys, ",")), s.Added.Local().Format(time.DateOnly))
	}
	return tw.Flush()
}

func (e *env) staffAdd(args []string) error {
	fs := e.flags("customer staff add")
	role := fs.String("role", "", "what they do, as the customer reads it (required)")
	var fps listFlag
	fs.Var(&fps, "key", "fingerprint (SHA256:...) of an SSH key they rescue with (repeatable, required)")
	pos, err := parse(fs, args, 2, "a customer name and a staff member's (operator) name")
	if err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	if err := e.client.PutStaff(e.ctx, api.Staff{Customer: pos[0], Name: pos[1], Role: *role, Keys: fps}); err != nil {
		return err
	}
	fmt.Fprintf(e.out, "%s may now be granted customer %s's hosts; the customer has been told\n", clean(pos[1]), clean(pos[0]))
	return nil
}

func (e *env) staffRemove(args []string) error {
	fs := e.flags("customer staff remove")
	pos, err := parse(fs, args, 2, "a customer name and a staff member's name")
	if err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	if err := e.client.RemoveStaff(e.ctx, pos[0], pos[1]); err != nil {
		return err
	}
	fmt.Fprintf(e.out, "%s is off customer %s's list (their open grants there are revoked); the customer has been told\n", clean(pos[1]), clean(pos[0]))
	return nil
}

// rescueApprove approves a grant from the customer's side: it fetches the
// grant's exact text, has ssh-keygen sign it with the customer's key (or
// takes a signature made already), and sends the signature.
func (e *env) rescueApprove(args []string) error {
	fs := e.flags("rescue approve")
	key := fs.String("key", "", "your SSH private key (or its .pub, with the key in ssh-agent); ssh-keygen -Y sign signs with it")
	sigFile := fs.String("signature", "", "a signature made already (ssh-keygen -Y sign -n lifeboat-grant), instead of --key")
	show := fs.Bool("show", false, "print the text to sign and stop")
	pos, err := parse(fs, args, 1, "one grant id")
	if err != nil {
		return err
	}
	if (*key == "") == (*sigFile == "") && !*show {
		return usageError{"rescue approve: want --key FILE or --signature FILE (or --show)"}
	}
	if err := e.connect(); err != nil {
		return err
	}
	c, err := e.client.Consent(e.ctx, pos[0])
	if err != nil {
		return err
	}
	if *show {
		_, err := fmt.Fprint(e.out, c.Text)
		return err
	}
	fmt.Fprintf(e.errw, "approving, with your signature over this text:\n\n%s\n", cleanLines(c.Text))
	var sig []byte
	if *sigFile != "" {
		if sig, err = os.ReadFile(*sigFile); err != nil {
			return usageError{fmt.Sprintf("--signature: %v", err)}
		}
	} else if sig, err = sshSign(e, *key, c.Namespace, c.Text); err != nil {
		return err
	}
	g, err := e.client.ApproveGrant(e.ctx, pos[0], sig)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(g)
	}
	fmt.Fprintf(e.out, "grant %s approved by %s, valid until %s\n", g.ID, clean(g.DecidedBy), g.Until.Local().Format(time.DateTime))
	return nil
}

// sshSign has OpenSSH's ssh-keygen sign text with key in namespace (it
// reaches agents and hardware keys too): the text on stdin, never argv.
func sshSign(e *env, key, namespace, text string) ([]byte, error) {
	cmd := exec.CommandContext(e.ctx, "ssh-keygen", "-q", "-Y", "sign", "-n", namespace, "-f", key)
	cmd.Stdin = strings.NewReader(text)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	sig, err := cmd.Output()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, errors.New("ssh-keygen not found: install OpenSSH's client, or sign elsewhere and pass --signature")
		}
		return nil, fmt.Errorf("ssh-keygen -Y sign: %v: %s", err, clean(strings.TrimSpace(stderr.String())))
	}
	return sig, nil
}
