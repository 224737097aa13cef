package dhcp

import (
	"testing"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// TestBursts: a flood of the same answer is one record before it and one
// after it with the count; answers of another kind, boot or client are
// recorded each; a burst without repeats says nothing more.
func TestBursts(t *testing.T) {
	b := &Bursts{Window: 10 * time.Second}
	t0 := time.Now()
	offer := audit.Event{Code: audit.DHCPOffer, MAC: "m1", Host: "web1", Boot: "b-1", Details: map[string]string{"type": "OFFER"}}
	if !b.Admit(offer, t0) {
		t.Fatal("the first offer was not recorded")
	}
	recorded := 0
	for i := 1; i <= 5000; i++ {
		if b.Admit(offer, t0.Add(time.Duration(i)*time.Millisecond)) {
			recorded++
		}
	}
	if recorded != 0 {
		t.Errorf("%d of a 5000-packet flood recorded on their own", recorded)
	}
	ipxe := offer
	ipxe.Details = map[string]string{"type": "OFFER", "client": "ipxe"}
	ack := offer
	ack.Code, ack.Details = audit.DHCPAck, map[string]string{"type": "ACK"}
	other := offer
	other.Boot = "b-2"
	for _, ev := range []audit.Event{ipxe, ack, other} {
		if !b.Admit(ev, t0.Add(time.Second)) {
			t.Errorf("%s %v of boot %s was counted into another burst", ev.Code, ev.Details, ev.Boot)
		}
	}
	if got := b.Ended(t0.Add(9 * time.Second)); len(got) != 0 {
		t.Errorf("bursts ended while still in their window: %v", got)
	}
	got := b.Ended(t0.Add(time.Minute))
	if len(got) != 1 || got[0].Details["repeats"] != "5000" || got[0].Boot != "b-1" || got[0].Code != audit.DHCPOffer || offer.Details["repeats"] != "" {
		t.Fatalf("ended bursts = %+v, want b-1's offer with 5000 repeats (and the template untouched)", got)
	}
	if got := b.Ended(t0.Add(2 * time.Minute)); len(got) != 0 {
		t.Errorf("a burst was reported twice: %v", got)
	}
	// After the burst, the same answer is a new one.
	if !b.Admit(offer, t0.Add(2*time.Minute)) {
		t.Error("an offer after the burst was not recorded")
	}
}
