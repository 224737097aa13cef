package dhcp

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/lifeboat-boot/lifeboat/pxe/store"
)

// Loaders are the first-stage file names handed to PXE firmware.
type Loaders struct {
	BIOS string // e.g. undionly.kpxe
	UEFI string // e.g. ipxe.efi or snponly.efi
}

// Self describes this server to Decide.
type Self struct {
	IP        netip.Addr
	ScriptURL func(mac net.HardwareAddr) string // iPXE script URL of a host
	// LoaderURL is the HTTP URL of a first-stage loader, for UEFI HTTP
	// boot clients (arch 16), which take a URL instead of a TFTP name.
	LoaderURL func(name string) string
	Loaders   Loaders
	Lease     time.Duration
	// Proxy makes this a proxyDHCP server: the site's own DHCP server hands
	// out addresses; lifeboatd answers PXE clients with boot information
	// only, on port 67 and, for UEFI firmware, on port 4011.
	Proxy bool
	// Relays are the relay agents' addresses (giaddr) lifeboatd answers
	// through. A packet naming any other giaddr gets no answer: anyone on
	// the segment can write a giaddr, and the reply would go there. Only
	// a trusted relay's option 82 identifies a host.
	Relays []netip.Prefix
	// VLAN is the 802.1Q tag of the segment this server answers on (0:
	// the untagged one). A host gets its reservation only on its own
	// VLAN's segment: a machine that spoofs its MAC elsewhere gets none.
	VLAN int
	// FirstStage is the untagged segment's pool for tagged hosts'
	// firmware and iPXE (nil: they are not booted here in full mode).
	FirstStage *Pool
}

// address is what a reply hands out.
type address struct {
	IP      netip.Addr
	Prefix  int
	Gateway netip.Addr
	DNS     []netip.Addr
}

// place decides where h is answered on self's segment: with its
// reservation (on its own VLAN's segment), with a first-stage pool address
// (a tagged host's firmware and iPXE on the untagged segment: they cannot
// tag; the RAM image can, and asks again on the VLAN), or not at all (why
// says why). In proxy mode the site gives the address and a is unused.
func place(h *store.Host, k Kind, self Self) (a address, why string) {
	if h.VLAN == self.VLAN {
		a = address{IP: h.IP, Prefix: h.Prefix, Gateway: h.Gateway, DNS: h.DNS}
		if h.VLAN != 0 && !a.Gateway.IsValid() {
			// The boot and agent listeners are on server_ip, off the
			// VLAN: this server is the way there.
			a.Gateway = self.IP
		}
		return a, ""
	}
	switch {
	case self.VLAN != 0 && h.VLAN == 0:
		return a, fmt.Sprintf("the host boots untagged, not on VLAN %d", self.VLAN)
	case self.VLAN != 0:
		return a, fmt.Sprintf("the host is on VLAN %d, not on VLAN %d", h.VLAN, self.VLAN)
	case k.Client == store.ClientOther:
		// Its RAM image asks on the VLAN: an untagged request for its
		// address is not the host's.
		return a, fmt.Sprintf("the host's RAM image runs on VLAN %d: no address for it untagged", h.VLAN)
	case self.Proxy:
		// The site would give its first stage an address lifeboatd does
		// not know, and could not tie its script fetch to the host.
		return a, fmt.Sprintf("the host is on VLAN %d: a tagged host's first stage needs dhcp_mode full", h.VLAN)
	case self.FirstStage == nil:
		return a, fmt.Sprintf("the host is on VLAN %d: its untagged first stage needs a first_stage_pool", h.VLAN)
	}
	// A lease is the one side effect of a decision: the same MAC keeps
	// its address for the pool's TTL.
	ip, ok := self.FirstStage.Lease(h.MAC)
	if !ok {
		return a, "the first-stage pool is full"
	}
	return address{IP: ip, Prefix: self.FirstStage.Prefix}, ""
}

// Relayed says whether req came through a relay agent (giaddr set), and
// whether that relay is one of s's; a direct packet is trusted (ok).
func (s Self) Relayed(req *dhcpv4.DHCPv4) (relayed, ok bool) {
	if req.GatewayIPAddr == nil || req.GatewayIPAddr.IsUnspecified() {
		return false, true
	}
	a, valid := netip.AddrFromSlice(req.GatewayIPAddr.To4())
	if !valid {
		return true, false
	}
	for _, p := range s.Relays {
		if p.Contains(a) {
			return true, true
		}
	}
	return true, false
}

// Kind says who sent a request, from its options.
type Kind struct {
	Client   store.Client
	Firmware store.Firmware // "" when no option 93 was sent
	Arch     iana.Arch
	HasArch  bool
}

// Known reports whether lifeboat has a first stage for this firmware.
func (k Kind) Known() bool {
	return k.Firmware == store.FirmwareBIOS || k.Firmware == store.FirmwareUEFI || k.Firmware == store.FirmwareUEFIHTTP
}

// Classify reads option 93 (client architecture) and the iPXE markers
// (user class "iPXE", or option 175 with iPXE's feature flags).
func Classify(req *dhcpv4.DHCPv4) Kind {
	var k Kind
	if archs := req.ClientArch(); len(archs) > 0 {
		k.Arch, k.HasArch = archs[0], true
		switch k.Arch {
		case iana.INTEL_X86PC:
			k.Firmware = store.FirmwareBIOS
		case iana.EFI_X86_64, iana.EFI_BC:
			k.Firmware = store.FirmwareUEFI
		case iana.EFI_X86_64_HTTP:
			k.Firmware = store.FirmwareUEFIHTTP
		default:
			k.Firmware = store.Firmware(k.Arch.String())
		}
	}
	switch {
	case isIPXE(req):
		k.Client = store.ClientIPXE
	case k.HasArch:
		k.Client = store.ClientFirmware
	default:
		k.Client = store.ClientOther
	}
	return k
}

func isIPXE(req *dhcpv4.DHCPv4) bool {
	if req.Options.Has(dhcpv4.GenericOptionCode(175)) {
		return true
	}
	for _, uc := range req.UserClass() {
		if uc == "iPXE" {
			return true
		}
	}
	// Some iPXE builds send the user class without the RFC 3004 length
	// prefix; server4 then fails to split it. Look at the raw bytes too.
	raw := req.Options.Get(dhcpv4.OptionUserClassInformation)
	return bytes.Contains(raw, []byte("iPXE"))
}

// Decision is what Decide chose, with the reason for logs.
type Decision struct {
	Reply  *dhcpv4.DHCPv4 // nil: stay silent
	Kind   Kind
	Reason string
	Boot   string     // boot file or URL handed out, if any
	IP     netip.Addr // address handed out (full mode)
}

// Decide builds the answer for a known host's request. A nil host means the
// MAC is not in the inventory: silence.
func Decide(req *dhcpv4.DHCPv4, h *store.Host, self Self) Decision {
	d := Decision{Kind: Classify(req)}
	if h == nil {
		d.Reason = "unknown MAC"
		return d
	}
	addr, why := place(h, d.Kind, self)
	if why != "" {
		d.Reason = why
		return d
	}
	if self.Proxy {
		return decideProxy(req, h, self, d)
	}
	var mt dhcpv4.MessageType
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		mt = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		if sid := req.ServerIdentifier(); sid != nil && !sid.Equal(self.IP.AsSlice()) {
			d.Reason = "client chose another server"
			return d
		}
		want := req.RequestedIPAddress()
		if want == nil || want.IsUnspecified() {
			want = req.ClientIPAddr
		}
		if want != nil && !want.IsUnspecified() && !want.Equal(addr.IP.AsSlice()) {
			mt = dhcpv4.MessageTypeNak
		} else {
			mt = dhcpv4.MessageTypeAck
		}
	default:
		d.Reason = fmt.Sprintf("message type %s not answered", req.MessageType())
		return d
	}

	if mt == dhcpv4.MessageTypeNak {
		r, err := dhcpv4.NewReplyFromRequest(req, dhcpv4.WithMessageType(mt),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(self.IP.AsSlice())))
		if err != nil {
			d.Reason = err.Error()
			return d
		}
		d.Reply, d.Reason = r, fmt.Sprintf("requested address is not the host's %s", addr.IP)
		return d
	}

	// PXE firmware of an architecture we have no loader for gets nothing:
	// an address without a boot file would just make it time out slowly.
	bootFile, ok := bootFileFor(d.Kind, inventoryMAC(h, req), self)
	if !ok {
		d.Reason = fmt.Sprintf("no loader for client architecture %s", d.Kind.Arch)
		return d
	}
	if skipFirstStage(h, d.Kind) {
		// An address, nothing to boot: the firmware moves on to the
		// next boot entry, and in the end to the disk.
		bootFile = ""
	}

	mask := net.CIDRMask(addr.Prefix, 32)
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithYourIP(addr.IP.AsSlice()),
		dhcpv4.WithServerIP(self.IP.AsSlice()),
		dhcpv4.WithNetmask(mask),
		dhcpv4.WithLeaseTime(uint32(self.Lease / time.Second)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(self.IP.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptHostName(h.Name)),
	}
	if addr.Gateway.IsValid() {
		mods = append(mods, dhcpv4.WithRouter(addr.Gateway.AsSlice()))
	}
	if len(addr.DNS) > 0 {
		var dns []net.IP
		for _, a := range addr.DNS {
			dns = append(dns, a.AsSlice())
		}
		mods = append(mods, dhcpv4.WithDNS(dns...))
	}
	if bootFile != "" {
		mods = append(mods,
			dhcpv4.WithOption(dhcpv4.OptTFTPServerName(self.IP.String())),
			dhcpv4.WithOption(dhcpv4.OptBootFileName(bootFile)))
	}
	// No option 60 "PXEClient" in full-DHCP answers: UEFI firmware (EDK2)
	// takes an offer with it but without option 43 for a BINL offer and
	// then waits for a boot server on port 4011; without it the offer is
	// plain DHCP with a boot file, which every PXE client boots. Option 60
	// belongs to proxyDHCP answers.
	if d.Kind.HasArch {
		if uuid := req.GetOneOption(dhcpv4.OptionClientMachineIdentifier); uuid != nil {
			mods = append(mods, dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, uuid)))
		}
	}
	if d.Kind.Firmware == store.FirmwareUEFIHTTP {
		// UEFI HTTP boot takes only offers that echo its vendor class.
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient")))
	}
	r, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		d.Reason = err.Error()
		return d
	}
	// BIOS PXE ROMs read the legacy 'file' header field, not option 67.
	r.BootFileName = bootFile
	echoRelayInfo(req, r)
	d.Reply, d.Boot, d.IP = r, bootFile, addr.IP
	d.Reason = "known host"
	if h.VLAN != self.VLAN {
		d.Reason = fmt.Sprintf("known host, untagged first stage of a boot on VLAN %d", h.VLAN)
	}
	return d
}

// Destination is where a reply must go (RFC 2131 §4.1): to the relay if there
// is one, to the client's address if it has one, else broadcast.
func Destination(req *dhcpv4.DHCPv4) *net.UDPAddr {
	switch {
	case req.GatewayIPAddr != nil && !req.GatewayIPAddr.IsUnspecified():
		return &net.UDPAddr{IP: req.GatewayIPAddr, Port: dhcpv4.ServerPort}
	case req.ClientIPAddr != nil && !req.ClientIPAddr.IsUnspecified():
		return &net.UDPAddr{IP: req.ClientIPAddr, Port: dhcpv4.ClientPort}
	default:
		return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
	}
}

// bootFileFor picks what a client boots next: iPXE gets its script URL,
// PXE firmware its first-stage loader, anything else nothing (ok is false
// only for PXE firmware of an architecture without a loader).
func bootFileFor(k Kind, mac net.HardwareAddr, self Self) (string, bool) {
	switch {
	case k.Client == store.ClientIPXE:
		return self.ScriptURL(mac), true
	case k.Client == store.ClientFirmware && k.Firmware == store.FirmwareBIOS:
		return self.Loaders.BIOS, true
	case k.Client == store.ClientFirmware && k.Firmware == store.FirmwareUEFI:
		return self.Loaders.UEFI, true
	case k.Client == store.ClientFirmware && k.Firmware == store.FirmwareUEFIHTTP && self.LoaderURL != nil:
		return self.LoaderURL(self.Loaders.UEFI), true
	case k.Client == store.ClientFirmware:
		return "", false
	}
	return "", true
}

// pxeVendorBIOS is option 43 for BIOS PXE ROMs: PXE_DISCOVERY_CONTROL (6) =
// 8, "boot file name in the header, skip boot server discovery".
var pxeVendorBIOS = []byte{6, 1, 8, 255}

// decideProxy answers a DISCOVER from a PXE client with boot information and
// no address (PXE spec 2.1, proxyDHCP on port 67). The site's DHCP server
// answers everything else.
func decideProxy(req *dhcpv4.DHCPv4, h *store.Host, self Self, d Decision) Decision {
	if req.MessageType() != dhcpv4.MessageTypeDiscover {
		d.Reason = "proxy mode: only DISCOVERs are answered on port 67"
		return d
	}
	if d.Kind.Client == store.ClientOther {
		d.Reason = "proxy mode: not a PXE client; the site's DHCP server answers it"
		return d
	}
	return proxyReply(req, h, self, d, dhcpv4.MessageTypeOffer)
}

// DecideBootServer answers a REQUEST sent to port 4011: UEFI firmware that
// took a proxy offer without option 43 asks the boot server there for its
// boot file.
func DecideBootServer(req *dhcpv4.DHCPv4, h *store.Host, self Self) Decision {
	d := Decision{Kind: Classify(req)}
	switch {
	case h == nil:
		d.Reason = "unknown MAC"
		return d
	case req.MessageType() != dhcpv4.MessageTypeRequest && req.MessageType() != dhcpv4.MessageTypeInform:
		d.Reason = fmt.Sprintf("port 4011: message type %s not answered", req.MessageType())
		return d
	case d.Kind.Client == store.ClientOther:
		d.Reason = "port 4011: not a PXE client"
		return d
	}
	if _, why := place(h, d.Kind, self); why != "" {
		d.Reason = why
		return d
	}
	return proxyReply(req, h, self, d, dhcpv4.MessageTypeAck)
}

// proxyReply builds a proxyDHCP answer (port 67 OFFER or port 4011 ACK):
// boot information for the host, never an address.
func proxyReply(req *dhcpv4.DHCPv4, h *store.Host, self Self, d Decision, mt dhcpv4.MessageType) Decision {
	if skipFirstStage(h, d.Kind) {
		d.Reason = "disk mode: nothing to boot from the network"
		return d
	}
	bootFile, ok := bootFileFor(d.Kind, inventoryMAC(h, req), self)
	if !ok {
		d.Reason = fmt.Sprintf("no loader for client architecture %s", d.Kind.Arch)
		return d
	}
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithServerIP(self.IP.AsSlice()),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(self.IP.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vendorClass(d.Kind))),
		dhcpv4.WithOption(dhcpv4.OptTFTPServerName(self.IP.String())),
		dhcpv4.WithOption(dhcpv4.OptBootFileName(bootFile)),
	}
	if uuid := req.GetOneOption(dhcpv4.OptionClientMachineIdentifier); uuid != nil {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, uuid)))
	}
	if d.Kind.Firmware == store.FirmwareBIOS && d.Kind.Client == store.ClientFirmware {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, pxeVendorBIOS)))
	}
	r, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		d.Reason = err.Error()
		return d
	}
	r.YourIPAddr = net.IPv4zero // proxy answers never hand out an address
	r.BootFileName = bootFile
	echoRelayInfo(req, r)
	d.Reply, d.Boot, d.Reason = r, bootFile, "known host (proxy)"
	return d
}

func vendorClass(k Kind) string {
	if k.Firmware == store.FirmwareUEFIHTTP {
		return "HTTPClient"
	}
	return "PXEClient"
}

// skipFirstStage: a host in disk mode gets no first stage. An iPXE that is
// already running (an iPXE option ROM) still gets its script, which exits;
// the firmware's own PXE and HTTP boot entries get nothing, or they would
// load iPXE again after every exit and never reach the disk.
func skipFirstStage(h *store.Host, k Kind) bool {
	return h.Mode == store.ModeDisk && k.Client == store.ClientFirmware
}

// Identify finds the host a request comes from: by its MAC, or else by the
// circuit-id its relay added (option 82, sub-option 1), if it came through
// a trusted relay (trustedRelay): a client can put option 82 in its own
// packet, or write a giaddr, and pose as the host on that port.
func Identify(inv store.Inventory, req *dhcpv4.DHCPv4, trustedRelay bool) (*store.Host, string) {
	if h, ok := inv.Lookup(req.ClientHWAddr); ok {
		return h, "mac"
	}
	if rai := req.RelayAgentInfo(); rai != nil && trustedRelay {
		if id := rai.Get(dhcpv4.AgentCircuitIDSubOption); len(id) > 0 {
			if h, ok := inv.LookupCircuit(string(id)); ok {
				return h, "circuit-id"
			}
		}
	}
	return nil, ""
}

// echoRelayInfo copies option 82 into a reply, as RFC 3046 requires of
// servers: the relay strips it and uses it to forward the reply.
func echoRelayInfo(req, r *dhcpv4.DHCPv4) {
	if raw := req.Options.Get(dhcpv4.OptionRelayAgentInformation); raw != nil {
		r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, raw))
	}
}

// inventoryMAC is the MAC the inventory knows the host by: the script URL
// must name it even when the host was identified by its circuit-id.
func inventoryMAC(h *store.Host, req *dhcpv4.DHCPv4) net.HardwareAddr {
	if m, err := net.ParseMAC(h.MAC); err == nil {
		return m
	}
	return req.ClientHWAddr
}
