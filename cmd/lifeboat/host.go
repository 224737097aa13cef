package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/lifeboat-boot/lifeboat/pxe/operator/api"
	"github.com/lifeboat-boot/lifeboat/pxe/store/kind"
)

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
		fmt.Fprintf(tw, "%s\t%s\t%s/%d\t%s\t%s\t%d\n", clean(h.Name), mac, h.IP, h.Prefix, clean(string(h.Mode)), cmp.Or(clean(h.Customer), "-"), len(h.AuthorizedKeys))
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
	fmt.Fprintf(tw, "mode:\t%s\n", clean(string(h.Mode)))
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
	if h.VLAN != 0 {
		fmt.Fprintf(tw, "boot network:\tVLAN %d (firmware and iPXE untagged, from the first-stage pool)\n", h.VLAN)
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
	vlan := fs.Int("vlan", 0, "802.1Q tag of the host's boot network; --ip is its address there (0: untagged)")
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
	h := &api.Host{Name: pos[0]}
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
		h.Mode = kind.Mode(*mode)
	}
	if given["vlan"] {
		h.VLAN = *vlan
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

func (e *env) hostReset(args []string) error {
	fs := e.flags("host reset")
	pos, err := parse(fs, args, 1, "one host name")
	if err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	if err := e.client.ResetAgent(e.ctx, pos[0]); err != nil {
		return err
	}
	if !e.json {
		fmt.Fprintf(e.out, "host %s: its lifeboat agent is ended; the next boot is certified at once (the customer has been told)\n", clean(pos[0]))
	}
	return nil
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
	// The file's shape is checked here; its entries by the server, which
	// lists every mistake at once.
	var inv api.HostList
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&inv); err != nil {
		return usageError{fmt.Sprintf("%s: not valid inventory JSON: %v", pos[0], err)}
	}
	if err := e.connect(); err != nil {
		return err
	}
	res, err := e.client.Import(e.ctx, inv.Hosts)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(res)
	}
	fmt.Fprintf(e.out, "imported: %d added, %d updated, %d unchanged\n", res.Added, res.Updated, res.Unchanged)
	return nil
}
