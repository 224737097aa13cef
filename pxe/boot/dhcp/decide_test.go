package dhcp

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/lifeboat-boot/lifeboat/pxe/store"
)

var (
	mac  = net.HardwareAddr{0x52, 0x54, 0, 1, 2, 3}
	host = &store.Host{Name: "web1", MAC: mac.String(), IP: netip.MustParseAddr("10.0.0.10"), Prefix: 24,
		Gateway: netip.MustParseAddr("10.0.0.1"), DNS: []netip.Addr{netip.MustParseAddr("10.0.0.53")}, Mode: store.ModeUnlock}
	self = Self{IP: netip.MustParseAddr("10.0.0.2"), Lease: time.Hour,
		ScriptURL: func(m net.HardwareAddr) string { return "http://10.0.0.2:8080/boot/" + m.String() + ".ipxe" },
		LoaderURL: func(n string) string { return "http://10.0.0.2:8080/loaders/" + n },
		Loaders:   Loaders{BIOS: "undionly.kpxe", UEFI: "ipxe.efi"}}
)

func discover(t *testing.T, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.NewDiscovery(mac, mods...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func arch(a iana.Arch) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptClientArch(a))
}

func ipxeUC() dhcpv4.Modifier { return dhcpv4.WithUserClass("iPXE", true) }

func TestDecideBootFile(t *testing.T) {
	tests := []struct {
		name     string
		mods     []dhcpv4.Modifier
		h        *store.Host
		wantFile string
		silent   bool
		client   store.Client
	}{
		{"unknown MAC is silent", []dhcpv4.Modifier{arch(iana.INTEL_X86PC)}, nil, "", true, store.ClientFirmware},
		{"BIOS PXE gets undionly", []dhcpv4.Modifier{arch(iana.INTEL_X86PC)}, host, "undionly.kpxe", false, store.ClientFirmware},
		{"UEFI x64 gets ipxe.efi", []dhcpv4.Modifier{arch(iana.EFI_X86_64)}, host, "ipxe.efi", false, store.ClientFirmware},
		{"UEFI BC (arch 9) gets ipxe.efi", []dhcpv4.Modifier{arch(iana.EFI_BC)}, host, "ipxe.efi", false, store.ClientFirmware},
		{"iPXE gets the script, never a loader again", []dhcpv4.Modifier{arch(iana.INTEL_X86PC), ipxeUC()}, host, "http://10.0.0.2:8080/boot/52:54:00:01:02:03.ipxe", false, store.ClientIPXE},
		{"iPXE by option 175", []dhcpv4.Modifier{arch(iana.EFI_X86_64), dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(175), []byte{1, 1, 1}))}, host, "http://10.0.0.2:8080/boot/52:54:00:01:02:03.ipxe", false, store.ClientIPXE},
		{"ARM64 firmware: no loader, silent", []dhcpv4.Modifier{arch(iana.EFI_ARM64)}, host, "", true, store.ClientFirmware},
		{"agent (no PXE options) gets an address only", nil, host, "", false, store.ClientOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(discover(t, tt.mods...), tt.h, self)
			if d.Kind.Client != tt.client {
				t.Errorf("client = %v, want %v", d.Kind.Client, tt.client)
			}
			if tt.silent {
				if d.Reply != nil {
					t.Fatalf("Decide answered %v, want silence", d.Reply.Summary())
				}
				return
			}
			if d.Reply == nil {
				t.Fatalf("Decide = silent (%s), want an answer", d.Reason)
			}
			r := d.Reply
			if got := r.MessageType(); got != dhcpv4.MessageTypeOffer {
				t.Errorf("type = %v, want OFFER", got)
			}
			if got := r.BootFileNameOption(); got != tt.wantFile {
				t.Errorf("option 67 = %q, want %q", got, tt.wantFile)
			}
			if r.BootFileName != tt.wantFile {
				t.Errorf("file header = %q, want %q", r.BootFileName, tt.wantFile)
			}
			if !r.YourIPAddr.Equal(net.ParseIP("10.0.0.10")) {
				t.Errorf("yiaddr = %v", r.YourIPAddr)
			}
			if got := r.SubnetMask().String(); got != "ffffff00" {
				t.Errorf("mask = %v", got)
			}
			if got := r.Router(); len(got) != 1 || !got[0].Equal(net.ParseIP("10.0.0.1")) {
				t.Errorf("router = %v", got)
			}
			if !r.ServerIdentifier().Equal(net.ParseIP("10.0.0.2")) {
				t.Errorf("server id = %v", r.ServerIdentifier())
			}
			if got := r.HostName(); got != "web1" {
				t.Errorf("hostname = %q", got)
			}
			if r.ClassIdentifier() != "" {
				t.Errorf("class id = %q: a full-DHCP offer with PXEClient makes EDK2 wait for a BINL server", r.ClassIdentifier())
			}
		})
	}
}

func TestDecideRequest(t *testing.T) {
	req := func(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest)}, mods...)...)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name string
		m    *dhcpv4.DHCPv4
		want dhcpv4.MessageType // 0 = silent
	}{
		{"request for the reservation is ACKed", req(dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.10"))), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.0.0.2")))), dhcpv4.MessageTypeAck},
		{"renewal from ciaddr is ACKed", req(dhcpv4.WithClientIP(net.ParseIP("10.0.0.10"))), dhcpv4.MessageTypeAck},
		{"another address is NAKed", req(dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.99")))), dhcpv4.MessageTypeNak},
		{"another server chosen: silent", req(dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.0.0.3")))), 0},
		{"release: silent", func() *dhcpv4.DHCPv4 {
			m := req()
			m.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRelease))
			return m
		}(), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.m, host, self)
			if tt.want == 0 {
				if d.Reply != nil {
					t.Fatalf("answered %v, want silence", d.Reply.MessageType())
				}
				return
			}
			if d.Reply == nil || d.Reply.MessageType() != tt.want {
				t.Fatalf("Decide = %+v, want %v", d, tt.want)
			}
		})
	}
}

func TestDestination(t *testing.T) {
	m := discover(t)
	if got := Destination(m).String(); got != "255.255.255.255:68" {
		t.Errorf("no ciaddr: %s, want broadcast", got)
	}
	m.ClientIPAddr = net.ParseIP("10.0.0.10")
	if got := Destination(m).String(); got != "10.0.0.10:68" {
		t.Errorf("ciaddr: %s", got)
	}
	m.GatewayIPAddr = net.ParseIP("10.9.0.1")
	if got := Destination(m).String(); got != "10.9.0.1:67" {
		t.Errorf("relay: %s", got)
	}
}

// FuzzDecide feeds arbitrary packets through the parser and the decision:
// nothing may panic, and an answer always goes to the reserved address.
func FuzzDecide(f *testing.F) {
	for _, a := range []iana.Arch{iana.INTEL_X86PC, iana.EFI_X86_64} {
		m, _ := dhcpv4.NewDiscovery(mac, dhcpv4.WithOption(dhcpv4.OptClientArch(a)), dhcpv4.WithUserClass("iPXE", true))
		f.Add(m.ToBytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		d := Decide(m, host, self)
		if d.Reply != nil && d.Reply.MessageType() != dhcpv4.MessageTypeNak && !d.Reply.YourIPAddr.Equal(net.ParseIP("10.0.0.10")) {
			t.Fatalf("answer with yiaddr %v", d.Reply.YourIPAddr)
		}
		_ = Destination(m)
	})
}

func TestDecideProxy(t *testing.T) {
	px := self
	px.Proxy = true
	uuid := dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}))
	tests := []struct {
		name     string
		m        *dhcpv4.DHCPv4
		wantFile string
		opt43    bool
		silent   bool
	}{
		{"BIOS PXE: file in header, option 43 skips discovery", discover(t, arch(iana.INTEL_X86PC), uuid), "undionly.kpxe", true, false},
		{"UEFI PXE: no option 43 (asks port 4011)", discover(t, arch(iana.EFI_X86_64), uuid), "ipxe.efi", false, false},
		{"iPXE: the script URL", discover(t, arch(iana.INTEL_X86PC), ipxeUC()), "http://10.0.0.2:8080/boot/52:54:00:01:02:03.ipxe", false, false},
		{"non-PXE client: the site's DHCP answers", discover(t), "", false, true},
		{"REQUEST on 67: the site's DHCP answers", func() *dhcpv4.DHCPv4 {
			m := discover(t, arch(iana.INTEL_X86PC))
			m.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
			return m
		}(), "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.m, host, px)
			if tt.silent {
				if d.Reply != nil {
					t.Fatalf("answered %v, want silence", d.Reply.Summary())
				}
				return
			}
			r := d.Reply
			if r == nil {
				t.Fatalf("silent: %s", d.Reason)
			}
			if !r.YourIPAddr.IsUnspecified() {
				t.Errorf("proxy offer hands out %v", r.YourIPAddr)
			}
			if r.ClassIdentifier() != "PXEClient" || r.BootFileName != tt.wantFile || !r.ServerIPAddr.Equal(net.ParseIP("10.0.0.2")) {
				t.Errorf("offer = %s", r.Summary())
			}
			if got := r.Options.Has(dhcpv4.OptionVendorSpecificInformation); got != tt.opt43 {
				t.Errorf("option 43 present = %v, want %v", got, tt.opt43)
			}
			if tt.m.Options.Has(dhcpv4.OptionClientMachineIdentifier) && r.GetOneOption(dhcpv4.OptionClientMachineIdentifier) == nil {
				t.Error("option 97 not echoed")
			}
		})
	}
}

func TestDecideBootServer(t *testing.T) {
	px := self
	px.Proxy = true
	req, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), arch(iana.EFI_X86_64),
		dhcpv4.WithClientIP(net.ParseIP("10.0.0.77")))
	d := DecideBootServer(req, host, px)
	if d.Reply == nil || d.Reply.MessageType() != dhcpv4.MessageTypeAck || d.Reply.BootFileName != "ipxe.efi" || !d.Reply.YourIPAddr.IsUnspecified() {
		t.Fatalf("4011 answer = %+v", d)
	}
	if d := DecideBootServer(req, nil, px); d.Reply != nil {
		t.Error("unknown MAC answered on 4011")
	}
	disc := discover(t, arch(iana.EFI_X86_64))
	if d := DecideBootServer(disc, host, px); d.Reply != nil {
		t.Error("DISCOVER answered on 4011")
	}
}

func TestDecideUEFIHTTPBoot(t *testing.T) {
	m := discover(t, arch(iana.EFI_X86_64_HTTP), dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient:Arch:00016:UNDI:003001")))
	for _, proxy := range []bool{false, true} {
		s := self
		s.Proxy = proxy
		d := Decide(m, host, s)
		if d.Reply == nil {
			t.Fatalf("proxy=%v: silent: %s", proxy, d.Reason)
		}
		if d.Reply.BootFileName != "http://10.0.0.2:8080/loaders/ipxe.efi" || d.Reply.ClassIdentifier() != "HTTPClient" {
			t.Errorf("proxy=%v: offer = %s", proxy, d.Reply.Summary())
		}
	}
}

func TestDecideDiskMode(t *testing.T) {
	disk := *host
	disk.Mode = store.ModeDisk
	px := self
	px.Proxy = true
	fw := discover(t, arch(iana.EFI_X86_64))
	ipxe := discover(t, arch(iana.EFI_X86_64), ipxeUC())
	if d := Decide(fw, &disk, self); d.Reply == nil || d.Reply.BootFileName != "" || d.Reply.BootFileNameOption() != "" {
		t.Errorf("full mode, firmware: %+v, want an address and no boot file", d)
	}
	if d := Decide(fw, &disk, px); d.Reply != nil {
		t.Errorf("proxy mode, firmware: answered, want silence")
	}
	for _, s := range []Self{self, px} {
		if d := Decide(ipxe, &disk, s); d.Reply == nil || d.Reply.BootFileName != "http://10.0.0.2:8080/boot/52:54:00:01:02:03.ipxe" {
			t.Errorf("proxy=%v, iPXE: %+v, want the (exiting) script", s.Proxy, d)
		}
	}
}

func TestIdentifyByCircuitAndEcho(t *testing.T) {
	inv, err := store.ParseInventory([]byte(`{"hosts":[{"name":"rack4-u12","mac":"52:54:00:aa:aa:aa","ip":"10.0.0.10","circuit_id":"sw4/eth1/12",
		"authorized_keys":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl c"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	rai := dhcpv4.OptRelayAgentInfo(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(dhcpv4.AgentCircuitIDSubOption), []byte("sw4/eth1/12")))
	m := discover(t, arch(iana.INTEL_X86PC), dhcpv4.WithOption(rai)) // a replaced NIC: unknown MAC
	m.GatewayIPAddr = net.ParseIP("10.0.0.1")
	h, by := Identify(inv, m, true)
	if h == nil || h.Name != "rack4-u12" || by != "circuit-id" {
		t.Fatalf("Identify = %v %q", h, by)
	}
	// The same option 82 in a packet that did not come through a
	// configured relay identifies nobody: a client can write it itself.
	if h, _ := Identify(inv, m, false); h != nil {
		t.Errorf("an untrusted option 82 identified %s", h.Name)
	}
	d := Decide(m, h, self)
	if d.Reply == nil || d.Reply.Options.Get(dhcpv4.OptionRelayAgentInformation) == nil {
		t.Fatalf("reply does not echo option 82: %+v", d)
	}
	ipxe := discover(t, arch(iana.INTEL_X86PC), ipxeUC(), dhcpv4.WithOption(rai))
	if d := Decide(ipxe, h, self); d.Reply == nil || !strings.Contains(d.Boot, "52:54:00:aa:aa:aa.ipxe") {
		t.Errorf("script URL %q does not name the inventory MAC", d.Boot)
	}
	if got := Destination(m).String(); got != "10.0.0.1:67" {
		t.Errorf("reply goes to %s, want the relay", got)
	}
	other := discover(t, arch(iana.INTEL_X86PC), dhcpv4.WithOption(dhcpv4.OptRelayAgentInfo(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(dhcpv4.AgentCircuitIDSubOption), []byte("sw9/eth1/1")))))
	if h, _ := Identify(inv, other, true); h != nil {
		t.Errorf("unknown circuit identified as %s", h.Name)
	}
}

// TestRelayed: a reply goes to a giaddr only when it is a configured
// relay's; a direct packet needs none.
func TestRelayed(t *testing.T) {
	s := Self{Relays: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/32"), netip.MustParsePrefix("10.88.0.0/16")}}
	for _, tt := range []struct {
		giaddr            string
		relayed, accepted bool
	}{
		{"", false, true},
		{"0.0.0.0", false, true},
		{"10.9.0.1", true, true},
		{"10.88.3.4", true, true},
		{"10.9.0.2", true, false},
		{"192.0.2.66", true, false},
	} {
		m := discover(t)
		if tt.giaddr != "" {
			m.GatewayIPAddr = net.ParseIP(tt.giaddr)
		}
		if r, ok := s.Relayed(m); r != tt.relayed || ok != tt.accepted {
			t.Errorf("giaddr %q: relayed %v, trusted %v; want %v, %v", tt.giaddr, r, ok, tt.relayed, tt.accepted)
		}
	}
	if _, ok := (Self{}).Relayed(func() *dhcpv4.DHCPv4 { m := discover(t); m.GatewayIPAddr = net.ParseIP("10.9.0.1"); return m }()); ok {
		t.Error("a relayed packet was trusted with no relay configured")
	}
}

// A host on a tagged boot network gets its reservation only on its VLAN's
// segment; on the untagged segment its firmware and iPXE get a pool
// address, and nothing else gets anything.
func TestDecideVLAN(t *testing.T) {
	tagged := *host
	tagged.VLAN, tagged.IP = 120, netip.MustParseAddr("10.1.20.10")
	pool, err := ParsePool("10.0.0.200-10.0.0.201/24", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	untagged := self
	untagged.FirstStage = pool
	onVLAN := self
	onVLAN.VLAN, onVLAN.IP = 120, netip.MustParseAddr("10.1.20.1")
	other := onVLAN
	other.VLAN = 130
	noPool := untagged
	noPool.FirstStage = nil
	proxy := untagged
	proxy.Proxy = true
	tests := []struct {
		name     string
		h        *store.Host
		self     Self
		mods     []dhcpv4.Modifier
		wantIP   string
		wantFile string
		why      string
	}{
		{"firmware untagged: pool address, loader", &tagged, untagged, []dhcpv4.Modifier{arch(iana.INTEL_X86PC)}, "10.0.0.200", "undionly.kpxe", ""},
		{"iPXE untagged: pool address, its script", &tagged, untagged, []dhcpv4.Modifier{arch(iana.INTEL_X86PC), ipxeUC()}, "10.0.0.200", "http://10.0.0.2:8080/boot/52:54:00:01:02:03.ipxe", ""},
		{"agent untagged: nothing", &tagged, untagged, nil, "", "", "RAM image runs on VLAN 120"},
		{"iPXE on its VLAN: the reservation and its script", &tagged, onVLAN, []dhcpv4.Modifier{arch(iana.INTEL_X86PC), ipxeUC()}, "10.1.20.10", "http://10.0.0.2:8080/boot/52:54:00:01:02:03.ipxe", ""},
		{"agent on its VLAN: the reservation", &tagged, onVLAN, nil, "10.1.20.10", "", ""},
		{"on another VLAN: nothing", &tagged, other, nil, "", "", "on VLAN 120, not on VLAN 130"},
		{"untagged host on a VLAN: nothing", host, onVLAN, nil, "", "", "boots untagged, not on VLAN 120"},
		{"untagged host untagged: as ever", host, untagged, nil, "10.0.0.10", "", ""},
		{"no pool: nothing", &tagged, noPool, []dhcpv4.Modifier{arch(iana.INTEL_X86PC)}, "", "", "needs a first_stage_pool"},
		{"proxy mode: nothing", &tagged, proxy, []dhcpv4.Modifier{arch(iana.INTEL_X86PC)}, "", "", "needs dhcp_mode full"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(discover(t, tt.mods...), tt.h, tt.self)
			if tt.why != "" {
				if d.Reply != nil || !strings.Contains(d.Reason, tt.why) {
					t.Fatalf("Decide = %v (%s), want silence because %q", d.Reply, d.Reason, tt.why)
				}
				return
			}
			if d.Reply == nil {
				t.Fatalf("silent: %s", d.Reason)
			}
			if got := d.Reply.YourIPAddr.String(); got != tt.wantIP {
				t.Errorf("address %s, want %s", got, tt.wantIP)
			}
			if d.Boot != tt.wantFile {
				t.Errorf("boot file %q, want %q", d.Boot, tt.wantFile)
			}
		})
	}
	// The pool: a MAC keeps its address; the next MAC takes the next one;
	// a full pool answers nothing; an expired lease is taken over.
	now := time.Unix(1000, 0)
	pool.now = func() time.Time { return now }
	if a, _ := pool.Lease(tagged.MAC); a.String() != "10.0.0.200" {
		t.Errorf("renewed lease: %s", a)
	}
	if a, _ := pool.Lease("52:54:00:00:00:02"); a.String() != "10.0.0.201" {
		t.Errorf("second lease: %s", a)
	}
	if _, ok := pool.Lease("52:54:00:00:00:03"); ok {
		t.Error("a full pool gave an address")
	}
	if m, ok := pool.Owner(netip.MustParseAddr("10.0.0.201")); !ok || m != "52:54:00:00:00:02" {
		t.Errorf("Owner = %q %v", m, ok)
	}
	now = now.Add(2 * time.Minute)
	if a, ok := pool.Lease("52:54:00:00:00:03"); !ok || a.String() != "10.0.0.200" {
		t.Errorf("after expiry: %s %v", a, ok)
	}
	if _, ok := pool.Owner(netip.MustParseAddr("10.0.0.201")); ok {
		t.Error("an expired lease still has an owner")
	}
	// A REQUEST for anything but the pool address is refused.
	req, _ := dhcpv4.NewDiscovery(mac, arch(iana.INTEL_X86PC))
	req.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
	req.UpdateOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.1.20.10")))
	if d := Decide(req, &tagged, untagged); d.Reply == nil || d.Reply.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("REQUEST for the VLAN reservation on the untagged segment: %v (%s)", d.Reply, d.Reason)
	}
}

func TestParsePool(t *testing.T) {
	for _, bad := range []string{"", "10.0.0.1", "10.0.0.9-10.0.0.1/24", "10.0.0.1-10.0.1.1/24", "10.0.0.1-10.0.0.9/33", "10.0.0.1-10.0.0.9/024",
		"x-10.0.0.9/24", "10.0.0.0-10.0.255.255/16", "::1-::2/24"} {
		if _, err := ParsePool(bad, time.Minute); err == nil {
			t.Errorf("ParsePool(%q) took it", bad)
		}
	}
	p, err := ParsePool("10.0.0.200-10.0.0.239/24", time.Minute)
	if err != nil || p.Prefix != 24 || p.First.String() != "10.0.0.200" || p.Last.String() != "10.0.0.239" {
		t.Fatalf("ParsePool = %+v, %v", p, err)
	}
}
