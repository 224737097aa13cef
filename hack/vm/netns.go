package vm

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/vishvananda/netns"
)

// NS is a network namespace holding a bridge with the server's address.
type NS struct {
	Name   string
	Bridge string
	taps   int
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// NewNS creates namespace name with bridge br0 addressed cidr (e.g.
// 10.77.0.1/24).
func NewNS(name, cidr string) (*NS, error) {
	_ = ip("netns", "del", name) // a leftover from a killed run
	if err := ip("netns", "add", name); err != nil {
		return nil, err
	}
	n := &NS{Name: name, Bridge: "br0"}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0"},
		{"addr", "add", cidr, "dev", "br0"},
		{"link", "set", "br0", "up"},
	} {
		if err := ip(append([]string{"-n", name}, args...)...); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// AddTap makes a tap device on the bridge for one QEMU host.
func (n *NS) AddTap() (string, error) {
	tap := fmt.Sprintf("tap%d", n.taps)
	n.taps++
	for _, args := range [][]string{
		{"tuntap", "add", tap, "mode", "tap"},
		{"link", "set", tap, "master", "br0"},
		{"link", "set", tap, "up"},
	} {
		if err := ip(append([]string{"-n", n.Name}, args...)...); err != nil {
			return "", err
		}
	}
	return tap, nil
}

// Command runs a program inside the namespace.
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Close deletes the namespace and everything in it.
func (n *NS) Close() error {
	return ip("netns", "del", n.Name)
}

// Peer is another namespace on the same bridge: a second machine of the
// site (its own DHCP server, say).
type Peer struct {
	Name string
	ns   string // the site's namespace, where the veth's other end is
	veth string
}

// AddPeer creates namespace peer with interface eth0 addressed cidr,
// plugged into the bridge.
func (n *NS) AddPeer(peer, cidr string) (*Peer, error) {
	_ = ip("netns", "del", peer)
	if err := ip("netns", "add", peer); err != nil {
		return nil, err
	}
	vp := fmt.Sprintf("vp%d", n.taps)
	n.taps++
	p := &Peer{Name: peer, ns: n.Name, veth: vp}
	for _, args := range [][]string{
		{"-n", n.Name, "link", "add", vp, "type", "veth", "peer", "name", "eth0", "netns", peer},
		{"-n", n.Name, "link", "set", vp, "master", "br0"},
		{"-n", n.Name, "link", "set", vp, "up"},
		{"-n", peer, "link", "set", "lo", "up"},
		{"-n", peer, "addr", "add", cidr, "dev", "eth0"},
		{"-n", peer, "link", "set", "eth0", "up"},
	} {
		if err := ip(args...); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

// Command runs a program inside the peer namespace.
func (p *Peer) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", p.Name, name}, args...)...)
}

// Close deletes the peer namespace and waits (10 s at most) until its
// link to the bridge is gone: the kernel tears a namespace down after
// "ip netns del" returns, and until then the peer still answers ARP for
// its address (an impostor's: the host's), and resets the connections
// meant for the host.
func (p *Peer) Close() error {
	if err := ip("netns", "del", p.Name); err != nil {
		return err
	}
	if p.veth == "" {
		return nil
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if exec.Command("ip", "-n", p.ns, "link", "show", p.veth).Run() != nil {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("peer %s: its link %s is still on the bridge 10 s after the namespace was deleted", p.Name, p.veth)
		}
	}
}

// SetMAC gives the peer's eth0 the hardware address mac: a machine posing
// as another.
func (p *Peer) SetMAC(mac string) error {
	for _, args := range [][]string{
		{"-n", p.Name, "link", "set", "eth0", "down"},
		{"-n", p.Name, "link", "set", "eth0", "address", mac},
		{"-n", p.Name, "link", "set", "eth0", "up"},
	} {
		if err := ip(args...); err != nil {
			return err
		}
	}
	return nil
}

// Do runs f on a thread switched into the peer namespace: the sockets f
// opens live there (and keep working there after Do returns).
func (p *Peer) Do(f func() error) error { return inNS(p.Name, f) }

// inNS runs f on a thread switched into namespace name and back.
func inNS(name string, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	h, err := netns.GetFromName(name)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		return err
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		// The thread is in the wrong namespace: never hand it back.
		runtime.Goexit()
	}
	return ferr
}

// HTTPClient is an HTTP client whose connections the peer makes.
func (p *Peer) HTTPClient() *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := p.Do(func() error {
			var err error
			c, err = (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
}

// Listen opens a TCP listener inside the namespace (on one of its
// addresses, or 127.0.0.1 there), for a test server that lifeboatd in the
// namespace must reach. The socket stays in the namespace; the calling
// goroutine's thread is switched there and back.
func (n *NS) Listen(addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNS(n.Name, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// Dial connects from inside the namespace, as a client there would.
func (n *NS) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNS(n.Name, func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}
