package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOperatorCommand: the first operator gets a token from the command
// line; it is printed once, and the CLI's usage errors exit 2.
func TestOperatorCommand(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.json")
	_ = os.WriteFile(p, []byte(`{"dhcp_mode":"off","server_ip":"127.0.0.1","database":"`+dir+`/db/lifeboat.db"}`), 0o600)
	var out, errb strings.Builder
	if code := lifeboatd([]string{"-config", p, "operator", "add", "alice"}, nil, &out, &errb); code != 0 {
		t.Fatalf("operator add: exit %d: %s", code, errb.String())
	}
	if tok := strings.TrimSpace(out.String()); !strings.HasPrefix(tok, "lbo_") || len(tok) < 40 || strings.Contains(errb.String(), tok) {
		t.Errorf("token %q, stderr %q", tok, errb.String())
	}
	out.Reset()
	if code := lifeboatd([]string{"-config", p, "operator", "list"}, nil, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "alice\t") {
		t.Errorf("operator list: exit %d: %q", code, out.String())
	}
	if code := lifeboatd([]string{"-config", p, "operator", "add", "alice"}, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "exists already") {
		t.Errorf("second add: exit %d: %s", code, errb.String())
	}
	for _, args := range [][]string{{"operator"}, {"operator", "fly"}, {"frobnicate"}, {"-no-such-flag"}} {
		if code := lifeboatd(append([]string{"-config", p}, args...), nil, &out, &errb); code != 2 {
			t.Errorf("lifeboatd %v: exit %d, want 2", args, code)
		}
	}
	out.Reset()
	if code := lifeboatd([]string{"-config", p, "-check-config"}, nil, &out, &errb); code != 0 || out.String() != "configuration OK\n" {
		t.Errorf("-check-config: exit %d %q %s", code, out.String(), errb.String())
	}
}
