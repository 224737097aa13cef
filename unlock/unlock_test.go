package unlock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/unlock/unlocktest"
)

func TestReadHeaderAndUnseal(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want Slot
		ver  int
	}{
		{"luks1-pbkdf2", []string{"--type", "luks1", "--pbkdf-force-iterations", "1000", "--hash", "sha256"}, Slot{KDF: "pbkdf2", Hash: "sha256", Iterations: 1000}, 1},
		{"luks2-argon2id", append([]string{"--type", "luks2", "--pbkdf", "argon2id"}, unlocktest.Fast...), Slot{KDF: "argon2id", Iterations: 4, MemoryKiB: 8192, Threads: 1}, 2},
		{"luks2-argon2i", append([]string{"--type", "luks2", "--pbkdf", "argon2i"}, unlocktest.Fast...), Slot{KDF: "argon2i", Iterations: 4, MemoryKiB: 8192, Threads: 1}, 2},
		{"luks2-pbkdf2-sha512", []string{"--type", "luks2", "--pbkdf", "pbkdf2", "--hash", "sha512", "--pbkdf-force-iterations", "1000"}, Slot{KDF: "pbkdf2", Hash: "sha512", Iterations: 1000}, 2},
		// aes-xts-plain, the 32-bit IV of old cryptsetup defaults: LUKS2
		// through the LUKS library, LUKS1 through lifeboat's own code.
		{"luks2-xts-plain", append([]string{"--type", "luks2", "--cipher", "aes-xts-plain", "--pbkdf", "argon2id"}, unlocktest.Fast...), Slot{KDF: "argon2id", Iterations: 4, MemoryKiB: 8192, Threads: 1}, 2},
		{"luks1-xts-plain", []string{"--type", "luks1", "--cipher", "aes-xts-plain", "--pbkdf-force-iterations", "1000", "--hash", "sha256"}, Slot{KDF: "pbkdf2", Hash: "sha256", Iterations: 1000}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := unlocktest.LUKSImage(t, dir, tt.name, "correct horse", append(tt.args, "--uuid", "0ddba11c-0000-4000-8000-00000000000"+fmt.Sprint(tt.ver))...)
			f, _ := os.Open(img)
			h, err := ReadHeader(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if h.Version != tt.ver || !strings.HasPrefix(h.UUID, "0ddba11c-") || len(h.Slots) != 1 {
				t.Fatalf("header = %+v", h)
			}
			got := h.Slots[0]
			if wantArea := "aes-xts-plain64"; h.Version == 2 && !strings.HasPrefix(got.Area, "aes-xts-") {
				t.Errorf("keyslot area %q, want %s", got.Area, wantArea)
			}
			got.ID, got.Priority, got.Area = 0, 0, ""
			if tt.want.KDF == "pbkdf2" {
				got.Iterations = tt.want.Iterations // cryptsetup may round pbkdf2 iterations
			}
			if got != tt.want {
				t.Errorf("slot = %+v, want %+v", got, tt.want)
			}
			v := Volume{Path: img, Header: h}
			u := &Unsealer{}
			if _, err := u.Unseal(context.Background(), v, []byte("wrong horse"), nil); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("wrong passphrase: %v, want ErrWrongPassphrase", err)
			}
			var tried []int
			got2, err := u.Unseal(context.Background(), v, []byte("correct horse"), func(_ Volume, s Slot) { tried = append(tried, s.ID) })
			if err != nil {
				t.Fatalf("right passphrase: %v", err)
			}
			if got2.Slot != 0 || got2.Key == nil || len(tried) != 1 {
				t.Errorf("unsealed = %+v, tried %v", got2, tried)
			}
		})
	}
}

func TestUnsealSecondSlotAndMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	img := unlocktest.LUKSImage(t, dir, "two", "first", append([]string{"--type", "luks2", "--pbkdf", "argon2id"}, unlocktest.Fast...)...)
	nk := filepath.Join(dir, "new.pass")
	_ = os.WriteFile(nk, []byte("second"), 0o600)
	cmd := exec.Command("cryptsetup", append([]string{"luksAddKey", "--batch-mode", "--key-file", filepath.Join(dir, "two.pass"), "--pbkdf", "argon2id"}, append(unlocktest.Fast, img, nk)...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("luksAddKey: %v\n%s", err, out)
	}
	f, _ := os.Open(img)
	h, err := ReadHeader(f)
	f.Close()
	if err != nil || len(h.Slots) != 2 {
		t.Fatalf("header: %+v %v", h, err)
	}
	v := Volume{Path: img, Header: h}
	u, err := (&Unsealer{}).Unseal(context.Background(), v, []byte("second"), nil)
	if err != nil || u.Slot != 1 {
		t.Fatalf("second passphrase: %+v %v, want slot 1", u, err)
	}
	small := &Unsealer{MemAvailable: func() int64 { return 4 << 20 }}
	_, err = small.Unseal(context.Background(), v, []byte("second"), nil)
	if err == nil || !strings.Contains(err.Error(), "needs 8 MiB and only 4 MiB are free") {
		t.Errorf("with 4 MiB free: %v, want a clear memory message", err)
	}
}

func TestCorruptHeaders(t *testing.T) {
	dir := t.TempDir()
	img := unlocktest.LUKSImage(t, dir, "c", "pw", append([]string{"--type", "luks2", "--pbkdf", "argon2id"}, unlocktest.Fast...)...)
	orig, _ := os.ReadFile(img)
	cases := map[string]func([]byte){
		"json garbage":    func(b []byte) { copy(b[4096:], "{{{{not json") },
		"huge hdr size":   func(b []byte) { copy(b[8:16], []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}) },
		"version 7":       func(b []byte) { b[7] = 7 },
		"bad slot id":     func(b []byte) { i := bytes.Index(b[4096:], []byte(`"0":{"type":"luks2"`)); copy(b[4096+i:], `"x"`) },
		"truncated image": nil,
	}
	for name, mut := range cases {
		t.Run(name, func(t *testing.T) {
			b := append([]byte(nil), orig...)
			if mut != nil {
				mut(b)
			} else {
				b = b[:1000]
			}
			p := filepath.Join(dir, "mut.img")
			_ = os.WriteFile(p, b, 0o600)
			f, _ := os.Open(p)
			defer f.Close()
			h, err := ReadHeader(f)
			if err == nil {
				t.Fatalf("ReadHeader accepted a corrupt header: %+v", h)
			}
			if errors.Is(err, ErrNotLUKS) {
				t.Errorf("corrupt header reported as not LUKS: %v", err)
			}
		})
	}
}

func FuzzReadHeader(f *testing.F) {
	dir := f.TempDir()
	for _, typ := range []string{"luks1", "luks2"} {
		img := unlocktest.LUKSImage(f, dir, typ, "pw", "--type", typ, "--pbkdf-force-iterations", "1000", "--pbkdf", "pbkdf2")
		b, _ := os.ReadFile(img)
		f.Add(b[:16<<10]) // the LUKS2 binary header and its JSON area
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ReadHeader(bytes.NewReader(b))
		if err == nil && h == nil {
			t.Fatal("nil header without error")
		}
	})
}

func TestReadSecret(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"hunter2\n", "hunter2", nil},
		{"hunter2\r", "hunter2", nil},
		{"hunterX\x7f2\r", "hunter2", nil},
		{"garbage\x15hunter2\n", "hunter2", nil},
		{"last line", "last line", nil},
		{"abc\x03", "", ErrInterrupted},
		{"\x04", "", io.EOF},
		{"", "", io.EOF},
		{strings.Repeat("a", MaxSecret+1) + "\n", "", ErrTooLong},
	}
	for _, tt := range tests {
		got, err := ReadSecret(strings.NewReader(tt.in))
		if string(got) != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("ReadSecret(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func FuzzReadSecret(f *testing.F) {
	f.Add([]byte("pass\x7fword\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ReadSecret(bytes.NewReader(b))
		if err == nil && (len(got) > MaxSecret || bytes.ContainsAny(got, "\r\n")) {
			t.Fatalf("ReadSecret returned %q", got)
		}
	})
}

func TestLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := &Limiter{MaxTries: 3, Lockout: time.Minute, Now: func() time.Time { return now }}
	fail := func() (int, bool) {
		t.Helper()
		tr, wait, busy := l.Reserve()
		if tr == nil {
			t.Fatalf("no try to reserve (wait %s, busy %v)", wait, busy)
		}
		return tr.Fail()
	}
	for i, want := range []int{2, 1} {
		if left, locked := fail(); left != want || locked {
			t.Fatalf("failure %d: left %d locked %v", i+1, left, locked)
		}
	}
	if _, locked := fail(); !locked || l.Wait() != time.Minute {
		t.Fatalf("third failure did not lock for a minute (wait %s)", l.Wait())
	}
	if tr, wait, _ := l.Reserve(); tr != nil || wait != time.Minute {
		t.Fatalf("a try reserved while locked (wait %s)", wait)
	}
	now = now.Add(61 * time.Second)
	if l.Wait() != 0 {
		t.Error("still locked after the lockout")
	}
}

// fakeSys lays out /sys/class/block and /dev for Scan, with img as "vdb".
type rwPipe struct {
	in  io.Reader
	out bytes.Buffer
}

func (p *rwPipe) Read(b []byte) (int, error)  { return p.in.Read(b) }
func (p *rwPipe) Write(b []byte) (int, error) { return p.out.Write(b) }
func (p *rwPipe) String() string              { return p.out.String() }

func TestSessionScripted(t *testing.T) {
	dir := t.TempDir()
	img := unlocktest.LUKSImage(t, dir, "vdb.img", "open sesame", append([]string{"--type", "luks2", "--pbkdf", "argon2id"}, unlocktest.Fast...)...)
	plain := filepath.Join(dir, "vda.img")
	_ = os.WriteFile(plain, make([]byte, 1<<20), 0o600)
	sys, dev := unlocktest.FakeSys(t, map[string]string{"vdb": img, "vda": plain})

	var codes []audit.Code
	var handed []byte
	s := &Session{Host: "web1", Boot: "b-1", Unsealer: &Unsealer{}, Limiter: &Limiter{MaxTries: 3, Lockout: time.Minute},
		Volumes: func() ([]Volume, error) { return Scan(sys, dev) },
		Report: func(_ context.Context, c audit.Code, _ map[string]string) error {
			codes = append(codes, c)
			return nil
		},
		Handoff: func(_ context.Context, opened []*Unsealed, out io.Writer) (func(), error) {
			handed = append([]byte(nil), opened[0].Pass...)
			if len(opened) != 1 || opened[0].Volume.Path != filepath.Join(dev, "vdb") {
				t.Errorf("opened = %+v", opened)
			}
			fmt.Fprintln(out, "HANDOFF")
			return func() {}, nil
		},
	}
	rw := &rwPipe{in: strings.NewReader("nope\n\nopen sesame\n")}
	code := s.Run(context.Background(), rw, false)
	out := rw.String()
	if code != ExitOK || string(handed) != "open sesame" || s.Jump() == nil {
		t.Fatalf("exit %d, handed %q\n%s", code, handed, out)
	}
	for _, want := range []string{"host web1, boot b-1", "Encrypted volumes found: 1", "/vdb  LUKS2", "20.0 MiB", "keyslot 0: argon2id, 8 MiB, 4 passes",
		"Wrong passphrase", "2 tries left; then the prompt locks for 1 minute", "unlocked with keyslot 0", "HANDOFF"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "open sesame") {
		t.Error("passphrase echoed to the customer's screen")
	}
	if fmt.Sprint(codes) != "[unlock.failure unlock.success]" {
		t.Errorf("events = %v", codes)
	}
}

func TestSessionLockoutAndRecordFirst(t *testing.T) {
	dir := t.TempDir()
	img := unlocktest.LUKSImage(t, dir, "vdb.img", "right", "--type", "luks1", "--pbkdf-force-iterations", "1000")
	sys, dev := unlocktest.FakeSys(t, map[string]string{"vdb": img})
	var codes []audit.Code
	failReport := false
	handoffs := 0
	s := &Session{Host: "h", Boot: "b", Unsealer: &Unsealer{}, Limiter: &Limiter{MaxTries: 2, Lockout: time.Hour},
		Volumes: func() ([]Volume, error) { return Scan(sys, dev) },
		Report: func(_ context.Context, c audit.Code, _ map[string]string) error {
			if failReport && c == audit.UnlockSuccess {
				return errors.New("server unreachable")
			}
			codes = append(codes, c)
			return nil
		},
		Handoff: func(context.Context, []*Unsealed, io.Writer) (func(), error) {
			handoffs++
			return func() {}, nil
		},
	}
	// Unrecorded success: no hand-off (the record comes before the act).
	failReport = true
	rw := &rwPipe{in: strings.NewReader("right\n")}
	if code := s.Run(context.Background(), rw, false); code != ExitHandoff || handoffs != 0 {
		t.Fatalf("unrecorded unlock: exit %d, %d hand-offs\n%s", code, handoffs, rw.String())
	}
	failReport = false
	rw = &rwPipe{in: strings.NewReader("a\nb\nright\n")}
	if code := s.Run(context.Background(), rw, false); code != ExitLocked {
		t.Fatalf("exit %d, want ExitLocked\n%s", code, rw.String())
	}
	if fmt.Sprint(codes) != "[unlock.failure unlock.failure unlock.lockout]" {
		t.Errorf("events = %v", codes)
	}
	rw = &rwPipe{in: strings.NewReader("right\n")}
	if code := s.Run(context.Background(), rw, false); code != ExitLocked || !strings.Contains(rw.String(), "Try again in 1 hour") {
		t.Errorf("new session during lockout: exit %d\n%s", code, rw.String())
	}
	if handoffs != 0 {
		t.Error("hand-off despite lockout")
	}
}

func TestSessionNoVolumes(t *testing.T) {
	sys, dev := unlocktest.FakeSys(t, map[string]string{})
	s := &Session{Host: "h", Boot: "b", Volumes: func() ([]Volume, error) { return Scan(sys, dev) }}
	rw := &rwPipe{in: strings.NewReader("x\n")}
	if code := s.Run(context.Background(), rw, false); code != ExitNoVolume || !strings.Contains(rw.String(), "hint:") {
		t.Errorf("exit %d\n%s", code, rw.String())
	}
}

// Volumes are looked for only once the disk drivers have loaded; the
// customer is told what the wait is for.
func TestSessionWaitsForDiskDrivers(t *testing.T) {
	sys, dev := unlocktest.FakeSys(t, map[string]string{})
	ready := make(chan struct{})
	scanned := false
	s := &Session{Host: "h", Boot: "b", DisksReady: ready, Volumes: func() ([]Volume, error) {
		select {
		case <-ready:
		default:
			t.Error("volumes scanned before the drivers were ready")
		}
		scanned = true
		return Scan(sys, dev)
	}}
	time.AfterFunc(100*time.Millisecond, func() { close(ready) })
	rw := &rwPipe{in: strings.NewReader("x\n")}
	if code := s.Run(context.Background(), rw, false); code != ExitNoVolume || !scanned || !strings.Contains(rw.String(), "Waiting for the disk drivers") {
		t.Errorf("exit %d, scanned %v\n%s", code, scanned, rw.String())
	}
}

func TestSessionHandoffFailureKeepsTerminalOpen(t *testing.T) {
	dir := t.TempDir()
	img := unlocktest.LUKSImage(t, dir, "vdb.img", "right", "--type", "luks1", "--pbkdf-force-iterations", "1000")
	sys, dev := unlocktest.FakeSys(t, map[string]string{"vdb": img})
	tries := 0
	s := &Session{Host: "h", Boot: "b", Unsealer: &Unsealer{}, Limiter: &Limiter{MaxTries: 5, Lockout: time.Hour},
		Volumes: func() ([]Volume, error) { return Scan(sys, dev) },
		Report:  func(context.Context, audit.Code, map[string]string) error { return nil },
		Handoff: func(context.Context, []*Unsealed, io.Writer) (func(), error) {
			tries++
			if tries == 1 {
				return nil, errors.New("no boot entry (loader/entries/*.conf or grub.cfg) on /dev/vda1")
			}
			return func() {}, nil
		},
	}
	rw := &rwPipe{in: strings.NewReader("right\rright\r")}
	if code := s.Run(context.Background(), rw, true); code != ExitOK || tries != 2 {
		t.Fatalf("exit %d after %d hand-off tries\n%s", code, tries, rw.String())
	}
	out := rw.String()
	if !strings.Contains(out, "no boot entry") || !strings.Contains(out, "The session stays open") || !strings.Contains(out, "\r\n") {
		t.Errorf("output:\n%q", out)
	}
	// A script gets an exit status instead.
	tries = 0
	rw = &rwPipe{in: strings.NewReader("right\n")}
	if code := s.Run(context.Background(), rw, false); code != ExitHandoff {
		t.Errorf("scripted hand-off failure: exit %d, want %d", code, ExitHandoff)
	}
}

func TestUseHugePages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "enabled")
	os.WriteFile(path, []byte("always [madvise] never\n"), 0o644)
	prev, err := UseHugePages(path)
	if got, _ := os.ReadFile(path); err != nil || prev != "madvise" || string(got) != "always" {
		t.Fatalf("UseHugePages = %q, %v; file %q", prev, err, got)
	}
	if _, err := UseHugePages(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("no error for a kernel without THP")
	}
}

// TestScriptedWrongLineAnsweredOnce: a script's one wrong line gets one
// answer (the wrong passphrase, with the tries left in words), not a second
// saying no passphrase was given.
func TestScriptedWrongLineAnsweredOnce(t *testing.T) {
	dir := t.TempDir()
	img := unlocktest.LUKSImage(t, dir, "vdb.img", "right", append([]string{"--type", "luks2", "--pbkdf", "argon2id"}, unlocktest.Fast...)...)
	sys, dev := unlocktest.FakeSys(t, map[string]string{"vdb": img})
	s := &Session{Host: "web1", Boot: "b-1", Unsealer: &Unsealer{}, Limiter: &Limiter{MaxTries: 2, Lockout: 5 * time.Minute},
		Volumes: func() ([]Volume, error) { return Scan(sys, dev) },
		Report:  func(context.Context, audit.Code, map[string]string) error { return nil },
		Handoff: func(context.Context, []*Unsealed, io.Writer) (func(), error) { return nil, nil }}
	rw := &rwPipe{in: strings.NewReader("wrong\n")}
	if code := s.Run(context.Background(), rw, false); code != ExitWrong {
		t.Fatalf("exit %d\n%s", code, rw.String())
	}
	out := rw.String()
	if !strings.Contains(out, "1 try left; then the prompt locks for 5 minutes") || strings.Contains(out, "No passphrase given") {
		t.Errorf("output:\n%s", out)
	}
	rw = &rwPipe{in: strings.NewReader("")}
	if code := s.Run(context.Background(), rw, false); code != ExitWrong || !strings.Contains(rw.String(), "No passphrase given") {
		t.Errorf("empty input: exit %d\n%s", code, rw.String())
	}
}

// TestVolumeThatCannotBeTried: a volume lifeboat cannot open (LUKS1 in
// aes-ecb, which neither the LUKS library nor lifeboat decrypts) says so,
// and the passphrase, right or wrong, is not counted as a wrong one: five
// right passphrases must not lock the customer out.
func TestVolumeThatCannotBeTried(t *testing.T) {
	dir := t.TempDir()
	img := unlocktest.LUKSImage(t, dir, "ecb.img", "right", "--type", "luks1", "--cipher", "aes-ecb", "--pbkdf-force-iterations", "1000")
	sys, dev := unlocktest.FakeSys(t, map[string]string{"vdb": img})
	var codes []audit.Code
	s := &Session{Host: "web1", Boot: "b-1", Unsealer: &Unsealer{}, Limiter: &Limiter{MaxTries: 1, Lockout: time.Hour},
		Volumes: func() ([]Volume, error) { return Scan(sys, dev) },
		Report:  func(_ context.Context, c audit.Code, _ map[string]string) error { codes = append(codes, c); return nil },
		Handoff: func(context.Context, []*Unsealed, io.Writer) (func(), error) { return nil, nil }}
	for range 3 {
		rw := &rwPipe{in: strings.NewReader("right\n")}
		if code := s.Run(context.Background(), rw, false); code != ExitCannotTry || !strings.Contains(rw.String(), "does not count as a wrong one") {
			t.Fatalf("exit %d\n%s", code, rw.String())
		}
		// Said when the volumes are listed, and no key derivation ran.
		if out := rw.String(); !strings.Contains(out, "lifeboat cannot open this cipher: aes-ecb") || strings.Contains(out, "trying keyslot") {
			t.Fatalf("the cipher was not named before the passphrase, or a key derivation ran:\n%s", out)
		}
	}
	if len(codes) != 0 || s.Limiter.Wait() != 0 {
		t.Errorf("reported %v, locked for %s: a passphrase nothing could check was counted", codes, s.Limiter.Wait())
	}
}

// TestVolumeNames: a volume is shown with its LUKS2 label, its partition's
// name and its cipher, so that the customer can tell "data" from "root";
// what the disk says is escaped (a label may hold terminal escapes).
func TestVolumeNames(t *testing.T) {
	dir := t.TempDir()
	img := unlocktest.LUKSImage(t, dir, "vdc.img", "pw", append([]string{"--type", "luks2", "--pbkdf", "argon2id", "--label", "backup\x1b[2J"}, unlocktest.Fast...)...)
	old := unlocktest.LUKSImage(t, dir, "vdd.img", "pw", "--type", "luks1", "--cipher", "aes-cbc-essiv:sha256", "--key-size", "256", "--pbkdf-force-iterations", "1000")
	sys, dev := unlocktest.FakeSys(t, map[string]string{"vdc": img, "vdd": old})
	if err := os.WriteFile(filepath.Join(sys, "vdc", "uevent"), []byte("MAJOR=254\nMINOR=3\nDEVNAME=vdc\nDEVTYPE=partition\nPARTN=3\nPARTNAME=data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	vols, err := Scan(sys, dev)
	if err != nil || len(vols) != 2 {
		t.Fatalf("Scan = %v, %v", vols, err)
	}
	got := vols[0].String()
	for _, want := range []string{"/vdc  LUKS2", `label "backup\x1b[2J"`, `partition "data"`, "aes-xts-plain64", "uuid "} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "\x1b") {
		t.Errorf("an escape from the disk reaches the terminal: %q", got)
	}
	if got := vols[1].String(); !strings.Contains(got, "/vdd  LUKS1  aes-cbc-essiv:sha256  uuid ") {
		t.Errorf("LUKS1 volume shown as %q", got)
	}
}

// TestSeveralPassphrases: root and data open with one passphrase, backup
// only with another. Every volume is accounted for: what stays locked is
// listed, the next passphrase is tried on it alone, and the hand-off gets
// each volume with the passphrase that opened it; the customer may also go
// on with what is open (Enter at a terminal; the end of a script).
func TestSeveralPassphrases(t *testing.T) {
	dir := t.TempDir()
	luks2 := append([]string{"--type", "luks2", "--pbkdf", "argon2id"}, unlocktest.Fast...)
	imgs := map[string]string{
		"vda": unlocktest.LUKSImage(t, dir, "root.img", "P", luks2...),
		"vdb": unlocktest.LUKSImage(t, dir, "data.img", "P", luks2...),
		"vdc": unlocktest.LUKSImage(t, dir, "backup.img", "Q", luks2...),
	}
	sys, dev := unlocktest.FakeSys(t, imgs)
	for _, tt := range []struct {
		name, in string
		pty      bool
		want     string // volume=passphrase handed over, by device
		says     []string
		fails    int
	}{
		{"both passphrases", "P\nQ\n", false, "vda=P vdb=P vdc=Q", []string{"Still locked (this passphrase does not open it):", "/vdc  LUKS2", "The next line of input is tried on it"}, 0},
		{"script ends after the first", "P\n", false, "vda=P vdb=P", []string{"Booting with 2 volumes open; " + filepath.Join(dev, "vdc") + " stays locked"}, 0},
		{"a wrong second one counts", "P\nX\nQ\n", false, "vda=P vdb=P vdc=Q", []string{"Wrong passphrase: it opens none of the volumes still locked. 2 tries left"}, 1},
		{"Enter goes on at a terminal", "P\r\r", true, "vda=P vdb=P", []string{"Passphrase for the 1 volume still locked (Enter: boot with the 2 volumes open)"}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var handed []string
			fails := 0
			s := &Session{Host: "web1", Boot: "b-1", Unsealer: &Unsealer{}, Limiter: &Limiter{MaxTries: 3, Lockout: time.Minute},
				Volumes: func() ([]Volume, error) { return Scan(sys, dev) },
				Report: func(_ context.Context, c audit.Code, _ map[string]string) error {
					if c == audit.UnlockFailure {
						fails++
					}
					return nil
				},
				Handoff: func(_ context.Context, opened []*Unsealed, _ io.Writer) (func(), error) {
					for _, u := range opened {
						handed = append(handed, filepath.Base(u.Volume.Path)+"="+string(u.Pass))
					}
					return func() {}, nil
				}}
			rw := &rwPipe{in: strings.NewReader(tt.in)}
			code := s.Run(context.Background(), rw, tt.pty)
			t.Logf("the dialog:\n%s", rw.String())
			if code != ExitOK {
				t.Fatalf("exit %d\n%s", code, rw.String())
			}
			slices.Sort(handed)
			if got := strings.Join(handed, " "); got != tt.want {
				t.Errorf("handed over %q, want %q\n%s", got, tt.want, rw.String())
			}
			for _, w := range tt.says {
				if !strings.Contains(rw.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, rw.String())
				}
			}
			if fails != tt.fails {
				t.Errorf("%d failures recorded, want %d", fails, tt.fails)
			}
		})
	}
}

// TestOpenable: the ciphers lifeboat opens are known before any key
// derivation; the others are named (escaped: the header is the disk's).
func TestOpenable(t *testing.T) {
	for _, tt := range []struct {
		h    Header
		want string // "" opens
	}{
		{Header{Version: 1, Cipher: "aes", Mode: "xts-plain64"}, ""},
		{Header{Version: 1, Cipher: "aes", Mode: "xts-plain"}, ""},
		{Header{Version: 1, Cipher: "aes", Mode: "cbc-essiv:sha256"}, ""},
		{Header{Version: 1, Cipher: "aes", Mode: "cbc-plain"}, ""},
		{Header{Version: 1, Cipher: "twofish", Mode: "xts-plain64"}, ""},
		{Header{Version: 1, Cipher: "twofish", Mode: "cbc-essiv:sha256", Encryption: "twofish-cbc-essiv:sha256"}, "cannot open this cipher: twofish-cbc-essiv:sha256"},
		{Header{Version: 1, Cipher: "serpent", Mode: "xts-plain64", Encryption: "serpent-xts-plain64"}, "serpent-xts-plain64"},
		{Header{Version: 1, Cipher: "aes", Mode: "ecb", Encryption: "aes-ecb\x1b[2J"}, `aes-ecb\x1b[2J`},
		{Header{Version: 2, Slots: []Slot{{Area: "aes-xts-plain64"}}}, ""},
		{Header{Version: 2, Slots: []Slot{{Area: "serpent-xts-plain64"}, {Area: "aes-xts-plain"}}}, ""},
		{Header{Version: 2, Slots: []Slot{{Area: "serpent-xts-plain64"}, {Area: "serpent-xts-plain64"}}}, "keyslots in serpent-xts-plain64 ("},
		{Header{Version: 2, Slots: []Slot{{Area: "aes-cbc-essiv:sha256"}}}, "aes-cbc-essiv:sha256"},
		{Header{Version: 2}, ""},
	} {
		err := Openable(&tt.h)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: %v, want it opened", tt.h, err)
		case tt.want != "" && (err == nil || !errors.Is(err, ErrCannotOpen) || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%+v: %v, want ErrCannotOpen naming %q", tt.h, err, tt.want)
		}
	}
}

// TestLimiterReservesAtomically: twenty channels that read a passphrase at
// the same moment get five tries between them (MaxTries), not twenty: a
// try is reserved with the lockout's check, and counts until answered.
// Tries that could not say (Cancel) are given back; a success clears.
func TestLimiterReservesAtomically(t *testing.T) {
	l := &Limiter{MaxTries: 5, Lockout: time.Hour}
	var mu sync.Mutex
	var got []*Try
	busy := 0
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr, wait, b := l.Reserve()
			mu.Lock()
			defer mu.Unlock()
			if tr != nil {
				got = append(got, tr)
			} else if b && wait == 0 {
				busy++
			}
		}()
	}
	wg.Wait()
	if len(got) != 5 || busy != 15 {
		t.Fatalf("%d tries reserved, %d told busy; want 5 and 15", len(got), busy)
	}
	got[0].Cancel()
	if tr, _, _ := l.Reserve(); tr == nil {
		t.Fatal("a cancelled try was not given back")
	} else {
		got[0] = tr
	}
	for i, tr := range got {
		left, locked := tr.Fail()
		if locked != (i == 4) || (i < 4 && left != 4-i) {
			t.Errorf("failure %d: %d left, locked %v", i+1, left, locked)
		}
		tr.Fail() // a second answer changes nothing
	}
	if tr, wait, _ := l.Reserve(); tr != nil || wait <= 0 {
		t.Errorf("after five failures: try %v, wait %s; want locked", tr, wait)
	}
	l2 := &Limiter{MaxTries: 3, Lockout: time.Hour}
	a, _, _ := l2.Reserve()
	a.Fail()
	b, _, _ := l2.Reserve()
	b.Succeed()
	for range 2 {
		c, _, _ := l2.Reserve()
		c.Fail()
	}
	if c, _, _ := l2.Reserve(); c == nil {
		t.Error("a success did not clear the count")
	}
}
