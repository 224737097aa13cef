package dhcp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"golang.org/x/sys/unix"

	"github.com/lifeboat-boot/lifeboat/pxe/metrics"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// Server answers DHCP on one interface.
type Server struct {
	Iface     string
	Addr      *net.UDPAddr // default 0.0.0.0:67
	Self      Self
	Inventory store.Inventory
	Steps     *store.Steps
	Log       *slog.Logger

	mu          sync.Mutex
	bursts      Bursts               // repeated answers: one record per burst
	lastUnknown map[string]time.Time // rate limit for unknown-MAC log lines
	lastRelay   map[string]time.Time // and for untrusted relays
	archLogged  map[string]bool      // architectures without a loader, logged once each
	srv         *server4.Server
	bootSrv     *server4.Server // port 4011, proxy mode only
	ctx         context.Context // of Serve, for the handler
	ready       chan struct{}
}

// RecvBuffer is the DHCP socket's receive buffer. At the kernel's default
// (208 KiB) a flood of 20,000 packets had 9,000 to 14,000 dropped, and the
// legitimate DISCOVER sent right after it was among the drops in most runs;
// a rack powering on at once is such a burst.
const RecvBuffer = 8 << 20

// SizeRecvBuffer sets conn's receive buffer to n bytes, past the system's
// rmem_max where the process may (SO_RCVBUFFORCE, as root), and returns
// the size the kernel reports (it doubles what it is given, for its own
// bookkeeping).
func SizeRecvBuffer(conn *net.UDPConn, n int) (int, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var got int
	var serr error
	if err := raw.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n); serr != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
		got, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	}); err != nil {
		return 0, err
	}
	if serr == nil && got < n {
		serr = fmt.Errorf("the kernel gave %d bytes (net.core.rmem_max)", got)
	}
	return got, serr
}

// BootServerPort is where UEFI firmware asks a proxyDHCP server for its
// boot file.
const BootServerPort = 4011

// Listen binds the socket to the interface, so that configuration errors
// surface before Serve (and tests can bind inside a network namespace).
func (s *Server) Listen() error {
	addr := s.Addr
	if addr == nil {
		addr = &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort}
	}
	s.ready = make(chan struct{})
	conn, err := server4.NewIPv4UDPConn(s.Iface, addr)
	if err != nil {
		return fmt.Errorf("dhcp: listen on %s %s: %w", s.Iface, addr, err)
	}
	if got, err := SizeRecvBuffer(conn, RecvBuffer); err != nil {
		s.Log.Warn("dhcp: receive buffer not enlarged: a rack-wide burst may be dropped", "want", RecvBuffer, "have", got, "err", err)
	}
	srv, err := server4.NewServer(s.Iface, addr, func(conn net.PacketConn, _ net.Addr, m *dhcpv4.DHCPv4) {
		<-s.ready // Serve has set the context
		s.handle(s.ctx, conn, m)
	}, server4.WithConn(conn))
	if err != nil {
		conn.Close()
		return fmt.Errorf("dhcp: listen on %s %s: %w", s.Iface, addr, err)
	}
	s.srv = srv
	if s.Self.Proxy {
		baddr := &net.UDPAddr{IP: addr.IP, Port: BootServerPort}
		bs, err := server4.NewServer(s.Iface, baddr, func(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
			<-s.ready
			s.handleBootServer(s.ctx, conn, peer, m)
		})
		if err != nil {
			srv.Close()
			return fmt.Errorf("dhcp: listen on %s %s: %w", s.Iface, baddr, err)
		}
		s.bootSrv = bs
	}
	return nil
}

// Serve answers until ctx is done.
func (s *Server) Serve(ctx context.Context) error {
	if s.srv == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	s.ctx = ctx
	close(s.ready)
	mode := "full"
	if s.Self.Proxy {
		mode = "proxy"
	}
	s.Log.Info("dhcp serving", "iface", s.Iface, "mode", mode)
	errc := make(chan error, 2)
	go func() { errc <- s.srv.Serve() }()
	if s.bootSrv != nil {
		go func() { errc <- s.bootSrv.Serve() }()
	}
	flushed := make(chan struct{})
	go func() { defer close(flushed); s.flushBursts(ctx) }()
	select {
	case <-ctx.Done():
		s.srv.Close()
		<-errc
		if s.bootSrv != nil {
			s.bootSrv.Close()
			<-errc
		}
		<-flushed
		return nil
	case err := <-errc:
		return fmt.Errorf("dhcp: %w", err)
	}
}

// flushBursts records the bursts of repeated answers that have ended, and
// at shutdown those still open.
func (s *Server) flushBursts(ctx context.Context) {
	t := time.NewTicker(s.bursts.window() / 2)
	defer t.Stop()
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			now = time.Now().Add(s.bursts.window()) // everything
		case now = <-t.C:
		}
		for _, ev := range s.bursts.Ended(now) {
			if err := s.Steps.Queue(context.WithoutCancel(ctx), ev); err != nil {
				s.Log.Error("dhcp: a burst's record failed", "host", ev.Host, "code", string(ev.Code), "repeats", ev.Details["repeats"], "err", err)
			}
		}
		if ctx.Err() != nil {
			return
		}
	}
}

func (s *Server) handle(ctx context.Context, conn net.PacketConn, req *dhcpv4.DHCPv4) {
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return
	}
	mac := req.ClientHWAddr
	log := s.Log.With("mac", mac.String(), "xid", req.TransactionID.String(), "iface", s.Iface)
	mtype, outcome := msgType(req), "failed"
	defer func() { metrics.DHCPPackets.WithLabelValues(mtype, outcome).Inc() }()
	relayed, trusted := s.Self.Relayed(req)
	if !trusted {
		// The reply would go to whatever giaddr the packet names.
		outcome = "untrusted_relay"
		s.logUntrustedRelay(log, req.GatewayIPAddr.String())
		return
	}
	h, by := Identify(s.Inventory, req, relayed)
	d := Decide(req, h, s.Self)
	if h == nil {
		outcome = "unknown"
		s.logUnknown(log, mac.String())
		return
	}
	log = log.With("host", h.Name, "type", req.MessageType().String(), "firmware", string(d.Kind.Firmware))
	if by != "mac" {
		log = log.With("identified_by", by)
	}
	if d.Reply == nil {
		outcome = "unanswered"
		if d.Kind.Client == store.ClientFirmware && !d.Kind.Known() {
			s.logArchOnce(log, d.Kind.Arch.String(), d.Reason)
			return
		}
		log.Info("dhcp request not answered", "reason", d.Reason)
		return
	}

	var boot *store.Boot
	if req.MessageType() == dhcpv4.MessageTypeDiscover {
		var started bool
		var err error
		boot, started, err = s.Steps.Begin(ctx, h.MAC, h.Name, d.Kind.Client, d.Kind.Firmware,
			audit.Event{Code: audit.BootStart, Actor: "system", Details: map[string]string{"firmware": string(d.Kind.Firmware)}})
		if started {
			metrics.BootsStarted.WithLabelValues(string(d.Kind.Firmware)).Inc()
		}
		if err != nil {
			log.Error("not answering: event log failed", "err", err)
			return
		}
	} else {
		boot, _ = s.Steps.Current(h.MAC)
	}
	bootID := ""
	if boot != nil {
		bootID = boot.ID
		log = log.With("boot", bootID)
	}
	code := audit.DHCPOffer
	if d.Reply.MessageType() != dhcpv4.MessageTypeOffer {
		code = audit.DHCPAck
	}
	details := map[string]string{"type": d.Reply.MessageType().String()}
	if s.Self.Proxy {
		details["mode"] = "proxy"
	} else {
		details["ip"] = d.IP.String()
	}
	if s.Self.VLAN != 0 {
		details["vlan"] = fmt.Sprint(s.Self.VLAN)
	}
	if d.Boot != "" {
		details["boot_file"] = d.Boot
	}
	if d.Kind.Client == store.ClientIPXE {
		details["client"] = "ipxe"
	}
	ev := audit.Event{Code: code, MAC: h.MAC, Host: h.Name, Boot: bootID, Actor: "system", Details: details}
	if s.bursts.Admit(ev, time.Now()) {
		if err := s.Steps.Queue(ctx, ev); err != nil {
			log.Error("not answering: event log failed", "err", err)
			return
		}
	}
	dst := Destination(req)
	if _, err := conn.WriteTo(d.Reply.ToBytes(), dst); err != nil {
		log.Error("dhcp send failed", "dst", dst.String(), "err", err)
		return
	}
	outcome = "answered"
	log.Info("dhcp answered", "reply", d.Reply.MessageType().String(), "ip", d.IP.String(), "boot_file", d.Boot, "reason", d.Reason)
}

// logUntrustedRelay logs a packet naming a relay that is not configured,
// once a minute per giaddr.
func (s *Server) logUntrustedRelay(log *slog.Logger, giaddr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastRelay == nil || len(s.lastRelay) > 4096 {
		s.lastRelay = map[string]time.Time{}
	}
	if t, ok := s.lastRelay[giaddr]; ok && time.Since(t) < time.Minute {
		return
	}
	s.lastRelay[giaddr] = time.Now()
	log.Warn("dhcp: relayed through an address that is not a configured relay (dhcp_relays); not answered", "giaddr", giaddr)
}

// logUnknown logs an unknown MAC at debug level, once a minute per MAC, so a
// busy shared segment cannot flood the log.
func (s *Server) logUnknown(log *slog.Logger, mac string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastUnknown == nil {
		s.lastUnknown = map[string]time.Time{}
	}
	if t, ok := s.lastUnknown[mac]; ok && time.Since(t) < time.Minute {
		return
	}
	if len(s.lastUnknown) > 4096 { // bound memory under a MAC-spoofing flood
		clear(s.lastUnknown)
	}
	s.lastUnknown[mac] = time.Now()
	log.Debug("dhcp: unknown MAC, staying silent")
}

// handleBootServer answers port 4011 (proxy mode): the reply goes back to
// the address the request came from.
func (s *Server) handleBootServer(ctx context.Context, conn net.PacketConn, peer net.Addr, req *dhcpv4.DHCPv4) {
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return
	}
	log := s.Log.With("mac", req.ClientHWAddr.String(), "xid", req.TransactionID.String(), "iface", s.Iface, "port", BootServerPort)
	// The answer goes back to the sender, never to a giaddr; option 82
	// is not trusted here.
	h, _ := Identify(s.Inventory, req, false)
	d := DecideBootServer(req, h, s.Self)
	mtype, outcome := msgType(req), "failed"
	defer func() { metrics.DHCPPackets.WithLabelValues(mtype, outcome).Inc() }()
	if h == nil {
		outcome = "unknown"
		s.logUnknown(log, req.ClientHWAddr.String())
		return
	}
	if d.Reply == nil {
		outcome = "unanswered"
		log.Info("dhcp request not answered", "host", h.Name, "reason", d.Reason)
		return
	}
	bootID := ""
	if b, ok := s.Steps.Current(h.MAC); ok {
		bootID = b.ID
	}
	if err := s.Steps.Queue(ctx, audit.Event{Code: audit.DHCPAck, MAC: h.MAC, Host: h.Name, Boot: bootID, Actor: "system",
		Details: map[string]string{"type": "ACK", "port": "4011", "boot_file": d.Boot}}); err != nil {
		log.Error("not answering: event log failed", "err", err)
		return
	}
	if _, err := conn.WriteTo(d.Reply.ToBytes(), peer); err != nil {
		log.Error("dhcp send failed", "dst", peer.String(), "err", err)
		return
	}
	outcome = "answered"
	log.Info("dhcp answered", "host", h.Name, "boot", bootID, "reply", "ACK", "boot_file", d.Boot)
}

// logArchOnce logs a client architecture lifeboat has no loader for, once
// per architecture: a rack of ARM servers retrying must not flood the log.
func (s *Server) logArchOnce(log *slog.Logger, arch, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.archLogged == nil {
		s.archLogged = map[string]bool{}
	}
	if s.archLogged[arch] {
		return
	}
	s.archLogged[arch] = true
	log.Warn("dhcp: client architecture not supported, not answering (logged once per architecture)", "arch", arch, "reason", reason)
}

// msgType is the metrics label of a request's type: one of a fixed set,
// whatever the packet says.
func msgType(req *dhcpv4.DHCPv4) string {
	switch t := req.MessageType(); t {
	case dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeInform,
		dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeDecline:
		return strings.ToLower(t.String())
	default:
		return "other"
	}
}
