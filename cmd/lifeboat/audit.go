package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/operator/api"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// errBroken is a chain that did not verify: exit 1, after the report.
var errBroken = errors.New("the audit chain does not verify")

// auditVerify reads the chain page by page and checks it here, with the
// same code the server uses: trust in the result does not rest on the
// server. A customer's token gets their own records in full and every other
// record as its digest, which is enough to check every link.
func (e *env) auditVerify(args []string) error {
	fs := e.flags("audit verify")
	asCustomer := fs.Bool("customer", false, "verify with a customer's token: your records in full, others by digest")
	onServer := fs.Bool("on-server", false, "have lifeboatd check its own copy instead (operators)")
	var receiptArgs listFlag
	fs.Var(&receiptArgs, "receipt", "SEQ:HASH from a notice: the log must still hold that record unchanged (repeatable)")
	pinned := fs.String("audit-key", "", "lifeboatd's audit key (base64, from 'lifeboat audit key'), pinned: checkpoints must be signed by it, not by whatever key the server names now")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	var receipts []audit.Receipt
	for _, a := range receiptArgs {
		r, err := audit.ParseReceipt(a)
		if err != nil {
			return usageError{err.Error()}
		}
		receipts = append(receipts, r)
	}
	if err := e.connect(); err != nil {
		return err
	}
	who, err := e.client.Whoami(e.ctx)
	if err != nil {
		return err
	}
	switch {
	case *asCustomer && who.Customer == "":
		return usageError{"--customer: this token is an operator's; a customer gets theirs with 'lifeboat customer token NAME --key FILE'"}
	case !*asCustomer && who.Customer != "":
		return usageError{"this token is customer " + who.Customer + "'s: add --customer"}
	}
	// Signed checkpoints: each must carry lifeboatd's audit key's
	// signature, and the chain must pass through it.
	var cps []audit.Checkpoint
	if !*onServer {
		if cps, err = e.checkpoints(*pinned); err != nil {
			return err
		}
	}
	var res api.Verification
	start := time.Now()
	mine := 0
	if *onServer {
		if res, err = e.client.VerifyOnServer(e.ctx, receipts); err != nil {
			return err
		}
	} else {
		var err error
		res.Head, res.Records, err = audit.VerifyPagesAt(func(after int64) ([]audit.Event, error) {
			recs, err := e.client.AuditRecords(e.ctx, after, 10000)
			for _, r := range recs {
				if !r.Redacted() {
					mine++
				}
			}
			return recs, err
		}, cps, receipts...)
		var bad *audit.BadRecord
		switch {
		case errors.As(err, &bad):
			res.BadRecord, res.Reason = bad.Seq, bad.Reason
		case err != nil:
			return err
		default:
			res.OK = true
		}
	}
	if e.json {
		if err := e.printJSON(res); err != nil {
			return err
		}
	} else if res.OK {
		fmt.Fprintf(e.out, "audit chain OK: %d records, head %s (checked in %s)\n", res.Records, res.Head, round(time.Since(start)))
		if who.Customer != "" {
			fmt.Fprintf(e.out, "%d of them are yours, read in full; the others were checked by digest\n", mine)
		}
		if len(receipts) > 0 {
			fmt.Fprintf(e.out, "%d receipt(s) match\n", len(receipts))
		}
		if len(cps) > 0 {
			fmt.Fprintf(e.out, "%d signed checkpoint(s) match, the newest at record %d (%s)\n", len(cps), cps[len(cps)-1].Seq, cps[len(cps)-1].Time.Local().Format(time.DateTime))
		}
		fmt.Fprintf(e.out, "keep the head as a receipt: lifeboat audit verify --receipt %s\n", res.Head)
	} else {
		fmt.Fprintf(e.errw, "AUDIT CHAIN BROKEN at record %d: %s\n", res.BadRecord, clean(res.Reason))
		fmt.Fprintf(e.errw, "hint: every record before %d verified; keep a copy of this output and tell the provider's security contact\n", res.BadRecord)
	}
	if !res.OK {
		return errBroken
	}
	return nil
}

// auditList prints the records the token may read in full.
func (e *env) auditList(args []string) error {
	fs := e.flags("audit list")
	after := fs.Int64("after", 0, "only records after this sequence number")
	limit := fs.Int("limit", 1000, "at most this many records read")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	recs, err := e.client.AuditRecords(e.ctx, *after, *limit)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(e.out)
	for _, r := range recs {
		if r.Redacted() {
			continue
		}
		if e.json {
			if err := enc.Encode(r); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(e.out, "%s  receipt %d:%.16s…\n", eventLine(r), r.Seq, r.Hash)
	}
	return nil
}

func (e *env) notices(args []string) error {
	fs := e.flags("notices")
	customer := fs.String("customer", "", "only this customer's")
	limit := fs.Int("limit", 50, "at most this many, newest first")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	ns, err := e.client.Notices(e.ctx, *customer, *limit)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(api.NoticeList{Notices: ns})
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRECORD\tCUSTOMER\tCHANNEL\tTARGET\tSTATE\tTRIES\tLAST ERROR")
	for _, n := range ns {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\n", n.ID, n.Event.Seq, clean(n.Customer), n.Channel, clean(n.Target), n.State, n.Attempts, cmp.Or(clean(n.Error), "-"))
	}
	return tw.Flush()
}

// ca prints the known_hosts line; it needs no token.
func (e *env) ca(args []string) error {
	fs := e.flags("ca")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	ca, err := e.client.CA(e.ctx)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(ca)
	}
	fmt.Fprintln(e.out, ca.KnownHosts)
	return nil
}

// sshConfig prints what a customer's ssh needs: the CA line for
// known_hosts, and the ssh_config lines that refuse the certificates of
// ended boots.
func (e *env) sshConfig(args []string) error {
	fs := e.flags("ssh-config")
	krl := fs.String("krl", "~/.ssh/lifeboat.krl", "where the revocation list is kept (lifeboat krl -o FILE)")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	ca, err := e.client.CA(e.ctx)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(ca)
	}
	fmt.Fprintf(e.out, "# In ~/.ssh/known_hosts: trust the provider's host certificates for its rescue addresses only.\n%s\n", ca.KnownHosts)
	fmt.Fprintf(e.out, "# In ~/.ssh/config: refuse the certificates of boots that have ended.\n")
	fmt.Fprintf(e.out, "# Refresh the list before you connect: lifeboat krl -o %s\n", *krl)
	fmt.Fprintf(e.out, "Host %s\n    RevokedHostKeys %s\n", strings.ReplaceAll(ca.Hosts, ",", " "), *krl)
	return nil
}

// krl writes the revocation list of ended boots' host certificates.
func (e *env) krl(args []string) error {
	fs := e.flags("krl")
	out := fs.String("o", "", "write to this file (replaced whole) instead of standard output")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	k, err := e.client.KRL(e.ctx)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(k)
	}
	if *out == "" {
		_, err := e.out.Write(k.KRL)
		return err
	}
	// ssh reads the file at every connection: never half written.
	tmp := *out + ".tmp"
	if err := os.WriteFile(tmp, k.KRL, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	fmt.Fprintf(e.errw, "%s: %d ended boots' certificates revoked\n", *out, k.Revoked)
	return nil
}

// checkpoints fetches every checkpoint and checks its signature with the
// audit key: the pinned one if given, else the one the server publishes.
func (e *env) checkpoints(pinned string) ([]audit.Checkpoint, error) {
	keyText := pinned
	if keyText == "" {
		k, err := e.client.AuditKey(e.ctx)
		var ae *api.Error
		if errors.As(err, &ae) && ae.Status == 404 {
			return nil, nil // a lifeboatd that signs none
		}
		if err != nil {
			return nil, err
		}
		keyText = k
	}
	key, err := audit.ParseAuditKey(keyText)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	var out []audit.Checkpoint
	for after := int64(0); ; {
		page, err := e.client.Checkpoints(e.ctx, after, 1000)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			return out, nil
		}
		for _, c := range page {
			if err := c.Verify(key); err != nil {
				return nil, fmt.Errorf("AUDIT CHECKPOINT FORGED: %w (someone with the database may have rewritten the log)", err)
			}
		}
		out = append(out, page...)
		after = page[len(page)-1].Seq
	}
}

// auditKey prints the key lifeboatd signs checkpoints with.
func (e *env) auditKey(args []string) error {
	fs := e.flags("audit key")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	k, err := e.client.AuditKey(e.ctx)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(api.AuditKey{Key: k})
	}
	fmt.Fprintln(e.out, k)
	return nil
}
