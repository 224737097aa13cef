package store

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestGrantTransitions(t *testing.T) {
	now := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	g := func(state GrantState) *Grant {
		return &Grant{ID: "g-1", State: state, From: now.Add(-time.Hour), Until: now.Add(time.Hour)}
	}
	tests := []struct {
		from, to GrantState
		ok       bool
	}{
		{GrantRequested, GrantApproved, true},
		{GrantRequested, GrantDenied, true},
		{GrantRequested, GrantRevoked, true},
		{GrantRequested, GrantExpired, true},
		{GrantRequested, GrantActive, false}, // not before approval
		{GrantApproved, GrantActive, true},
		{GrantApproved, GrantDenied, false}, // decided already
		{GrantApproved, GrantRevoked, true},
		{GrantActive, GrantEnded, true},
		{GrantActive, GrantApproved, false},
		{GrantDenied, GrantApproved, false}, // end states stay ended
		{GrantRevoked, GrantActive, false},
		{GrantExpired, GrantApproved, false},
		{GrantEnded, GrantActive, false},
	}
	for _, tt := range tests {
		err := g(tt.from).Can(tt.to, now)
		if (err == nil) != tt.ok {
			t.Errorf("%s → %s: %v, want ok=%v", tt.from, tt.to, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrConflict) {
			t.Errorf("%s → %s: %v is not a conflict", tt.from, tt.to, err)
		}
	}
	late := g(GrantApproved)
	late.Until = now.Add(-time.Minute)
	if err := late.Can(GrantActive, now); err == nil || !strings.Contains(err.Error(), "not valid now") {
		t.Errorf("an expired grant became active: %v", err)
	}
	if g(GrantRequested).Live(now) || !g(GrantApproved).Live(now) || !g(GrantActive).Live(now) || late.Live(now) {
		t.Error("Live is wrong")
	}
	if g(GrantDenied).Open() || !g(GrantActive).Open() {
		t.Error("Open is wrong")
	}
}

func TestGrantRequestCheck(t *testing.T) {
	good := GrantRequest{Host: "web-01", Scope: ScopePasswordReset, Ticket: "SUP-1234", Reason: "customer forgot the root password",
		TTL: 2 * time.Hour, StaffKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl staff"}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*GrantRequest){
		"scope":     func(r *GrantRequest) { r.Scope = "root" },
		"ticket":    func(r *GrantRequest) { r.Ticket = "" },
		"reason":    func(r *GrantRequest) { r.Reason = "x" },
		"control":   func(r *GrantRequest) { r.Reason = "ok\nBcc: x" },
		"ttl-days":  func(r *GrantRequest) { r.TTL = 48 * time.Hour },
		"ttl-short": func(r *GrantRequest) { r.TTL = time.Minute },
		"key":       func(r *GrantRequest) { r.StaffKey = "-----BEGIN OPENSSH PRIVATE KEY-----" },
		"host":      func(r *GrantRequest) { r.Host = "../etc" },
	} {
		r := good
		mut(&r)
		if err := r.Check(); err == nil || !strings.Contains(err.Error(), strings.Split(name, "-")[0]) && name != "control" {
			t.Errorf("%s: Check = %v", name, err)
		}
	}
	if DefaultPolicy(ScopeShell) != PolicyApprove || DefaultPolicy(ScopePasswordReset) != PolicyNotify || DefaultPolicy(ScopeConsole) != PolicyApprove {
		t.Error("default policies differ from the documented ones")
	}
}
