package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
)

func (e *env) hostHardware(args []string) error {
	fs := e.flags("host hardware")
	pos, err := parse(fs, args, 1, "one host name")
	if err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	h, err := e.client.Hardware(e.ctx, pos[0])
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(h)
	}
	var r agentapi.Hardware
	if err := json.Unmarshal(h.Report, &r); err != nil {
		return fmt.Errorf("the server's hardware report is not one this CLI reads: %w", err)
	}
	fmt.Fprintf(e.out, "%s: reported by boot %s at %s\n", clean(h.Host), clean(h.Boot), h.Received.Local().Format("2006-01-02 15:04:05 MST"))
	fmt.Fprintf(e.out, "CPU     %d × %s\nmemory  %s\n\n", r.CPU.Count, clean(r.CPU.Model), bytesIEC(r.MemoryBytes))
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NIC\tMAC\tDRIVER\tLINK\tSPEED\tBOOT")
	for _, n := range r.NICs {
		link, speed, boot := "down", "-", ""
		if n.Link {
			link = "up"
		}
		if n.SpeedMbps > 0 {
			speed = fmt.Sprintf("%d Mb/s", n.SpeedMbps)
		}
		if n.Boot {
			boot = "booted from"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", clean(n.Name), clean(n.MAC), clean(n.Driver), link, speed, boot)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(e.out)
	tw = tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DISK\tMODEL\tSERIAL\tSIZE\tKIND\tCONTROLLER\tHEALTH")
	for _, d := range r.Disks {
		kind := "SSD"
		if d.Rotational {
			kind = "HDD"
		}
		health := d.Health
		if health == "" {
			health = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", clean(d.Name), clean(d.Model), clean(d.Serial), bytesIEC(d.Bytes), kind, clean(d.Driver), clean(health))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, u := range r.Unclaimed {
		fmt.Fprintf(e.out, "\nno driver: %s:%s (PCI class %s) %s", clean(u.Vendor), clean(u.Device), clean(u.Class), clean(u.Modalias))
	}
	if len(r.Unclaimed) > 0 {
		fmt.Fprintln(e.out)
	}
	for _, w := range h.Warnings {
		fmt.Fprintf(e.out, "WARNING: %s\n", clean(w))
	}
	return nil
}

// bytesIEC says n in binary units: 512 B, 1.5 GiB, 3.5 TiB.
func bytesIEC(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
