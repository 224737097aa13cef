package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/lifeboat-boot/lifeboat/pxe/operator/api"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

var version = "dev"

// Exit statuses.
const (
	exitOK       = 0
	exitRefused  = 1 // the server said no
	exitUsage    = 2
	exitNoServer = 3 // unreachable, or the token was not accepted
)

const usage = `usage: lifeboat [global flags] COMMAND [flags] [ARGS]

commands:
  whoami                          the operator (or customer) your token belongs to
  host list                       the inventory
  host show NAME                  one host
  host add NAME --mac MAC --ip IP --key-file FILE [flags]
  host set NAME [flags]           change only the fields given
  host remove NAME
  host import FILE                add or replace the hosts of an inventory file (- for stdin), all or none
  customer add NAME [--display-name S] [--email ADDR]...
  customer list
  customer token NAME             issue the customer's own API token (audit records, recordings); revokes the old one
  customer webhook add NAME URL   add a notice webhook; prints its signing secret once
  customer webhook list NAME
  customer webhook remove NAME ID
  customer policy NAME [SCOPE approve|notify]
                                  how the customer's grants are handled, per scope (defaults: shell approve, others notify)
  customer age-recipient NAME age1...|--remove
                                  seal the rescue recordings of the customer's hosts to their age key
  rescue request HOST --scope S --ticket T --reason R --key-file FILE [--ttl 2h]
                                  ask for a rescue grant (password-reset, shell, console) as yourself
  rescue list [--host H] [--state S] | rescue show ID | rescue revoke ID
  recording list                  rescue shells' recordings (a customer: those of your hosts)
  recording play ID [--speed 1] [--identity FILE]
                                  replay one in this terminal (a sealed one with the customer's age key)
  recording get ID [-o FILE] [--identity FILE]
                                  download one (asciicast v2; sealed as stored without --identity)
  audit verify [--customer] [--receipt SEQ:HASH]... [--on-server]
                                  check the tamper-evident audit chain; exit 1 if broken
  audit list [--after SEQ]        the audit records you may read (a customer: your own)
  notices [--customer NAME]       the notice outbox: what was told to whom, and whether it arrived
  ca                              the known_hosts line that makes lifeboat host keys trusted
  boot list [--host NAME] [--limit N]
  boot show ID                    a boot's stages with their timings
  events [--host NAME] [--boot ID] [--after SEQ] [--limit N] [--follow]
  version

Every listing takes --json. 'lifeboat COMMAND --help' shows a command's flags.
Exit status: 0 done, 1 refused by the server, 2 bad usage, 3 server unreachable or token refused.

global flags:
`

type env struct {
	ctx    context.Context
	getenv func(string) string
	stdin  io.Reader
	out    io.Writer
	errw   io.Writer
	json   bool
	client *api.Client
	opts   struct{ server, tokenFile, caFile string }
}

// usageError is a mistake in the command line: exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func cli(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, getenv: getenv, stdin: stdin, out: stdout, errw: stderr}
	fs := flag.NewFlagSet("lifeboat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	defToken := ""
	if home, err := os.UserHomeDir(); err == nil {
		defToken = filepath.Join(home, ".config", "lifeboat", "token")
	}
	fs.StringVar(&e.opts.server, "server", cmp.Or(getenv("LIFEBOAT_SERVER"), "http://127.0.0.1:8081"), "lifeboatd's operator API (env LIFEBOAT_SERVER)")
	fs.StringVar(&e.opts.tokenFile, "token-file", cmp.Or(getenv("LIFEBOAT_TOKEN_FILE"), defToken), "file holding your operator token (env LIFEBOAT_TOKEN_FILE)")
	fs.StringVar(&e.opts.caFile, "ca-file", getenv("LIFEBOAT_CA_FILE"), "PEM certificate(s) to trust for the API's TLS (env LIFEBOAT_CA_FILE)")
	fs.BoolVar(&e.json, "json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	err := e.dispatch(fs.Args())
	if err == nil {
		return exitOK
	}
	var ue usageError
	var ae *api.Error
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "lifeboat: %s\n", err)
		return exitUsage
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, api.ErrUnreachable):
		fmt.Fprintf(stderr, "lifeboat: %s\nhint: is lifeboatd running, and is %s its api_listen address? (--server, LIFEBOAT_SERVER)\n", clean(err.Error()), e.opts.server)
		return exitNoServer
	case errors.As(err, &ae):
		fmt.Fprintf(stderr, "lifeboat: %s\n", clean(ae.Message))
		if ae.Hint != "" {
			fmt.Fprintf(stderr, "hint: %s\n", clean(ae.Hint))
		}
		if ae.Status == 401 || ae.Status == 403 {
			return exitNoServer
		}
		return exitRefused
	case errors.Is(err, errNoToken):
		fmt.Fprintf(stderr, "lifeboat: %s\n", err)
		return exitNoServer
	}
	fmt.Fprintf(stderr, "lifeboat: %s\n", clean(err.Error()))
	return exitRefused
}

var errNoToken = errors.New("no operator token")

// connect reads the token file and makes the client. The token is read
// from a file, never from argv or the environment, where other users and
// crash reports can see it.
func (e *env) connect() error {
	if e.client != nil {
		return nil
	}
	f := e.opts.tokenFile
	if f == "" {
		return fmt.Errorf("%w: set --token-file", errNoToken)
	}
	fi, err := os.Stat(f)
	if err != nil {
		return fmt.Errorf("%w: %v\nhint: an admin on the server runs 'lifeboatd operator add YOURNAME'; save the token it prints in %s (chmod 600)", errNoToken, err, f)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: token file %s can be read by others (mode %04o)\nhint: chmod 600 %s", errNoToken, f, fi.Mode().Perm(), f)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		return fmt.Errorf("%w: %v", errNoToken, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return fmt.Errorf("%w: %s should hold one line, the token", errNoToken, f)
	}
	c, err := api.NewClient(e.opts.server, tok, e.opts.caFile)
	if err != nil {
		return usageError{err.Error()}
	}
	e.client = c
	return nil
}

func (e *env) dispatch(args []string) error {
	cmd, rest := args[0], args[1:]
	sub := ""
	if len(rest) > 0 {
		sub = rest[0]
	}
	switch cmd {
	case "version":
		fmt.Fprintln(e.out, "lifeboat", version)
		return nil
	case "whoami":
		return e.whoami(rest)
	case "host", "hosts":
		switch sub {
		case "list", "ls":
			return e.hostList(rest[1:])
		case "show":
			return e.hostShow(rest[1:])
		case "add":
			return e.hostAddSet(rest[1:], true)
		case "set":
			return e.hostAddSet(rest[1:], false)
		case "remove", "rm":
			return e.hostRemove(rest[1:])
		case "import":
			return e.hostImport(rest[1:])
		}
		return usageError{fmt.Sprintf("host %q: want list, show, add, set, remove or import", sub)}
	case "customer", "customers":
		switch sub {
		case "list", "ls":
			return e.customerList(rest[1:])
		case "add":
			return e.customerAdd(rest[1:])
		case "token":
			return e.customerToken(rest[1:])
		case "webhook", "webhooks":
			return e.webhook(rest[1:])
		case "policy", "policies":
			return e.customerPolicy(rest[1:])
		case "age-recipient":
			return e.customerAge(rest[1:])
		}
		return usageError{fmt.Sprintf("customer %q: want list, add, token, webhook, policy or age-recipient", sub)}
	case "rescue":
		return e.rescue(rest)
	case "recording", "recordings":
		return e.recording(rest)
	case "audit":
		switch sub {
		case "verify":
			return e.auditVerify(rest[1:])
		case "list", "ls":
			return e.auditList(rest[1:])
		}
		return usageError{fmt.Sprintf("audit %q: want verify or list", sub)}
	case "notices", "notice":
		return e.notices(rest)
	case "ca":
		return e.ca(rest)
	case "boot", "boots":
		switch sub {
		case "list", "ls":
			return e.bootList(rest[1:])
		case "show":
			return e.bootShow(rest[1:])
		}
		return usageError{fmt.Sprintf("boot %q: want list or show", sub)}
	case "events", "event":
		return e.events(rest)
	}
	return usageError{fmt.Sprintf("unknown command %q (lifeboat --help lists them)", cmd)}
}

// flags makes a subcommand's flag set; parse accepts the positional
// arguments before or after the flags ("host add web1 --mac ..." reads as
// people type it).
func (e *env) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("lifeboat "+name, flag.ContinueOnError)
	fs.SetOutput(e.errw)
	fs.BoolVar(&e.json, "json", e.json, "print JSON")
	return fs
}

// parse reads flags and npos positional arguments (any number, if npos is
// -1) in any order.
func parse(fs *flag.FlagSet, args []string, npos int, what string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) > 0 {
			pos = append(pos, args[0])
			args = args[1:]
		}
	}
	if npos >= 0 && len(pos) != npos {
		return nil, usageError{fmt.Sprintf("%s: want %s", fs.Name(), what)}
	}
	return pos, nil
}

func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (e *env) whoami(args []string) error {
	fs := e.flags("whoami")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	w, err := e.client.Whoami(e.ctx)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(w)
	}
	if w.Customer != "" {
		fmt.Fprintf(e.out, "customer %s\n", clean(w.Customer))
		return nil
	}
	fmt.Fprintln(e.out, clean(w.Operator))
	return nil
}

func (e *env) hostList(args []string) error {
	fs := e.flags("host list")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	hs, err := e.client.Hosts(e.ctx)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(api.HostList{Hosts: hs})
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMAC\tIP\tMODE\tCUSTOMER\tKEYS")
	for _, h := range hs {
		mac := h.MAC
		if n := len(h.OtherMACs); n > 0 {
			mac += fmt.Sprintf(" (+%d)", n)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s/%d\t%s\t%s\t%d\n", clean(h.Name), mac, h.IP, h.Prefix, clean(h.Mode), cmp.Or(clean(h.Customer), "-"), len(h.AuthorizedKeys))
	}
	return tw.Flush()
}

func (e *env) hostShow(args []string) error {
	fs := e.flags("host show")
	pos, err := parse(fs, args, 1, "one host name")
	if err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	h, err := e.client.Host(e.ctx, pos[0])
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(h)
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "name:\t%s\n", clean(h.Name))
	fmt.Fprintf(tw, "customer:\t%s\n", cmp.Or(clean(h.Customer), "-"))
	fmt.Fprintf(tw, "mode:\t%s\n", clean(h.Mode))
	fmt.Fprintf(tw, "macs:\t%s\n", strings.Join(h.MACs(), ", "))
	fmt.Fprintf(tw, "address:\t%s/%d\n", h.IP, h.Prefix)
	if h.Gateway.IsValid() {
		fmt.Fprintf(tw, "gateway:\t%s\n", h.Gateway)
	}
	if len(h.DNS) > 0 {
		fmt.Fprintf(tw, "dns:\t%s\n", joinAddrs(h.DNS))
	}
	if h.CircuitID != "" {
		fmt.Fprintf(tw, "circuit id:\t%s\n", clean(h.CircuitID))
	}
	for i, k := range h.AuthorizedKeys {
		label := ""
		if i == 0 {
			label = "keys:"
		}
		fmt.Fprintf(tw, "%s\t%s\n", label, clean(k))
	}
	return tw.Flush()
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func (e *env) hostAddSet(args []string, add bool) error {
	name := "host set"
	if add {
		name = "host add"
	}
	fs := e.flags(name)
	mac := fs.String("mac", "", "the boot NIC's MAC")
	var otherMACs, dns, keyFiles listFlag
	fs.Var(&otherMACs, "other-mac", "a further NIC's MAC (repeatable; on set, replaces the list)")
	ip := fs.String("ip", "", "the reserved IPv4 address")
	prefix := fs.Int("prefix", 0, "netmask length (default 24)")
	gw := fs.String("gateway", "", "default gateway")
	fs.Var(&dns, "dns", "DNS server (repeatable; on set, replaces the list)")
	mode := fs.String("mode", "", "unlock or disk")
	customer := fs.String("customer", "", "owning customer")
	circuit := fs.String("circuit-id", "", "relay circuit-id (option 82) that identifies the host")
	fs.Var(&keyFiles, "key-file", "file of the customer's SSH public keys, authorized_keys format (repeatable; on set, replaces the keys)")
	pos, err := parse(fs, args, 1, "one host name")
	if err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if err := e.connect(); err != nil {
		return err
	}
	h := &store.Host{Name: pos[0]}
	if !add {
		if len(given) == 0 || (len(given) == 1 && given["json"]) {
			return usageError{"host set: name at least one field to change (lifeboat host set --help)"}
		}
		if h, err = e.client.Host(e.ctx, pos[0]); err != nil {
			return err
		}
	} else {
		for _, f := range []string{"mac", "ip", "key-file"} {
			if !given[f] {
				return usageError{fmt.Sprintf("host add: --%s is required", f)}
			}
		}
	}
	if given["mac"] {
		h.MAC = *mac
	}
	if given["other-mac"] {
		h.OtherMACs = otherMACs
	}
	if given["ip"] {
		if h.IP, err = netip.ParseAddr(*ip); err != nil {
			return usageError{fmt.Sprintf("--ip %q: want an IPv4 address like 192.0.2.10", *ip)}
		}
	}
	if given["prefix"] {
		h.Prefix = *prefix
	}
	if given["gateway"] {
		if h.Gateway, err = netip.ParseAddr(*gw); err != nil && *gw != "" {
			return usageError{fmt.Sprintf("--gateway %q: want an IPv4 address", *gw)}
		}
	}
	if given["dns"] {
		h.DNS = nil
		for _, d := range dns {
			a, err := netip.ParseAddr(d)
			if err != nil {
				return usageError{fmt.Sprintf("--dns %q: want an IPv4 address", d)}
			}
			h.DNS = append(h.DNS, a)
		}
	}
	if given["mode"] {
		h.Mode = *mode
	}
	if given["customer"] {
		h.Customer = *customer
	}
	if given["circuit-id"] {
		h.CircuitID = *circuit
	}
	if given["key-file"] {
		h.AuthorizedKeys = nil
		for _, f := range keyFiles {
			keys, err := readKeys(f)
			if err != nil {
				return err
			}
			h.AuthorizedKeys = append(h.AuthorizedKeys, keys...)
		}
	}
	if add {
		err = e.client.AddHost(e.ctx, h)
	} else {
		err = e.client.SetHost(e.ctx, h)
	}
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(h)
	}
	verb := "changed"
	if add {
		verb = "added"
	}
	fmt.Fprintf(e.out, "host %s %s\n", clean(h.Name), verb)
	return nil
}

// readKeys reads an authorized_keys file: one key a line, comments and
// blank lines skipped. The server checks each key.
func readKeys(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usageError{fmt.Sprintf("--key-file: %v", err)}
	}
	var keys []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.Contains(line, "PRIVATE KEY") {
			return nil, usageError{fmt.Sprintf("--key-file %s is a private key: give the public one (.pub)", path)}
		}
		keys = append(keys, line)
	}
	if len(keys) == 0 {
		return nil, usageError{fmt.Sprintf("--key-file %s holds no key", path)}
	}
	return keys, nil
}

func (e *env) hostRemove(args []string) error {
	fs := e.flags("host remove")
	pos, err := parse(fs, args, 1, "one host name")
	if err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	if err := e.client.RemoveHost(e.ctx, pos[0]); err != nil {
		return err
	}
	if !e.json {
		fmt.Fprintf(e.out, "host %s removed\n", clean(pos[0]))
	}
	return nil
}

func (e *env) hostImport(args []string) error {
	fs := e.flags("host import")
	pos, err := parse(fs, args, 1, "one inventory file (- for standard input)")
	if err != nil {
		return err
	}
	var data []byte
	if pos[0] == "-" {
		data, err = io.ReadAll(io.LimitReader(e.stdin, 8<<20))
	} else {
		data, err = os.ReadFile(pos[0])
	}
	if err != nil {
		return usageError{err.Error()}
	}
	// Checked here first, so that every mistake in the file is listed
	// before anything is sent; the server checks again.
	inv, err := store.ParseInventory(data)
	if err != nil {
		return usageError{fmt.Sprintf("%s: %v", pos[0], err)}
	}
	if err := e.connect(); err != nil {
		return err
	}
	res, err := e.client.Import(e.ctx, inv.Hosts())
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(res)
	}
	fmt.Fprintf(e.out, "imported: %d added, %d updated, %d unchanged\n", res.Added, res.Updated, res.Unchanged)
	return nil
}

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
	var emails listFlag
	fs.Var(&emails, "email", "address for notices (repeatable)")
	pos, err := parse(fs, args, 1, "one customer name")
	if err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	c := store.Customer{Name: pos[0], DisplayName: *display, Emails: emails}
	if err := e.client.AddCustomer(e.ctx, c); err != nil {
		return err
	}
	if e.json {
		return e.printJSON(c)
	}
	fmt.Fprintf(e.out, "customer %s added\n", clean(c.Name))
	return nil
}

func (e *env) bootList(args []string) error {
	fs := e.flags("boot list")
	host := fs.String("host", "", "only this host's boots")
	limit := fs.Int("limit", 20, "at most this many, newest first")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	bs, err := e.client.Boots(e.ctx, *host, *limit)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(api.BootList{Boots: bs})
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BOOT\tHOST\tFIRMWARE\tSTARTED\tSTAGE\tTOOK")
	for _, b := range bs {
		took := "-"
		if n := len(b.Stages); n > 0 {
			took = round(b.Stages[n-1].After)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", clean(b.ID), clean(b.Host), clean(b.Firmware),
			b.Started.Local().Format("2006-01-02 15:04:05"), clean(b.Stage), took)
	}
	return tw.Flush()
}

func (e *env) bootShow(args []string) error {
	fs := e.flags("boot show")
	pos, err := parse(fs, args, 1, "one boot id (lifeboat boot list shows them)")
	if err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	b, err := e.client.Boot(e.ctx, pos[0])
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(b)
	}
	fmt.Fprintf(e.out, "boot %s of %s (%s, MAC %s), started %s\n", clean(b.ID), clean(b.Host), clean(b.Firmware), clean(b.MAC),
		b.Started.Local().Format("2006-01-02 15:04:05 MST"))
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tAT\tAFTER START\tSTEP")
	var prev time.Duration
	for _, s := range b.Stages {
		fmt.Fprintf(tw, "%s\t%s\t+%s\t%s\n", clean(s.Stage), s.At.Local().Format("15:04:05.000"), round(s.After), round(s.After-prev))
		prev = s.After
	}
	return tw.Flush()
}

func round(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

func (e *env) events(args []string) error {
	fs := e.flags("events")
	var q api.EventQuery
	fs.StringVar(&q.Host, "host", "", "only this host's events")
	fs.StringVar(&q.Boot, "boot", "", "only this boot's events")
	fs.Int64Var(&q.After, "after", 0, "only events after this sequence number")
	fs.IntVar(&q.Limit, "limit", 100, "at most this many (without --follow)")
	follow := fs.Bool("follow", false, "keep printing new events as they are written (until interrupted)")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	enc := json.NewEncoder(e.out)
	show := func(ev audit.Event) error {
		if e.json {
			return enc.Encode(ev) // one object a line: easy to pipe into jq
		}
		_, err := fmt.Fprintln(e.out, eventLine(ev))
		return err
	}
	if *follow {
		q.Limit = 0
		err := e.client.Follow(e.ctx, q, show)
		if errors.Is(err, context.Canceled) {
			return nil // interrupted: the normal way to stop following
		}
		return err
	}
	l, err := e.client.Events(e.ctx, q)
	if err != nil {
		return err
	}
	for _, ev := range l.Events {
		if err := show(ev); err != nil {
			return err
		}
	}
	return nil
}

// eventLine is one event on one line: seq, time, code, host, boot, actor,
// then the details as sorted key=value pairs.
func eventLine(ev audit.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%6d  %s  %-22s %-12s %-20s %s", ev.Seq, ev.Time.Local().Format("2006-01-02 15:04:05"),
		clean(string(ev.Code)), cmp.Or(clean(ev.Host), "-"), cmp.Or(clean(ev.Boot), "-"), cmp.Or(clean(ev.Actor), "-"))
	keys := make([]string, 0, len(ev.Details))
	for k := range ev.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := ev.Details[k]
		if strings.ContainsAny(v, " \"") {
			v = strconv.Quote(v)
		}
		fmt.Fprintf(&b, " %s=%s", clean(k), clean(v))
	}
	return b.String()
}

// clean makes text from the server safe for a terminal: control
// characters (escape sequences) are shown escaped, never sent raw.
func clean(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}
