package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"

	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/pin/tftp/v3"
)

// stormResult is what role-storm and role-copy print.
type stormResult struct {
	Hosts  int
	OK     int
	Bytes  int64
	Wall   time.Duration
	Errors []string
}

func fileSum(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// storm: 200 hosts boot at once against lifeboatd, and against dnsmasq
// with nginx; and the same bytes are copied over plain TCP as the limit.
func (b *bench) storm() error {
	if err := b.site(); err != nil {
		return err
	}
	img := filepath.Join(b.root, "build", "image")
	kSum, kLen, err := fileSum(filepath.Join(img, "vmlinuz"))
	if err != nil {
		return err
	}
	iSum, iLen, err := fileSum(filepath.Join(img, "initramfs.cpio.zst"))
	if err != nil {
		return err
	}
	// The peers' document root: the same kernel and initramfs, and a
	// static iPXE script as a provider would write it.
	www := filepath.Join(b.dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"vmlinuz", "initramfs.cpio.zst"} {
		if err := os.Link(filepath.Join(img, f), filepath.Join(www, f)); err != nil {
			data, rerr := os.ReadFile(filepath.Join(img, f))
			if rerr != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(www, f), data, 0o644); err != nil {
				return err
			}
		}
	}
	script := fmt.Sprintf("#!ipxe\nkernel http://%[1]s:8080/vmlinuz console=ttyS0 initrd=initramfs.cpio.zst\ninitrd http://%[1]s:8080/initramfs.cpio.zst\nboot\n", serverIP)
	if err := os.WriteFile(filepath.Join(www, "boot.ipxe"), []byte(script), 0o644); err != nil {
		return err
	}
	sums := []string{"-kernel", kSum, "-initrd", iSum}
	type run struct{ wall, bytes []float64 }
	runs := map[string]*run{"lifeboatd": {}, "dnsmasq + nginx": {}, "plain TCP copy": {}}
	record := func(name string, r stormResult) error {
		if r.OK != r.Hosts {
			return fmt.Errorf("%s: %d of %d hosts got everything: %v", name, r.OK, r.Hosts, first(r.Errors, 5))
		}
		runs[name].wall = append(runs[name].wall, r.Wall.Seconds())
		runs[name].bytes = append(runs[name].bytes, float64(r.Bytes))
		fmt.Printf("  %-16s %d hosts in %s, %.0f MiB/s\n", name, r.Hosts, r.Wall.Round(time.Millisecond), float64(r.Bytes)/r.Wall.Seconds()/(1<<20))
		return nil
	}
	for range b.rounds {
		// lifeboatd
		p, err := b.lifeboatd("", "")
		if err != nil {
			return err
		}
		var r stormResult
		err = b.client(&r, "role-storm", sums...)
		p.stop()
		if err != nil {
			return fmt.Errorf("lifeboatd: %w", err)
		}
		if err := record("lifeboatd", r); err != nil {
			return err
		}
		// dnsmasq (DHCP + TFTP) with nginx (HTTP)
		d, err := b.dnsmasq(filepath.Join(img, "tftp"))
		if err != nil {
			return err
		}
		n, err := b.nginx(www)
		if err != nil {
			d.stop()
			return err
		}
		r = stormResult{}
		err = b.client(&r, "role-storm", sums...)
		n.stop()
		d.stop()
		if err != nil {
			return fmt.Errorf("dnsmasq + nginx: %w", err)
		}
		if err := record("dnsmasq + nginx", r); err != nil {
			return err
		}
		// The limit: the same bytes over plain TCP, sendfile on the
		// server side, the same hashing on the client side.
		self, _ := os.Executable()
		c, err := b.startProc("copy server", nil, self, "role-copyserver", filepath.Join(img, "tftp", "undionly.kpxe"),
			filepath.Join(img, "vmlinuz"), filepath.Join(img, "initramfs.cpio.zst"))
		if err != nil {
			return err
		}
		if err := b.waitPort(c, "tcp", 9000); err != nil {
			c.stop()
			return err
		}
		r = stormResult{}
		err = b.client(&r, "role-copy", sums...)
		c.stop()
		if err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		if err := record("plain TCP copy", r); err != nil {
			return err
		}
	}
	lw, pw := median(runs["lifeboatd"].wall), median(runs["dnsmasq + nginx"].wall)
	sec := section{
		title:  "Boot storm: 200 hosts at once",
		intro:  fmt.Sprintf("200 simulated hosts start together; each does DHCP as a BIOS PXE client, fetches undionly.kpxe over TFTP, does DHCP again as iPXE, fetches its iPXE script over HTTP, then the kernel (%d bytes) and initramfs (%d bytes) it names (lifeboatd's script also names the per-boot agent archive), each checked by sha256. Wall time until every host has every byte. The limit is a plain TCP copy of the same files to the same 200 clients over the same veth (sendfile on the server, the same hashing on the clients).", kLen, iLen),
		header: []string{"servers", "wall time", "lifeboat / it (time)", "throughput", "share of the copy limit"},
	}
	tput := func(name string) float64 { return median(runs[name].bytes) / median(runs[name].wall) }
	for _, name := range []string{"lifeboatd", "dnsmasq + nginx", "plain TCP copy"} {
		w := median(runs[name].wall)
		sec.rows = append(sec.rows, []string{name, fmt.Sprintf("%.2f s", w), ratio(lw, w), fmt.Sprintf("%.0f MiB/s", tput(name)/(1<<20)),
			fmt.Sprintf("%.0f%%", 100*tput(name)/tput("plain TCP copy"))})
	}
	sec.notes = append(sec.notes, fmt.Sprintf("Goal: wall time ≤ 0.8× dnsmasq + nginx (here %s), and ≥ 80%% of the copy limit (here %.0f%%).",
		ratio(lw, pw), 100*tput("lifeboatd")/tput("plain TCP copy")))
	b.add(sec)
	return nil
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// stormArgs reads -kernel SUM -initrd SUM.
func stormArgs(args []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(args); i += 2 {
		m[args[i]] = args[i+1]
	}
	return m
}

// roleStorm boots nStorm hosts at once from the client namespace and
// prints a stormResult.
func roleStorm(args []string) error {
	want := stormArgs(args)
	return fanOut(func(i int) (int64, error) { return bootHost(i, want) })
}

// fanOut runs work for nStorm clients released together, and prints the
// stormResult: bytes, how many got everything, wall time, errors.
func fanOut(work func(i int) (int64, error)) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	res := stormResult{Hosts: nStorm}
	gate := make(chan struct{})
	for i := range nStorm {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			n, err := work(i)
			mu.Lock()
			defer mu.Unlock()
			res.Bytes += n
			if err != nil {
				res.Errors = append(res.Errors, fmt.Sprintf("host %d: %v", i, err))
				return
			}
			res.OK++
		}()
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	res.Wall = time.Since(start)
	return json.NewEncoder(os.Stdout).Encode(res)
}

var urlRE = regexp.MustCompile(`https?://[^\s]+`)

// bootHost plays host i: DHCP as PXE, TFTP, DHCP as iPXE, script, kernel,
// initrd(s). It returns the bytes it fetched.
func bootHost(i int, want map[string]string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ip := stormIP(i)
	ack, err := dora(ctx, i, false)
	if err != nil {
		return 0, fmt.Errorf("DHCP (PXE): %w", err)
	}
	var total int64
	file := ack.BootFileName
	if file == "" {
		return 0, errors.New("DHCP (PXE): no boot file")
	}
	tc, err := tftp.NewClient(serverIP + ":69")
	if err != nil {
		return 0, err
	}
	// From the host's own address: lifeboatd serves a first stage only
	// to a host whose boot is in progress, known by that address.
	if err := tc.SetLocalAddr(ip); err != nil {
		return 0, err
	}
	tc.SetBlockSize(1468)
	tc.SetTimeout(2 * time.Second)
	tc.SetRetries(10)
	wt, err := tc.Receive(file, "octet")
	if err != nil {
		return 0, fmt.Errorf("TFTP %s: %w", file, err)
	}
	n, err := wt.WriteTo(io.Discard)
	if err != nil {
		return 0, fmt.Errorf("TFTP %s: %w", file, err)
	}
	total += n
	ack, err = dora(ctx, i, true)
	if err != nil {
		return total, fmt.Errorf("DHCP (iPXE): %w", err)
	}
	scriptURL := ack.BootFileName
	if !strings.HasPrefix(scriptURL, "http://") {
		return total, fmt.Errorf("DHCP (iPXE): boot file %q is not a URL", scriptURL)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: d.DialContext, MaxIdleConnsPerHost: 1}}
	body, err := get(ctx, hc, scriptURL, "")
	if err != nil {
		return total, err
	}
	total += int64(len(body))
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	kernelDone := false
	for sc.Scan() {
		line := sc.Text()
		u := urlRE.FindString(line)
		if u == "" {
			continue
		}
		var sum string
		switch {
		case strings.HasPrefix(line, "kernel"):
			sum, kernelDone = want["-kernel"], true
		case strings.HasPrefix(line, "initrd") && strings.Contains(u, "initramfs.cpio"):
			sum = want["-initrd"]
		case strings.HasPrefix(line, "initrd"):
		default:
			continue
		}
		n, err := fetch(ctx, hc, u, sum)
		total += n
		if err != nil {
			return total, err
		}
	}
	if !kernelDone {
		return total, fmt.Errorf("script names no kernel:\n%s", body)
	}
	return total, nil
}

func get(ctx context.Context, hc *http.Client, u, _ string) ([]byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}

// fetch GETs u and checks its sha256 (if sum is set).
func fetch(ctx context.Context, hc *http.Client, u, sum string) (int64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return n, fmt.Errorf("GET %s: %w", u, err)
	}
	if sum != "" && hex.EncodeToString(h.Sum(nil)) != sum {
		return n, fmt.Errorf("GET %s: sha256 mismatch", u)
	}
	return n, nil
}

// dora does one relayed DORA for storm host i (giaddr = its address, so
// the answers come back to its own socket), as a BIOS PXE client or as
// iPXE, and returns the ACK.
func dora(ctx context.Context, i int, ipxe bool) (*dhcpv4.DHCPv4, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(stormIP(i)), Port: 67})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	server := &net.UDPAddr{IP: net.ParseIP(serverIP), Port: 67}
	mods := []dhcpv4.Modifier{dhcpv4.WithHwAddr(stormMAC(i)), dhcpv4.WithGatewayIP(net.ParseIP(stormIP(i))), withHops,
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC))}
	if ipxe {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE")),
			dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(175), []byte{0xb1, 0x05, 0x01, 0x80, 0x86, 0x10, 0x0e})))
	}
	exchange := func(m *dhcpv4.DHCPv4, want dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
		buf := make([]byte, 1500)
		for try := 0; try < 6; try++ {
			if _, err := conn.WriteToUDP(m.ToBytes(), server); err != nil {
				return nil, err
			}
			deadline := time.Now().Add(time.Duration(1<<try) * time.Second)
			for {
				_ = conn.SetReadDeadline(deadline)
				n, _, err := conn.ReadFromUDP(buf)
				if err != nil {
					break // time out: send again
				}
				r, err := dhcpv4.FromBytes(buf[:n])
				if err == nil && r.TransactionID == m.TransactionID && r.MessageType() == want {
					return r, nil
				}
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
		return nil, fmt.Errorf("no %s", want)
	}
	disc, err := dhcpv4.New(append(mods, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover))...)
	if err != nil {
		return nil, err
	}
	offer, err := exchange(disc, dhcpv4.MessageTypeOffer)
	if err != nil {
		return nil, err
	}
	req, err := dhcpv4.NewRequestFromOffer(offer, mods...)
	if err != nil {
		return nil, err
	}
	req.TransactionID = disc.TransactionID
	return exchange(req, dhcpv4.MessageTypeAck)
}

// roleCopyServer serves files over plain TCP on port 9000: a client sends
// one byte, the file's index, and gets the file (sendfile).
func roleCopyServer(args []string) error {
	ln, err := net.Listen("tcp4", serverIP+":9000")
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			var idx [1]byte
			if _, err := io.ReadFull(c, idx[:]); err != nil || int(idx[0]) >= len(args) {
				return
			}
			f, err := os.Open(args[idx[0]])
			if err != nil {
				return
			}
			defer f.Close()
			_, _ = io.Copy(c, f)
		}()
	}
}

// roleCopy fetches undionly.kpxe, the kernel and the initramfs over plain
// TCP for each of nStorm clients at once, hashing as the storm does.
func roleCopy(args []string) error {
	want := stormArgs(args)
	return fanOut(func(i int) (int64, error) {
		var total int64
		for idx, sum := range []string{"", want["-kernel"], want["-initrd"]} {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(stormIP(i))}}
			c, err := d.Dial("tcp4", serverIP+":9000")
			if err != nil {
				return total, err
			}
			_, _ = c.Write([]byte{byte(idx)})
			h := sha256.New()
			n, err := io.Copy(h, c)
			c.Close()
			total += n
			if err != nil {
				return total, err
			}
			if sum != "" && hex.EncodeToString(h.Sum(nil)) != sum {
				return total, errors.New("sha256 mismatch")
			}
		}
		return total, nil
	})
}
