package main

import (
	"cmp"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/operator/api"
	"github.com/lifeboat-boot/lifeboat/pxe/store/kind"
)

func (e *env) customerList(args []string) error {
	fs := e.flags("customer list")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	cs, err := e.client.Customers(e.ctx)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(api.CustomerList{Customers: cs})
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDISPLAY NAME\tE-MAIL")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", clean(c.Name), cmp.Or(clean(c.DisplayName), "-"), cmp.Or(clean(strings.Join(c.Emails, ", ")), "-"))
	}
	return tw.Flush()
}

func (e *env) customerAdd(args []string) error {
	fs := e.flags("customer add")
	display := fs.String("display-name", "", "name shown in notices")
	tz := fs.String("time-zone", "", "IANA time zone for notices and the approval page, e.g. Europe/Berlin")
	var emails, keyFiles listFlag
	fs.Var(&emails, "email", "address for notices (repeatable)")
	fs.Var(&keyFiles, "key-file", "the customer's own SSH public keys, authorized_keys format (repeatable): approvals are signatures by them")
	pos, err := parse(fs, args, 1, "one customer name")
	if err != nil {
		return err
	}
	c := api.Customer{Name: pos[0], DisplayName: *display, Emails: emails, TimeZone: *tz}
	for _, f := range keyFiles {
		k, err := readKeys(f)
		if err != nil {
			return err
		}
		c.Keys = append(c.Keys, k...)
	}
	if err := e.connect(); err != nil {
		return err
	}
	if err := e.client.AddCustomer(e.ctx, c); err != nil {
		return err
	}
	if e.json {
		return e.printJSON(c)
	}
	fmt.Fprintf(e.out, "customer %s added\n", clean(c.Name))
	return nil
}

// customerToken gets a customer their API token: with --key, for a
// challenge signed by their own SSH key (no token needed); else a new one
// with the token given (theirs; an operator's only under the contract).
func (e *env) customerToken(args []string) error {
	fs := e.flags("customer token")
	key := fs.String("key", "", "your SSH private key (or its .pub, with the key in ssh-agent): ssh-keygen -Y sign proves you are the customer")
	pos, err := parse(fs, args, 1, "one customer name")
	if err != nil {
		return err
	}
	var tok string
	if *key != "" {
		c, err := api.NewClient(e.opts.server, "", e.opts.caFile)
		if err != nil {
			return usageError{err.Error()}
		}
		ch, err := c.Challenge(e.ctx, pos[0])
		if err != nil {
			return err
		}
		sig, err := sshSign(e, *key, ch.Namespace, ch.Text)
		if err != nil {
			return err
		}
		if tok, err = c.SignedToken(e.ctx, pos[0], ch.Nonce, sig); err != nil {
			return err
		}
	} else {
		if err := e.connect(); err != nil {
			return err
		}
		if tok, err = e.client.CustomerToken(e.ctx, pos[0]); err != nil {
			return err
		}
	}
	if e.json {
		return e.printJSON(api.Token{Token: tok})
	}
	fmt.Fprintln(e.out, tok)
	fmt.Fprintf(e.errw, "this is customer %s's API token; it is shown once, and the one before no longer works. Keep it in a file only you can read (chmod 600): it acts for you (settings, grants, audit records, recordings).\n", clean(pos[0]))
	return nil
}

func (e *env) webhookAdd(args []string) error {
	fs := e.flags("customer webhook add")
	pos, err := parse(fs, args, 2, "a customer name and a URL")
	if err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	res, err := e.client.AddWebhook(e.ctx, pos[0], pos[1])
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(res)
	}
	fmt.Fprintf(e.out, "webhook %s added for customer %s\nsigning secret (shown once; the receiver verifies webhook-signature with it):\n%s\n",
		res.Webhook.ID, clean(res.Webhook.Customer), res.Secret)
	return nil
}

func (e *env) webhookList(args []string) error {
	fs := e.flags("customer webhook list")
	pos, err := parse(fs, args, 1, "one customer name")
	if err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	ws, err := e.client.Webhooks(e.ctx, pos[0])
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(api.WebhookList{Webhooks: ws})
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tURL\tADDED")
	for _, w := range ws {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", w.ID, clean(w.URL), w.Created.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func (e *env) webhookRemove(args []string) error {
	fs := e.flags("customer webhook remove")
	pos, err := parse(fs, args, 2, "a customer name and a webhook id")
	if err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	if err := e.client.RemoveWebhook(e.ctx, pos[0], pos[1]); err != nil {
		return err
	}
	fmt.Fprintf(e.out, "webhook %s removed\n", clean(pos[1]))
	return nil
}

// customerPolicy lists a customer's grant policies, or sets one.
func (e *env) customerPolicy(args []string) error {
	fs := e.flags("customer policy")
	pos, err := parse(fs, args, -1, "")
	if err != nil {
		return err
	}
	if len(pos) != 1 && len(pos) != 3 {
		return usageError{"customer policy: want NAME, or NAME SCOPE approve|notify"}
	}
	if err := e.connect(); err != nil {
		return err
	}
	if len(pos) == 3 {
		if err := e.client.SetPolicy(e.ctx, pos[0], kind.Scope(pos[1]), kind.Policy(pos[2])); err != nil {
			return err
		}
		fmt.Fprintf(e.out, "customer %s: %s grants now %s\n", clean(pos[0]), clean(pos[1]), map[kind.Policy]string{
			kind.PolicyApprove: "wait for the customer's approval", kind.PolicyNotify: "may be used at once; the customer is told"}[kind.Policy(pos[2])])
		return nil
	}
	ps, err := e.client.Policies(e.ctx, pos[0])
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(api.PolicyList{Policies: ps})
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCOPE\tPOLICY")
	for _, p := range ps {
		note := ""
		if p.Default {
			note = " (default)"
		}
		fmt.Fprintf(tw, "%s\t%s%s\n", p.Scope, p.Policy, note)
	}
	return tw.Flush()
}

// customerAge sets the age key a customer's recordings are sealed to.
func (e *env) customerAge(args []string) error {
	fs := e.flags("customer age-recipient")
	remove := fs.Bool("remove", false, "remove it: recordings from now on are stored in the clear")
	pos, err := parse(fs, args, -1, "NAME and an age recipient (age1...), or NAME --remove")
	if err != nil {
		return err
	}
	recipient := ""
	switch {
	case len(pos) == 2 && !*remove:
		recipient = pos[1]
	case len(pos) == 1 && *remove:
	default:
		return usageError{"customer age-recipient: want NAME age1..., or NAME --remove"}
	}
	if err := e.connect(); err != nil {
		return err
	}
	if err := e.client.SetAgeRecipient(e.ctx, pos[0], recipient); err != nil {
		return err
	}
	if recipient == "" {
		fmt.Fprintf(e.out, "customer %s: new recordings are stored in the clear\n", clean(pos[0]))
	} else {
		fmt.Fprintf(e.out, "customer %s: new recordings of their hosts are sealed to %s; only their key reads them\n", clean(pos[0]), recipient)
	}
	return nil
}
