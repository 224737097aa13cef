package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/operator/api"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", clean(b.ID), clean(b.Host), clean(string(b.Firmware)),
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
	fmt.Fprintf(e.out, "boot %s of %s (%s, MAC %s), started %s\n", clean(b.ID), clean(b.Host), clean(string(b.Firmware)), clean(b.MAC),
		b.Started.Local().Format("2006-01-02 15:04:05 MST"))
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tAT\tAFTER START\tSTEP")
	var prev time.Duration
	for _, s := range b.Stages {
		fmt.Fprintf(tw, "%s\t%s\t+%s\t%s\n", clean(s.Stage), s.At.Local().Format("15:04:05.000"), round(s.After), round(s.After-prev))
		prev = s.After
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if b.Trust != "" {
		fmt.Fprintf(e.out, "trust: %s\n", clean(b.Trust))
	}
	for _, w := range b.Warnings {
		fmt.Fprintf(e.out, "WARNING: %s\n", clean(w))
	}
	return nil
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
