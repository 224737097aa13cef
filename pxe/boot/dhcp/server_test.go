package dhcp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vishvananda/netns"

	"github.com/lifeboat-boot/lifeboat/pxe/metrics"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/store/sqlite"
)

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// inNS runs f on a thread switched into namespace name; sockets f opens
// stay in that namespace.
func inNS(t *testing.T, name string, f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		h, err := netns.GetFromName(name)
		if err != nil {
			t.Error(err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			t.Error(err)
			return
		}
		f()
	}()
	<-done
}

// vethServer makes two namespaces joined by a veth pair (server side "vs"
// 10.0.0.2, client side "vc" with the test MAC) and runs a DHCP server on vs.
func vethServer(t *testing.T, proxy bool) (cliNS string, got chan audit.Event) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root for network namespaces (run as root, as make test does)")
	}
	srvNS, cliNS := fmt.Sprintf("lbt-s%d", os.Getpid()), fmt.Sprintf("lbt-c%d", os.Getpid())
	sh(t, "ip", "netns", "add", srvNS)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", srvNS).Run() })
	sh(t, "ip", "netns", "add", cliNS)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", cliNS).Run() })
	sh(t, "ip", "-n", srvNS, "link", "add", "vs", "type", "veth", "peer", "name", "vc", "netns", cliNS)
	sh(t, "ip", "-n", cliNS, "link", "set", "vc", "address", mac.String())
	sh(t, "ip", "-n", srvNS, "addr", "add", "10.0.0.2/24", "dev", "vs")
	sh(t, "ip", "-n", srvNS, "link", "set", "vs", "up")
	sh(t, "ip", "-n", cliNS, "link", "set", "vc", "up")

	inv, err := store.ParseInventory([]byte(`{"hosts":[{"name":"web1","mac":"` + mac.String() + `","ip":"10.0.0.10","gateway":"10.0.0.1",
		"authorized_keys":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl c"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "lifeboat.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Apply(context.Background(), store.Change{Put: inv.Hosts()}, "test"); err != nil {
		t.Fatal(err)
	}
	steps, err := db.NewSteps(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got = make(chan audit.Event, 16)
	db.Subscribe(got)
	s := &Server{Iface: "vs", Self: self, Inventory: db, Steps: steps, Log: slog.New(slog.DiscardHandler)}
	s.Self.IP = netip.MustParseAddr("10.0.0.2")
	s.Self.Proxy = proxy
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	inNS(t, srvNS, func() {
		if err := s.Listen(); err != nil {
			t.Error(err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	go func() { served <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	return cliNS, got
}

// TestServerOverVeth runs the DHCP server and insomniacslk's nclient4 in
// two network namespaces joined by a veth pair: a known host gets its
// reservation with a real broadcast DORA, an unknown one gets nothing.
func TestServerOverVeth(t *testing.T) {
	counted := func(typ, outcome string) float64 {
		return testutil.ToFloat64(metrics.DHCPPackets.WithLabelValues(typ, outcome))
	}
	offers, acks, unknown := counted("discover", "answered"), counted("request", "answered"), counted("discover", "unknown")
	cliNS, got := vethServer(t, false)
	inNS(t, cliNS, func() {
		c, err := nclient4.New("vc", nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(2))
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		lease, err := c.Request(context.Background(), dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)))
		if err != nil {
			t.Errorf("known host: %v", err)
			return
		}
		if !lease.ACK.YourIPAddr.Equal(net.ParseIP("10.0.0.10")) || lease.ACK.BootFileName != "undionly.kpxe" {
			t.Errorf("ACK = %s", lease.ACK.Summary())
		}
	})
	var codes []string
	for len(codes) < 3 {
		select {
		case e := <-got:
			codes = append(codes, string(e.Code))
		case <-time.After(5 * time.Second):
			t.Fatalf("events so far %v", codes)
		}
	}
	if strings.Join(codes, " ") != "boot.start dhcp.offer dhcp.ack" {
		t.Errorf("events = %v", codes)
	}
	// The same exchange again at once (a retry, or a flood of spoofed
	// DISCOVERs for the MAC): answered, but folded into the burst's
	// records instead of two more.
	inNS(t, cliNS, func() {
		c, err := nclient4.New("vc", nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(2))
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		if _, err := c.Request(context.Background(), dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC))); err != nil {
			t.Errorf("the same host again: %v", err)
		}
	})

	// An unknown MAC: the same exchange times out.
	sh(t, "ip", "-n", cliNS, "link", "set", "vc", "address", "52:54:00:99:99:99")
	inNS(t, cliNS, func() {
		c, err := nclient4.New("vc", nclient4.WithTimeout(time.Second), nclient4.WithRetry(1))
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		if _, err := c.DiscoverOffer(context.Background()); err == nil {
			t.Error("unknown MAC got an OFFER")
		}
	})
	select {
	case e := <-got:
		t.Errorf("the repeated exchange wrote a record of its own: %s", e.Code)
	default:
	}
	if counted("discover", "answered")-offers != 2 || counted("request", "answered")-acks != 2 || counted("discover", "unknown")-unknown < 1 {
		t.Errorf("metrics: %v discovers answered, %v requests answered, %v unknown",
			counted("discover", "answered")-offers, counted("request", "answered")-acks, counted("discover", "unknown")-unknown)
	}
}

// TestProxyOverVeth: in proxy mode a PXE client gets boot information and
// no address on port 67, UEFI firmware its boot file on port 4011, and a
// client that is not PXE gets nothing (the site's DHCP server answers it).
func TestProxyOverVeth(t *testing.T) {
	cliNS, _ := vethServer(t, true)
	inNS(t, cliNS, func() {
		c, err := nclient4.New("vc", nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(2))
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		offer, err := c.DiscoverOffer(context.Background(), dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)))
		if err != nil {
			t.Errorf("PXE client: %v", err)
			return
		}
		if !offer.YourIPAddr.IsUnspecified() || offer.BootFileName != "undionly.kpxe" || offer.ClassIdentifier() != "PXEClient" ||
			!offer.Options.Has(dhcpv4.OptionVendorSpecificInformation) {
			t.Errorf("proxy offer = %s", offer.Summary())
		}
		c2, err := nclient4.New("vc", nclient4.WithTimeout(time.Second), nclient4.WithRetry(1))
		if err != nil {
			t.Error(err)
			return
		}
		defer c2.Close()
		if o, err := c2.DiscoverOffer(context.Background()); err == nil {
			t.Errorf("non-PXE client got %s", o.Summary())
		}
	})
	sh(t, "ip", "-n", cliNS, "addr", "add", "10.0.0.77/24", "dev", "vc")
	inNS(t, cliNS, func() {
		conn, err := net.ListenPacket("udp4", "10.0.0.77:0")
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		req, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)), dhcpv4.WithClientIP(net.ParseIP("10.0.0.77")))
		var ack *dhcpv4.DHCPv4
		for try := 0; try < 3 && ack == nil; try++ { // the first packet may race the neighbour entry
			if _, err := conn.WriteTo(req.ToBytes(), &net.UDPAddr{IP: net.ParseIP("10.0.0.2"), Port: BootServerPort}); err != nil {
				t.Error(err)
				return
			}
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 1500)
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				continue
			}
			ack, _ = dhcpv4.FromBytes(buf[:n])
		}
		if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || ack.BootFileName != "ipxe.efi" {
			t.Errorf("port 4011 answer = %v", ack)
		}
	})
}

// TestRecvBuffer: the DHCP socket's receive buffer holds a rack-wide
// burst, past the kernel's default.
func TestRecvBuffer(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got, err := SizeRecvBuffer(conn, RecvBuffer)
	if err != nil || got < RecvBuffer {
		t.Fatalf("receive buffer = %d bytes, %v; want at least %d", got, err, RecvBuffer)
	}
}
