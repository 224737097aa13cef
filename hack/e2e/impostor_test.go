//go:build e2e

package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/iana"
	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/hack/rig"
	"github.com/lifeboat-boot/lifeboat/hack/vm"
	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/keys/agenttls"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/store/sqlite"
)

// TestImpostor: a host boots into lifeboat and waits at the unlock prompt.
// A second machine on the boot bridge (its own namespace, "evil") takes
// the host's IP and MAC and tries, in turn, to fetch the host's script, to
// start a boot of its own through DHCP and check in with its own host key,
// and to report and send heartbeats with a made-up report token. Each gets
// nothing: no token for the running boot, no certificate, no record in the
// host's name but the refusals; the customer's webhook gets the alarm. The
// real customer then unlocks as usual and the OS boots.
func TestImpostor(t *testing.T) {
	t.Parallel()
	h := rig.Host{Name: "target-host", Firmware: "uefi", MAC: "52:54:00:4c:42:60", IP: "10.77.0.60"}
	r := setup(t, rig.Options{Hosts: []rig.Host{h}, API: true})
	recv := customerWebhook(t, r.Rig, h.Name)
	alarms := func() []string {
		var out []string
		for _, d := range recv.Deliveries() {
			var n struct {
				Type string `json:"type"`
				Data struct{ Host, Summary string }
			}
			if json.Unmarshal(d.Body, &n) == nil && n.Type == string(audit.AgentConflict) && n.Data.Host == h.Name {
				out = append(out, n.Data.Summary)
			}
		}
		return out
	}
	var got []string // what each attack got
	r.attack = func(t *testing.T, ctx context.Context, h rig.Host) {
		evil, err := r.NS.AddPeer(r.NS.Name+"-evil", h.IP+"/24")
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			// The impostor leaves; the site forgets where it saw the
			// host's address.
			if err := evil.Close(); err != nil {
				t.Error(err)
			}
			_ = r.NS.Command(context.Background(), "ip", "neigh", "flush", "all").Run()
		}()
		if err := evil.SetMAC(h.MAC); err != nil {
			t.Fatal(err)
		}
		hc := evil.HTTPClient()
		base := fmt.Sprintf("http://%s:8080", rig.ServerIP)
		agentBase := fmt.Sprintf("https://%s:8443", rig.ServerIP)
		get := func(path string) (int, string) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("evil: GET %s: %v", path, err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			return resp.StatusCode, string(b)
		}
		script := "/boot/" + h.MAC + ".ipxe"

		// 1. The script of the host's running boot, from its address.
		code, _ := get(script)
		got = append(got, fmt.Sprintf("script of the running boot: HTTP %d", code))
		if code != http.StatusConflict {
			t.Errorf("evil fetched the running boot's script: HTTP %d, want 409 (one token per boot)", code)
		}

		// 2. A boot of its own: DHCP as the host's PXE firmware.
		err = evil.Do(func() error {
			c, err := nclient4.New("eth0", nclient4.WithTimeout(3*time.Second), nclient4.WithRetry(3))
			if err != nil {
				return err
			}
			defer c.Close()
			lease, err := c.Request(ctx, dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)),
				dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")))
			if err != nil {
				return err
			}
			got = append(got, fmt.Sprintf("DHCP as the host: %s, boot file %s", lease.ACK.YourIPAddr, lease.ACK.BootFileName))
			if !lease.ACK.YourIPAddr.Equal(net.ParseIP(h.IP)) {
				return fmt.Errorf("ACK for %s", lease.ACK.YourIPAddr)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("evil: DHCP as %s: %v", h.MAC, err)
		}
		code, body := get(script)
		m := regexp.MustCompile(`boot (b-[0-9a-f]+): .*?/boot/agent/([A-Za-z0-9_-]+)\.cpio`).FindStringSubmatch(strings.ReplaceAll(body, "\n", " "))
		got = append(got, fmt.Sprintf("script of its own boot: HTTP %d", code))
		if code != http.StatusOK || m == nil {
			t.Fatalf("evil: the new boot's script: HTTP %d\n%s", code, body)
		}
		boot, token := m[1], m[2]

		// 3. Check in with its own host key.
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		spub, _ := ssh.NewPublicKey(pub)
		c := &agentapi.Client{Base: agentBase, HTTP: agentClient(evil)}
		resp, err := c.Checkin(ctx, token, agentapi.CheckinRequest{Boot: boot, MAC: h.MAC, HostKey: string(ssh.MarshalAuthorizedKey(spub)), IP: h.IP})
		got = append(got, fmt.Sprintf("check-in with its own key: %v", err))
		if resp != nil || !errors.Is(err, agentapi.ErrBusy) {
			t.Errorf("evil's check-in = %+v, %v; want no answer and ErrBusy", resp, err)
		}

		// 4. Reports and heartbeats with a report token it made up.
		err = c.Report(ctx, "made-up", agentapi.EventReport{Code: audit.Handoff, Actor: "agent"})
		got = append(got, fmt.Sprintf("report with a made-up token: %v", err))
		if !errors.Is(err, agentapi.ErrRefused) {
			t.Errorf("evil's report = %v, want refused", err)
		}
		err = c.Heartbeat(ctx, "made-up")
		got = append(got, fmt.Sprintf("heartbeat with a made-up token: %v", err))
		if !errors.Is(err, agentapi.ErrRefused) {
			t.Errorf("evil's heartbeat = %v, want refused", err)
		}

		// The customer is alarmed at once.
		waitFor(t, 30*time.Second, func() bool { return len(alarms()) > 0 })
	}
	r.bootAndUnlock(t, h, false)
	t.Logf("what the impostor got:\n  %s", strings.Join(got, "\n  "))
	t.Logf("the customer's alarm: %s", strings.Join(alarms(), "\n"))

	evs, err := sqlite.ReadEvents(r.EventLog)
	if err != nil {
		t.Fatal(err)
	}
	checkins := 0
	for _, e := range evs {
		if e.Code == audit.AgentCheckin && e.Host == h.Name {
			checkins++
		}
		if e.Code == audit.Handoff && e.Host == h.Name && e.Boot == "" {
			t.Errorf("hand-off record without a boot: %+v", e)
		}
	}
	if checkins != 1 {
		t.Errorf("%d check-ins recorded for %s, want the real agent's only", checkins, h.Name)
	}
	if _, err := audit.Verify(evs, audit.Start()); err != nil {
		t.Errorf("the audit chain does not verify: %v", err)
	}
}

// TestAgentChannelMITM: a machine between the host and lifeboatd (here,
// where lifeboatd tells the agents its API is) answers the agent's
// check-in itself, with a TLS key of its own and an answer that would let
// its key in. The agent refuses at the TLS handshake, before it sends
// anything, says why on the console, and the boot stops: no check-in is
// recorded, no certificate made.
func TestAgentChannelMITM(t *testing.T) {
	t.Parallel()
	const mitmIP = "10.77.0.2"
	h := rig.Host{Name: "mitm-host", Firmware: "uefi", MAC: "52:54:00:4c:42:70", IP: "10.77.0.70"}
	r := setup(t, rig.Options{Hosts: []rig.Host{h}, AgentURL: "https://" + mitmIP + ":9443"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if out, err := r.NS.Command(ctx, "ip", "addr", "add", mitmIP+"/24", "dev", "br0").CombinedOutput(); err != nil {
		t.Fatalf("ip addr add: %v\n%s", err, out)
	}
	ln, err := r.NS.Listen(mitmIP + ":9443")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := agenttls.Load(filepath.Join(r.dir, "mitm_key"), netip.MustParseAddr(mitmIP))
	if err != nil {
		t.Fatal(err)
	}
	var seen atomic.Int32
	forged, _ := json.Marshal(agentapi.CheckinResponse{Host: h.Name, Mode: "unlock", ReportToken: "forged",
		AuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEvilEvilEvilEvilEvilEvilEvilEvilEvilEvilEvilEv evil"}})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
		seen.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(forged)
	}), ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.Serve(tls.NewListener(ln, keys.TLSConfig())) }()
	defer srv.Close()

	tap, err := r.NS.AddTap()
	if err != nil {
		t.Fatal(err)
	}
	run := startVM(t, ctx, &vm.Host{Name: h.Name, Firmware: h.Firmware, MAC: h.MAC, Disk: r.disks["two"].Path, MemMiB: 1536, Dir: r.dir}, r.NS, tap)
	defer run.Kill()
	line, err := run.Console.WaitFor(ctx, 8*time.Minute, "lifeboat: FATAL", "is ready for unlock")
	if err != nil || !strings.Contains(line, "FATAL") {
		t.Fatalf("%s: %v %q; want the boot to stop at the check-in\n%s", h.Name, err, line, run.Console.Text())
	}
	t.Logf("%s console: %s", h.Name, line)
	if !strings.Contains(line, "not the lifeboatd this boot was given") {
		t.Errorf("the console does not say what happened: %s", line)
	}
	if n := seen.Load(); n != 0 {
		t.Errorf("the machine in between got %d requests, want none", n)
	}
	evs, err := sqlite.ReadEvents(r.EventLog)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Code == audit.AgentCheckin || e.Code == audit.CheckinRetry {
			t.Errorf("a check-in was recorded: %+v", e)
		}
	}
}

// agentClient is an HTTPS client whose connections the peer makes, and
// which trusts any server: the impostor does not care whom it talks to.
func agentClient(p *vm.Peer) *http.Client {
	hc := p.HTTPClient()
	tr := hc.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	hc.Transport = tr
	return hc
}
