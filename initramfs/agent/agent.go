package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/u-root/u-root/pkg/dhclient"
	"github.com/vishvananda/netlink"
	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// ReadBootParams reads the per-boot parameters iPXE placed in the RAM image
// and removes the file: the token inside is good for one check-in only, and
// nothing else in the image needs it.
func ReadBootParams(path string) (*agentapi.BootParams, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("boot parameters: %w (was the host booted by lifeboatd's iPXE script?)", err)
	}
	_ = os.Remove(path)
	var p agentapi.BootParams
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("boot parameters: %w", err)
	}
	clear(data)
	if p.Server == "" || p.Token == "" || p.Boot == "" {
		return nil, errors.New("boot parameters incomplete")
	}
	return &p, nil
}

// Network brings up the interface with the given MAC (any Ethernet if empty)
// with DHCP and returns its address. With a VLAN tag, DHCP runs on a
// tagged interface on that port instead: the host's boot network is that
// VLAN, and its firmware and iPXE were on the untagged segment only
// because they cannot tag.
func Network(ctx context.Context, mac string, vlan int, log *slog.Logger) (net.IP, error) {
	ifs, err := dhclient.Interfaces("^(eth|en)")
	if err != nil {
		return nil, fmt.Errorf("no network interface: %w (is the NIC driver in the image?)", err)
	}
	found := false
	if mac != "" {
		for _, l := range ifs {
			if l.Attrs().HardwareAddr.String() == mac {
				ifs, found = []netlink.Link{l}, true
				log.Info("bringing up the port this host booted from; a slow link may take up to 30 s", "iface", l.Attrs().Name, "mac", mac, "vlan", vlan)
				break
			}
		}
		if !found {
			log.Warn("no port has the MAC this host booted from; trying every port (is its NIC's driver in the image?)", "mac", mac, "ports", len(ifs))
		}
	}
	if vlan != 0 {
		if !found {
			return nil, fmt.Errorf("the boot network is VLAN %d on the port with MAC %s, and no port has that MAC (is its NIC's driver in the image?)", vlan, mac)
		}
		v, err := tag(ifs[0], vlan)
		if err != nil {
			return nil, err
		}
		ifs = []netlink.Link{v}
	}
	cfg := dhclient.Config{Timeout: 4 * time.Second, Retries: 4, LogLevel: dhclient.LogSummary}
	var last error
	// Links of some 10G/25G cards take up to 30 s to come up.
	for r := range dhclient.SendRequests(ctx, ifs, true, false, cfg, 30*time.Second) {
		if r.Err != nil {
			last = r.Err
			log.Warn("dhcp failed", "iface", r.Interface.Attrs().Name, "err", r.Err)
			continue
		}
		if err := r.Lease.Configure(); err != nil {
			last = err
			continue
		}
		msg, _ := r.Lease.Message()
		if msg != nil {
			log.Info("network up", "iface", r.Interface.Attrs().Name, "ip", msg.YourIPAddr.String())
			return msg.YourIPAddr, nil
		}
	}
	if last == nil {
		last = errors.New("no answer")
	}
	return nil, fmt.Errorf("dhcp: %w", last)
}

// tag makes the VLAN interface for vlan on port (eth0.120), both up. The
// 8021q module loads on demand (request_module) if nothing loaded it.
func tag(port netlink.Link, vlan int) (netlink.Link, error) {
	if err := netlink.LinkSetUp(port); err != nil {
		return nil, fmt.Errorf("port %s up: %w", port.Attrs().Name, err)
	}
	name := fmt.Sprintf("%s.%d", port.Attrs().Name, vlan)
	if len(name) > 15 { // IFNAMSIZ-1
		name = fmt.Sprintf("vlan%d", vlan)
	}
	v := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: port.Attrs().Index}, VlanId: vlan}
	if err := netlink.LinkAdd(v); err != nil {
		return nil, fmt.Errorf("VLAN %d on %s: %w (is 8021q in the image?)", vlan, port.Attrs().Name, err)
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("VLAN %d on %s: %w", vlan, port.Attrs().Name, err)
	}
	return l, nil
}

// HostKey makes this boot's SSH host key. It lives in RAM only and dies with
// the boot.
func HostKey() (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
}

// Agent holds what the boot learned at check-in.
type Agent struct {
	Params *agentapi.BootParams
	Client *agentapi.Client
	Config *agentapi.CheckinResponse
	Log    *slog.Logger

	quietOnce sync.Once
	quiet     chan struct{} // closed by Quiet
}

// Quiet stops the heartbeats and closes the agent's idle connections to
// lifeboatd: nothing of the agent's is on the wire when the host jumps.
func (a *Agent) Quiet() {
	a.quietOnce.Do(func() {
		if a.quiet == nil {
			a.quiet = make(chan struct{})
		}
		close(a.quiet)
	})
	if a.Client != nil && a.Client.HTTP != nil {
		a.Client.HTTP.CloseIdleConnections()
	}
}

func (a *Agent) quieted() <-chan struct{} {
	a.quietOnce.Do(func() { a.quiet = make(chan struct{}) })
	return a.quiet
}

// QuietNetwork takes the host's Ethernet interfaces down. It is the last
// thing before the jump into the OS: the kexec shuts the NIC down, and
// under QEMU a virtio-net NIC with frames still arriving locked a CPU in
// that shutdown (a soft lockup in virtnet_poll, twice in a dozen e2e runs
// once the agent kept a TLS connection and heartbeats to lifeboatd).
func QuietNetwork() error {
	links, err := dhclient.Interfaces("^(eth|en)")
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range links {
		if err := netlink.LinkSetDown(l); err != nil {
			errs = append(errs, fmt.Errorf("%s down: %w", l.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
}

// BusyWait is how long a check-in refused because another agent of the
// host is live keeps trying: past the server's liveness window
// (store.AgentAlive), so that a host restarted while in lifeboat gets in
// once its old agent's heartbeats have stopped.
var BusyWait = 3 * time.Minute

// Checkin trades the boot token for this boot's configuration over TLS
// with the server key the boot parameters pin, retrying a few times on
// network errors (never on a refusal: the token is then dead; never with a
// server that is not the pinned one), and for up to BusyWait while another
// agent of the host is live. trust (ReadTrust) goes with it, for the
// check-in's record and the customer's notice.
func Checkin(ctx context.Context, p *agentapi.BootParams, hostKey ssh.PublicKey, ip net.IP, trust agentapi.BootTrust, log *slog.Logger) (*Agent, error) {
	c, err := agentapi.NewClient(p, &http.Client{Timeout: 15 * time.Second})
	if err != nil {
		return nil, err
	}
	req := agentapi.CheckinRequest{Boot: p.Boot, MAC: p.MAC, HostKey: string(ssh.MarshalAuthorizedKey(hostKey)), IP: ip.String(), Trust: &trust}
	busyUntil := time.Now().Add(BusyWait)
	for i, wait := 0, time.Second; i < 6; i, wait = i+1, wait*2 {
		var resp *agentapi.CheckinResponse
		resp, err = c.Checkin(ctx, p.Token, req)
		if err == nil {
			p.Token = "" // used up
			return &Agent{Params: p, Client: c, Config: resp, Log: log}, nil
		}
		if errors.Is(err, agentapi.ErrBusy) && time.Now().Before(busyUntil) {
			log.Warn("another machine is checked in as this host; the customer has been alarmed. Waiting for it to go", "err", err, "until", busyUntil.Format(time.TimeOnly))
			i, wait = i-1, agentapi.HeartbeatEvery/2 // not counted as a network retry
		} else if errors.Is(err, agentapi.ErrRefused) || errors.Is(err, agentapi.ErrBusy) {
			return nil, err
		} else if errors.Is(err, agentapi.ErrWrongServer) {
			return nil, fmt.Errorf("%w: someone may be between this host and lifeboatd; the boot stops here", err)
		}
		log.Warn("check-in failed, retrying", "err", err, "in", wait.String())
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
	return nil, err
}

// KeepAlive tells the server every agentapi.HeartbeatEvery that this agent
// is up, so that no other machine is certified as this host meanwhile. It
// returns when ctx ends, Quiet is called, or the server says the boot has
// ended.
func (a *Agent) KeepAlive(ctx context.Context) {
	t := time.NewTicker(agentapi.HeartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.quieted():
			return
		case <-t.C:
		}
		err := a.Client.Heartbeat(ctx, a.Config.ReportToken)
		if errors.Is(err, agentapi.ErrRefused) {
			a.Log.Info("heartbeats end: the server says this boot has ended", "err", err)
			return
		}
		if err != nil {
			a.Log.Warn("heartbeat failed", "err", err)
		}
	}
}

// Report records an event with the server, retrying briefly; it returns
// only once the server acknowledged it.
// SendHardware sends the boot's hardware report, trying again on network
// errors; a report that does not reach the server is logged, and the
// boot goes on without it.
func (a *Agent) SendHardware(ctx context.Context, h *agentapi.Hardware) {
	var err error
	for i, wait := 0, time.Second; i < 4; i, wait = i+1, wait*2 {
		if err = a.Client.PutHardware(ctx, a.Config.ReportToken, h); err == nil || errors.Is(err, agentapi.ErrRefused) {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
	if err != nil {
		a.Log.Warn("hardware report not sent", "err", err)
		return
	}
	a.Log.Info("hardware report sent", "nics", len(h.NICs), "disks", len(h.Disks), "unclaimed", len(h.Unclaimed))
}

func (a *Agent) Report(ctx context.Context, code audit.Code, actor string, details map[string]string) error {
	ev := agentapi.EventReport{Code: code, Actor: actor, Details: details}
	var err error
	for i, wait := 0, 500*time.Millisecond; i < 4; i, wait = i+1, wait*2 {
		if err = a.Client.Report(ctx, a.Config.ReportToken, ev); err == nil || errors.Is(err, agentapi.ErrRefused) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	return err
}
