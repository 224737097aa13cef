package unlock

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/unlock/unlocktest"
)

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want Options
		err  string
	}{
		{nil, Options{}, ""},
		{[]string{"--rescue-grant", "g-1"}, Options{RescueGrant: "g-1"}, ""},
		{[]string{"--rescue-grant=g-2", "--accept-boot-change"}, Options{RescueGrant: "g-2", AcceptBootChange: true}, ""},
		{[]string{"--rescue-grant"}, Options{}, "needs the grant's id"},
		{[]string{"--rescue-grant", "x"}, Options{}, "want the grant's id"},
		{[]string{"--yes"}, Options{}, "unknown option"},
		{[]string{"--accept-boot-change=1"}, Options{}, "takes no value"},
		{[]string{"\x1b[2J"}, Options{}, `\x1b[2J`},
	} {
		got, err := ParseOptions(tc.args)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v", tc.args, got, err)
		}
	}
}

func FuzzParseOptions(f *testing.F) {
	f.Add("--rescue-grant g-1 --accept-boot-change")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseOptions(strings.Fields(s))
		if err == nil && o.RescueGrant != "" && !strings.HasPrefix(o.RescueGrant, "g-") {
			t.Fatalf("grant %q", o.RescueGrant)
		}
	})
}

// guardRig is one LUKS volume with passphrase "open sesame"; handed says
// whether the hand-off ran.
func guardRig(t *testing.T) (*Session, *bool) {
	dir := t.TempDir()
	img := unlocktest.LUKSImage(t, dir, "vdb.img", "open sesame", append([]string{"--type", "luks2", "--pbkdf", "argon2id"}, unlocktest.Fast...)...)
	plain := filepath.Join(dir, "vda.img")
	_ = os.WriteFile(plain, make([]byte, 1<<20), 0o600)
	sys, dev := unlocktest.FakeSys(t, map[string]string{"vdb": img, "vda": plain})
	handed := false
	return &Session{Host: "web1", Boot: "b-1", Unsealer: &Unsealer{}, Limiter: &Limiter{MaxTries: 3, Lockout: time.Minute},
		Volumes: func() ([]Volume, error) { return Scan(sys, dev) },
		Report:  func(context.Context, audit.Code, map[string]string) error { return nil },
		Handoff: func(context.Context, []*Unsealed, io.Writer) (func(), error) { handed = true; return func() {}, nil },
	}, &handed
}

// TestUnlockDuringRescueAsksFirst: in a rescue boot the customer is told
// the grant, the staff member and the scope before the passphrase; a
// script is refused (nothing tried) without --rescue-grant G, a person
// without typing yes.
func TestUnlockDuringRescueAsksFirst(t *testing.T) {
	g := &RescueGrant{ID: "g-77", Staff: "bob", Scope: "shell", Until: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)}
	for _, tc := range []struct {
		name  string
		opts  Options
		pty   bool
		input string
		code  int
	}{
		{"script without the flag", Options{}, false, "open sesame\n", ExitRefused},
		{"script with another grant", Options{RescueGrant: "g-78"}, false, "open sesame\n", ExitRefused},
		{"script with the flag", Options{RescueGrant: "g-77"}, false, "open sesame\n", ExitOK},
		{"person who says no", Options{}, true, "\nopen sesame\n", ExitRefused},
		{"person who says yes", Options{}, true, "yes\nopen sesame\n", ExitOK},
	} {
		s, handed := guardRig(t)
		s.Rescue, s.Options = g, tc.opts
		rw := &rwPipe{in: strings.NewReader(tc.input)}
		code := s.Run(context.Background(), rw, tc.pty)
		out := rw.String()
		if code != tc.code || *handed != (tc.code == ExitOK) {
			t.Errorf("%s: exit %d (handed %v), want %d\n%s", tc.name, code, *handed, tc.code, out)
		}
		if !strings.Contains(out, "Grant g-77: shell for bob") || !strings.Contains(out, "bob can read and change") {
			t.Errorf("%s: the warning does not name grant, scope and staff:\n%s", tc.name, out)
		}
		if tc.code == ExitRefused && (strings.Contains(out, "unlocked with") || strings.Contains(out, "Wrong passphrase")) {
			t.Errorf("%s: a passphrase was tried:\n%s", tc.name, out)
		}
	}
}

// TestChangedBootShownBeforeThePassphrase: a kernel or initrd that differs
// from the last unlock's is shown before the prompt; a script needs
// --accept-boot-change, a person types yes; the same boot asks nothing.
func TestChangedBootShownBeforeThePassphrase(t *testing.T) {
	prev := &BootRecord{Device: "/dev/vda1", Entry: "Debian GNU/Linux", Kernel: strings.Repeat("a", 64), Initrd: strings.Repeat("b", 64),
		Cmdline: "root=UUID=x ro", At: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)}
	changed := *prev
	changed.Initrd = strings.Repeat("c", 64)
	for _, tc := range []struct {
		name  string
		cur   BootRecord
		opts  Options
		pty   bool
		input string
		code  int
		says  bool
	}{
		{"same boot, script", *prev, Options{}, false, "open sesame\n", ExitOK, false},
		{"changed, script", changed, Options{}, false, "open sesame\n", ExitRefused, true},
		{"changed, script accepts", changed, Options{AcceptBootChange: true}, false, "open sesame\n", ExitOK, true},
		{"changed, person says yes", changed, Options{}, true, "yes\nopen sesame\n", ExitOK, true},
		{"changed, person leaves", changed, Options{}, true, "\n", ExitRefused, true},
	} {
		s, handed := guardRig(t)
		cur := tc.cur
		s.Previous, s.Options = prev, tc.opts
		s.Inspect = func(context.Context) (*BootRecord, error) { return &cur, nil }
		rw := &rwPipe{in: strings.NewReader(tc.input)}
		code := s.Run(context.Background(), rw, tc.pty)
		out := rw.String()
		if code != tc.code || *handed != (tc.code == ExitOK) {
			t.Errorf("%s: exit %d, want %d\n%s", tc.name, code, tc.code, out)
		}
		said := strings.Contains(out, "changed since your last unlock on 2026-11-30 08:00 UTC") && strings.Contains(out, "initrd sha256: bbbbbbbbbbbbbbbb -> cccccccccccccccc")
		if said != tc.says {
			t.Errorf("%s: announced %v, want %v\n%s", tc.name, said, tc.says, out)
		}
		if prompt := strings.Index(out, "Passphrase for"); tc.says && prompt >= 0 && prompt < strings.Index(out, "changed since") {
			t.Errorf("%s: the change was shown after the prompt\n%s", tc.name, out)
		}
	}
}
