package apiserver

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store"
)

// TestWireShape: the API's own types put on the wire what clients and
// inventory files have always read, and never a secret the store keeps
// beside it (a webhook's sealed secret, a console code's hash).
func TestWireShape(t *testing.T) {
	h := &store.Host{Name: "web1", MAC: "52:54:00:00:00:01", OtherMACs: []string{"52:54:00:00:00:02"}, Customer: "acme",
		IP: netip.MustParseAddr("10.0.0.5"), Prefix: 24, Gateway: netip.MustParseAddr("10.0.0.1"), DNS: []netip.Addr{netip.MustParseAddr("10.0.0.53")},
		Mode: store.ModeDisk, CircuitID: "sw1/3", AuthorizedKeys: []string{key}}
	model, _ := json.Marshal(h)
	wire, _ := json.Marshal(hostOut(h))
	if string(model) != string(wire) {
		t.Errorf("host on the wire:\n%s\nin the store:\n%s", wire, model)
	}
	if back := hostIn(hostOut(h)); back.Name != h.Name || back.Mode != h.Mode || back.DNS[0] != h.DNS[0] {
		t.Errorf("host round trip = %+v", back)
	}
	now := time.Now()
	g := &store.Grant{ID: "g-1", Scope: store.ScopeConsole, State: store.GrantRequested, Policy: store.PolicyNotify, From: now, Until: now,
		ConsoleCode: "1234-5678", ConsoleCodeHash: "HASH-NOT-FOR-CLIENTS"}
	gw, _ := json.Marshal(grantOut(g))
	if strings.Contains(string(gw), "HASH-NOT-FOR-CLIENTS") || !strings.Contains(string(gw), `"console_code":"1234-5678"`) ||
		!strings.Contains(string(gw), `"scope":"console"`) || !strings.Contains(string(gw), `"state":"requested"`) {
		t.Errorf("grant on the wire: %s", gw)
	}
	ww, _ := json.Marshal(webhookOut(store.Webhook{ID: "w-1", Sealed: "SEALED-SECRET"}))
	if strings.Contains(string(ww), "SEALED-SECRET") {
		t.Errorf("webhook on the wire: %s", ww)
	}
	if b, _ := json.Marshal(each([]*store.Host(nil), hostOut)); string(b) != "[]" {
		t.Errorf("an empty listing is %s, want []", b)
	}
}
