package store

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestStartsNewBoot(t *testing.T) {
	tests := []struct {
		cur  Stage
		have bool
		c    Client
		want bool
	}{
		{0, false, ClientFirmware, true},
		{0, false, ClientIPXE, true}, // iPXE option ROM: the firmware itself
		{0, false, ClientOther, false},
		{StageDHCP, true, ClientFirmware, false},      // retransmitted DISCOVER
		{StageFirstStage, true, ClientFirmware, true}, // firmware again after loading: a new boot
		{StageFirstStage, true, ClientIPXE, false},    // chainloaded iPXE continues
		{StageDHCP, true, ClientIPXE, false},          // iPXE ROM retransmits
		{StageScript, true, ClientIPXE, true},         // iPXE after a script: host rebooted
		{StageHandoff, true, ClientFirmware, true},    // reboot after the hand-off
		{StageInitrd, true, ClientOther, false},       // the agent's own DHCP
	}
	for _, tt := range tests {
		if got := StartsNewBoot(tt.cur, tt.have, tt.c); got != tt.want {
			t.Errorf("StartsNewBoot(%v, %v, %v) = %v, want %v", tt.cur, tt.have, tt.c, got, tt.want)
		}
	}
}

func TestBootsAdvanceNeverGoesBack(t *testing.T) {
	b := NewBoots()
	boot, started := b.OnDiscover("m", "h", ClientIPXE, "bios")
	if !started {
		t.Fatal("first DISCOVER did not start a boot")
	}
	b.Advance("m", boot.ID, StageCheckin)
	b.Advance("m", boot.ID, StageKernel)
	b.Advance("m", "b-other", StageHandoff)
	cur, _ := b.Current("m")
	if cur.Stage != StageCheckin {
		t.Errorf("stage = %v, want checkin", cur.Stage)
	}
	if again, started := b.OnDiscover("m", "h", ClientOther, ""); started || again.ID != boot.ID {
		t.Errorf("agent DISCOVER started a new boot")
	}
}

const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl c"

func TestParseInventory(t *testing.T) {
	good := `{"hosts":[{"name":"a","mac":"52:54:00:AA:BB:01","ip":"10.0.0.5","authorized_keys":["` + key + `"]}]}`
	inv, err := ParseInventory([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("52:54:00:aa:bb:01")
	h, ok := inv.Lookup(mac)
	if !ok || h.Name != "a" || h.Mode != ModeUnlock || h.Prefix != 24 {
		t.Fatalf("Lookup = %+v %v", h, ok)
	}
	if h2, ok := inv.LookupIP(netip.MustParseAddr("10.0.0.5")); !ok || h2 != h {
		t.Errorf("LookupIP failed")
	}
	bad := []struct{ doc, want string }{
		{`{"hosts":[{"name":"a","mac":"zz","ip":"10.0.0.5","authorized_keys":["` + key + `"]}]}`, "not an Ethernet MAC"},
		{`{"hosts":[{"name":"a","mac":"52:54:00:aa:bb:01","ip":"10.0.0.5","authorized_keys":[]}]}`, "nobody could log in"},
		{`{"hosts":[{"name":"a","mac":"52:54:00:aa:bb:01","ip":"10.0.0.5","authorized_keys":["ssh-rsa nope"]}]}`, "authorized_keys[0]"},
		{`{"hosts":[{"name":"a","mac":"52:54:00:aa:bb:01","ip":"10.0.0.5","mode":"party","authorized_keys":["` + key + `"]}]}`, `mode "party": want "unlock" or "disk"`},
		{`{"hosts":[{"name":"a","mac":"52:54:00:aa:bb:01","ip":"10.0.0.5","authorized_keys":["` + key + `"]},{"name":"b","mac":"52:54:00:aa:bb:01","ip":"10.0.0.6","authorized_keys":["` + key + `"]}]}`, "already belongs to"},
		{`{"hosts":[{"name":"a","mac":"52:54:00:aa:bb:01","ip":"10.0.0.5","authorized_keys":["` + key + `"],"colour":"red"}]}`, "unknown field"},
		{`{"hosts":[`, "not valid inventory JSON"},
		{`{"hosts":[{"name":"a\nchain http://evil/x","mac":"52:54:00:aa:bb:01","ip":"10.0.0.5","authorized_keys":["` + key + `"]}]}`, "DNS-style name"},
		{`{"hosts":[{"name":"","mac":"52:54:00:aa:bb:01","ip":"10.0.0.5","authorized_keys":["` + key + `"]}]}`, "DNS-style name"},
	}
	for _, b := range bad {
		_, err := ParseInventory([]byte(b.doc))
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("ParseInventory(%s) = %v, want error containing %q", b.doc, err, b.want)
		}
	}
}

func FuzzParseInventory(f *testing.F) {
	f.Add([]byte(`{"hosts":[{"name":"a","mac":"52:54:00:AA:BB:01","ip":"10.0.0.5","authorized_keys":["` + key + `"]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		inv, err := ParseInventory(b)
		if err == nil && inv == nil {
			t.Fatal("nil inventory without error")
		}
	})
}
