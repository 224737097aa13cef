package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// perfRates are the offered rates, rising until more than 2.5% is lost.
var perfRates = []int{250, 500, 1000, 2000, 3000, 4000, 6000, 8000, 10000, 12000, 16000, 20000}

// probeRate is the DORA rate of the latency probe: light load, which every
// server here sustains.
const probeRate = 250

type perfStep struct {
	Offered  int
	Achieved float64 // DORA exchanges per second
	Loss     float64 // percent, the worse of DISCOVER-OFFER and REQUEST-ACK
}

var (
	rateRE = regexp.MustCompile(`Rate: ([0-9.]+) 4-way exchanges/second`)
	dropRE = regexp.MustCompile(`drops ratio: ([0-9.]+) %`)
)

// perfdhcp runs one step from the client namespace.
func (b *bench) perfdhcp(rate, secs int) (perfStep, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+30)*time.Second)
	defer cancel()
	out, err := b.cli.Command(ctx, "perfdhcp", "-4", "-l", "eth0", "-r", fmt.Sprint(rate), "-R", fmt.Sprint(nReserve), "-p", fmt.Sprint(secs)).CombinedOutput()
	if err != nil {
		// perfdhcp exits 3 when packets were lost: a result.
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
			return perfStep{}, fmt.Errorf("perfdhcp: %v\n%s", err, out)
		}
	}
	st := perfStep{Offered: rate}
	m := rateRE.FindSubmatch(out)
	if m == nil {
		return st, fmt.Errorf("perfdhcp printed no rate:\n%s", out)
	}
	st.Achieved, _ = strconv.ParseFloat(string(m[1]), 64)
	for _, d := range dropRE.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(d[1]), 64)
		st.Loss = max(st.Loss, v)
	}
	return st, nil
}

type latency struct {
	Sent, Done int
	P50, P99   time.Duration
}

type dhcpResult struct {
	max   float64 // the highest rate sustained with at most 2.5% lost
	steps []perfStep
	lat   latency
}

func (b *bench) dhcp() error {
	if err := b.site(); err != nil {
		return err
	}
	tftpDir := b.root + "/build/image/tftp"
	servers := []struct {
		name  string
		start func() (*proc, error)
	}{
		{"lifeboatd", func() (*proc, error) { return b.lifeboatd("", "") }},
		{"dnsmasq", func() (*proc, error) { return b.dnsmasq(tftpDir) }},
		{"Kea (memfile)", b.kea},
	}
	results := map[string][]dhcpResult{}
	for round := range b.rounds {
		for _, s := range servers {
			p, err := s.start()
			if err != nil {
				return err
			}
			var r dhcpResult
			for _, rate := range perfRates {
				st, err := b.perfdhcp(rate, 5)
				if err != nil {
					p.stop()
					return fmt.Errorf("%s: %w", s.name, err)
				}
				r.steps = append(r.steps, st)
				fmt.Printf("  round %d %-14s offered %5d/s: %7.0f/s, %.2f%% lost\n", round+1, s.name, rate, st.Achieved, st.Loss)
				if st.Loss > 2.5 {
					break
				}
				r.max = st.Achieved
			}
			if err := b.client(&r.lat, "role-dora", "-rate", fmt.Sprint(probeRate), "-seconds", "8"); err != nil {
				p.stop()
				return fmt.Errorf("%s: %w", s.name, err)
			}
			fmt.Printf("  round %d %-14s latency at %d/s: p50 %s, p99 %s, %d of %d answered\n", round+1, s.name, probeRate, r.lat.P50, r.lat.P99, r.lat.Done, r.lat.Sent)
			p.stop()
			results[s.name] = append(results[s.name], r)
		}
	}
	med := func(name string, f func(dhcpResult) float64) float64 {
		var xs []float64
		for _, r := range results[name] {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	maxRate := func(r dhcpResult) float64 { return r.max }
	p50 := func(r dhcpResult) float64 { return float64(r.lat.P50) }
	p99 := func(r dhcpResult) float64 { return float64(r.lat.P99) }
	lb := med("lifeboatd", maxRate)
	sec := section{
		title:  "DHCP: DORA exchanges per second",
		intro:  fmt.Sprintf("perfdhcp (relay mode) offers rising rates (%v/s, 5 s each) until more than 2.5%% of exchanges are lost; the rate is the highest sustained within that. %d reservations; lifeboatd in full mode with its audit chain on: every OFFER and ACK is a record, group-committed; each boot's first record is durable before the OFFER. Latency: our own DORA probe (relayed, whole DORA) at %d exchanges/s for 8 s.", perfRates, nReserve+256+nStorm, probeRate),
		header: []string{"server", "DORA/s (≤2.5% lost)", "lifeboat / it", "p50", "p99"},
	}
	for _, s := range servers {
		v := med(s.name, maxRate)
		sec.rows = append(sec.rows, []string{s.name, fmt.Sprintf("%.0f", v), ratio(lb, v),
			time.Duration(med(s.name, p50)).Round(10 * time.Microsecond).String(), time.Duration(med(s.name, p99)).Round(10 * time.Microsecond).String()})
	}
	sec.notes = append(sec.notes, "Goal: ≥ 1.0× Kea and dnsmasq with the audit chain on.")
	b.add(sec)
	return nil
}

// roleDORA is the latency probe: it plays a relay agent (giaddr = its own
// address) doing whole DORA exchanges for perfdhcp's reserved MACs at a
// fixed rate, and prints the latency percentiles as JSON.
func roleDORA(args []string) error {
	rate, secs := 1000, 5
	for i := 0; i+1 < len(args); i += 2 {
		n, _ := strconv.Atoi(args[i+1])
		switch args[i] {
		case "-rate":
			rate = n
		case "-seconds":
			secs = n
		}
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(clientIP), Port: 67})
	if err != nil {
		return err
	}
	defer conn.Close()
	server := &net.UDPAddr{IP: net.ParseIP(serverIP), Port: 67}
	var mu sync.Mutex
	started := map[dhcpv4.TransactionID]time.Time{}
	var lats []time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			m, err := dhcpv4.FromBytes(buf[:n])
			if err != nil {
				continue
			}
			switch m.MessageType() {
			case dhcpv4.MessageTypeOffer:
				req, err := dhcpv4.NewRequestFromOffer(m, dhcpv4.WithGatewayIP(net.ParseIP(clientIP)), withHops)
				if err != nil {
					continue
				}
				req.TransactionID = m.TransactionID
				_, _ = conn.WriteToUDP(req.ToBytes(), server)
			case dhcpv4.MessageTypeAck:
				mu.Lock()
				if t, ok := started[m.TransactionID]; ok {
					lats = append(lats, time.Since(t))
					delete(started, m.TransactionID)
				}
				mu.Unlock()
			}
		}
	}()
	total := rate * secs
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for i := range total {
		<-tick.C
		d, err := dhcpv4.New(dhcpv4.WithHwAddr(perfMAC(i%nReserve)), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover),
			dhcpv4.WithGatewayIP(net.ParseIP(clientIP)), withHops)
		if err != nil {
			return err
		}
		mu.Lock()
		started[d.TransactionID] = time.Now()
		mu.Unlock()
		if _, err := conn.WriteToUDP(d.ToBytes(), server); err != nil {
			return err
		}
	}
	tick.Stop()
	<-done
	slices.Sort(lats)
	return json.NewEncoder(os.Stdout).Encode(latency{Sent: total, Done: len(lats), P50: percentile(lats, 0.5), P99: percentile(lats, 0.99)})
}

func runRole(role string, args []string) error {
	switch role {
	case "role-dora":
		return roleDORA(args)
	case "role-storm":
		return roleStorm(args)
	case "role-copy":
		return roleCopy(args)
	case "role-unlock":
		return roleUnlock(args)
	case "role-copyserver":
		return roleCopyServer(args)
	}
	return fmt.Errorf("unknown role")
}

// withHops marks a message as relayed once.
func withHops(d *dhcpv4.DHCPv4) { d.HopCount = 1 }
