package agentserver

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/store/sqlite"
)

func sampleHardware() *agentapi.Hardware {
	return &agentapi.Hardware{
		CPU: agentapi.CPU{Model: "AMD EPYC 7443P 24-Core Processor", Count: 48}, MemoryBytes: 256 << 30,
		NICs:  []agentapi.NIC{{Name: "eth0", MAC: "b8:ce:f6:00:00:02", Driver: "mlx5_core", Link: true, SpeedMbps: 25000, Boot: true}},
		Disks: []agentapi.Disk{{Name: "nvme0n1", Model: "SAMSUNG MZQL23T8HCLS", Serial: "S64H", Bytes: 3840 << 30, Driver: "nvme", Health: "ok"}},
		Unclaimed: []agentapi.Unclaimed{{Vendor: "15b3", Device: "101d", Class: "0207", Modalias: "pci:v000015B3d0000101Dsv000015B3sd00000043bc02sc07i00",
			Would: "mlx5_ib\x1b[2J"}},
	}
}

// TestHardwareReport: a checked-in agent reports once; the report is kept
// with a record that commits its digest and says its warnings, and the
// boot's record shows them. A second report, a report without a token, an
// oversized or malformed one, and one after the hand-off are refused.
func TestHardwareReport(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	c := &agentapi.Client{Base: r.srv.URL}
	cfg, err := c.Checkin(ctx, r.token(t), agentapi.CheckinRequest{Boot: r.boot.ID, MAC: mac,
		HostKey: string(ssh.MarshalAuthorizedKey(hostKey(t).PublicKey()))})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PutHardware(ctx, "forged", sampleHardware()); !errors.Is(err, agentapi.ErrRefused) {
		t.Errorf("report with a forged token: %v, want refused", err)
	}
	if err := c.PutHardware(ctx, cfg.ReportToken, sampleHardware()); err != nil {
		t.Fatalf("hardware report: %v", err)
	}
	if err := c.PutHardware(ctx, cfg.ReportToken, &agentapi.Hardware{CPU: agentapi.CPU{Model: "Rewritten", Count: 1}}); !errors.Is(err, agentapi.ErrRefused) {
		t.Errorf("second report: %v, want refused (one a boot)", err)
	}
	for name, body := range map[string]string{
		"unknown field": `{"cpu":{"model":"x","count":1},"bios_password":"x"}`,
		"two values":    `{} {}`,
		"bad MAC":       `{"nics":[{"name":"eth0","mac":"not-a-mac"}]}`,
		"negative size": `{"disks":[{"name":"sda","bytes":-1}]}`,
		"long string":   `{"cpu":{"model":"` + strings.Repeat("A", 300) + `"}}`,
		"too large":     `{"cpu":{"model":"` + strings.Repeat("A", agentapi.MaxHardwareBytes) + `"}}`,
	} {
		req, _ := http.NewRequest(http.MethodPut, r.srv.URL+agentapi.HardwarePath, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+cfg.ReportToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusRequestEntityTooLarge && resp.StatusCode != http.StatusConflict {
			t.Errorf("%s: status %d, want a refusal", name, resp.StatusCode)
		}
	}

	h, err := r.db.Hardware(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if h.Boot != r.boot.ID || !strings.Contains(string(h.Report), "AMD EPYC 7443P") || strings.Contains(string(h.Report), "Rewritten") {
		t.Errorf("stored report = %+v", h)
	}
	want := "no driver for 15b3:101d (Mellanox, InfiniBand controller, PCI class 0207): the kernel's mlx5_ib\x1b[2J drives it; the RAM image leaves it out"
	if len(h.Warnings) != 1 || h.Warnings[0] != want {
		t.Errorf("warnings = %q, want [%q]", h.Warnings, want)
	}
	if b, err := r.db.BootRecord(ctx, r.boot.ID); err != nil || len(b.Warnings) != 1 {
		t.Errorf("the boot's record has warnings %v (%v), want the report's", b.Warnings, err)
	}
	evs, err := sqlite.ReadEvents(r.path)
	if err != nil {
		t.Fatal(err)
	}
	var rec *audit.Event
	for i := range evs {
		if evs[i].Code == audit.BootHardware {
			if rec != nil {
				t.Error("two hardware records for one boot")
			}
			rec = &evs[i]
		}
	}
	if rec == nil || rec.Boot != r.boot.ID || rec.Details["warning_1"] != want || rec.Details["disks"] != "1" || len(rec.Details["report_sha256"]) != 64 {
		t.Fatalf("hardware record = %+v", rec)
	}
	// After the hand-off the boot's token says nothing more.
	if err := c.Report(ctx, cfg.ReportToken, agentapi.EventReport{Code: audit.Handoff}); err != nil {
		t.Fatal(err)
	}
	if err := c.PutHardware(ctx, cfg.ReportToken, sampleHardware()); !errors.Is(err, agentapi.ErrRefused) {
		t.Errorf("report after the hand-off: %v, want refused", err)
	}
	if _, err := r.db.Hardware(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("hardware of an unknown host: %v, want not found", err)
	}
}

// FuzzParseHardware: whatever an agent sends, the server refuses it or
// keeps a report that passes its own checks, and never panics.
func FuzzParseHardware(f *testing.F) {
	f.Add(`{"cpu":{"model":"x","count":2},"memory_bytes":1,"nics":[{"name":"eth0","mac":"52:54:00:00:00:01"}],"disks":[],"unclaimed":[]}`)
	f.Add(`{"disks":[{"name":"sda","serial":"\u001b[31m","bytes":512}]}`)
	f.Add(`{"unclaimed":[{"vendor":"15b3","device":"1017","class":"0200","would":"mlx5_core"}]}`)
	f.Fuzz(func(t *testing.T, body string) {
		h, canon, err := ParseHardware([]byte(body))
		if err != nil {
			return
		}
		if err := h.Check(); err != nil {
			t.Fatalf("kept a report that fails its check: %v", err)
		}
		again, _, err := ParseHardware(canon)
		if err != nil {
			t.Fatalf("the stored form does not read back: %v", err)
		}
		if len(again.Warnings()) != len(h.Warnings()) {
			t.Fatal("the stored form says other warnings")
		}
	})
}
