package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/operator/api"
	"github.com/lifeboat-boot/lifeboat/pxe/store/kind"
)

func (e *env) rescueRequest(args []string) error {
	fs := e.flags("rescue request")
	scope := fs.String("scope", "", "password-reset, shell or console")
	ticket := fs.String("ticket", "", "the support ticket this is for (required)")
	reason := fs.String("reason", "", "why: the customer reads it (required)")
	ttl := fs.Duration("ttl", 2*time.Hour, "how long the grant lasts (at most 8h)")
	keyFile := fs.String("key-file", "", "your SSH public key: the one key the rescue system will let in (required)")
	pos, err := parse(fs, args, 1, "one host name")
	if err != nil {
		return err
	}
	if *keyFile == "" {
		return usageError{"rescue request: --key-file is required (your SSH public key)"}
	}
	keys, err := readKeys(*keyFile)
	if err != nil {
		return err
	}
	if len(keys) != 1 {
		return usageError{fmt.Sprintf("--key-file %s holds %d keys: a grant is for one key", *keyFile, len(keys))}
	}
	if err := e.connect(); err != nil {
		return err
	}
	g, err := e.client.RequestGrant(e.ctx, api.GrantRequest{Host: pos[0], Scope: kind.Scope(*scope), Ticket: *ticket, Reason: *reason, TTL: *ttl, StaffKey: keys[0]})
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(g)
	}
	switch g.State {
	case kind.GrantRequested:
		fmt.Fprintf(e.out, "grant %s requested: %s on %s for ticket %s\nit waits for customer %s's approval (policy %q); they have been sent a link\n",
			g.ID, g.Scope, clean(g.Host), clean(g.Ticket), clean(g.Customer), g.Policy)
	default:
		fmt.Fprintf(e.out, "grant %s %s: %s on %s for ticket %s, until %s\ncustomer %s has been told (policy %q)\n",
			g.ID, g.State, g.Scope, clean(g.Host), clean(g.Ticket), g.Until.Local().Format(time.DateTime), clean(g.Customer), g.Policy)
	}
	if g.ConsoleCode != "" {
		fmt.Fprintf(e.out, "one-time console code: %s\n(shown this once: give it to the technician at the host; typed at its console, it opens one recorded shell)\n", g.ConsoleCode)
	}
	return nil
}

func (e *env) rescueList(args []string) error {
	fs := e.flags("rescue list")
	var f api.GrantFilter
	fs.StringVar(&f.Host, "host", "", "only this host's")
	fs.StringVar(&f.Customer, "customer", "", "only this customer's")
	fs.Func("state", "only grants in this state (requested, approved, active, ended, expired, revoked, denied)", func(v string) error { f.State = kind.GrantState(v); return nil })
	fs.IntVar(&f.Limit, "limit", 50, "at most this many, newest first")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	gs, err := e.client.Grants(e.ctx, f)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(api.GrantList{Grants: gs})
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHOST\tSCOPE\tSTAFF\tTICKET\tSTATE\tUNTIL")
	for _, g := range gs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.ID, clean(g.Host), g.Scope, clean(g.Staff), clean(g.Ticket), g.State, g.Until.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func (e *env) rescueShow(args []string) error {
	fs := e.flags("rescue show")
	pos, err := parse(fs, args, 1, "one grant id")
	if err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	g, err := e.client.Grant(e.ctx, pos[0])
	if err != nil {
		return err
	}
	return e.printGrant(g)
}

func (e *env) printGrant(g *api.Grant) error {
	if e.json {
		return e.printJSON(g)
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "grant:\t%s\n", g.ID)
	fmt.Fprintf(tw, "host:\t%s (customer %s)\n", clean(g.Host), clean(g.Customer))
	fmt.Fprintf(tw, "scope:\t%s\n", g.Scope)
	fmt.Fprintf(tw, "staff:\t%s\n", clean(g.Staff))
	fmt.Fprintf(tw, "ticket:\t%s\n", clean(g.Ticket))
	fmt.Fprintf(tw, "reason:\t%s\n", clean(g.Reason))
	fmt.Fprintf(tw, "valid:\t%s to %s\n", g.From.Local().Format(time.DateTime), g.Until.Local().Format(time.DateTime))
	fmt.Fprintf(tw, "policy:\t%s\n", g.Policy)
	st := string(g.State)
	if g.DecidedBy != "" {
		st += fmt.Sprintf(" (by %s, %s)", clean(g.DecidedBy), g.Decided.Local().Format(time.DateTime))
	}
	fmt.Fprintf(tw, "state:\t%s\n", st)
	return tw.Flush()
}

func (e *env) rescueRevoke(args []string) error {
	fs := e.flags("rescue revoke")
	pos, err := parse(fs, args, 1, "one grant id")
	if err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	g, err := e.client.RevokeGrant(e.ctx, pos[0])
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(g)
	}
	fmt.Fprintf(e.out, "grant %s revoked; customer %s has been told\n", g.ID, clean(g.Customer))
	return nil
}
