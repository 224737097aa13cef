package authkeys

import (
	"net/netip"
	"strings"
	"testing"
)

const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl c"

func TestParseAndAllows(t *testing.T) {
	for _, tc := range []struct {
		line    string
		err     string
		allowed []string
		denied  []string
	}{
		{line: key, allowed: []string{"10.0.0.1", "192.0.2.9"}},
		{line: "restrict,no-pty " + key, allowed: []string{"10.0.0.1"}},
		{line: `from="10.1.2.0/24,192.0.2.*,!10.1.2.66" ` + key, allowed: []string{"10.1.2.5", "192.0.2.77"}, denied: []string{"10.1.2.66", "10.1.3.1", "198.51.100.1"}},
		{line: `from="2001:db8::/32" ` + key, allowed: []string{"2001:db8::1"}, denied: []string{"10.0.0.1"}},
		{line: `command="/bin/sh" ` + key, err: "not supported"},
		{line: `environment="A=B" ` + key, err: "not supported"},
		{line: `cert-authority ` + key, err: "not supported"},
		{line: `from="*.example.com" ` + key, err: "host names are not looked up"},
		{line: `from="10.0.0.0/99" ` + key, err: "not a CIDR"},
	} {
		k, err := Parse(tc.line)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want %q", tc.line, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.line, err)
			continue
		}
		for _, a := range tc.allowed {
			if !k.Allows(netip.MustParseAddr(a)) {
				t.Errorf("%s: %s refused", tc.line, a)
			}
		}
		for _, a := range tc.denied {
			if k.Allows(netip.MustParseAddr(a)) {
				t.Errorf("%s: %s allowed", tc.line, a)
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`from="10.1.2.0/24,!10.1.2.66" ` + key)
	f.Add("restrict " + key)
	f.Fuzz(func(t *testing.T, line string) {
		k, err := Parse(line)
		if err == nil {
			_ = k.Allows(netip.MustParseAddr("10.0.0.1"))
		}
	})
}
