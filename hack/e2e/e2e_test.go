//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-boot/lifeboat/hack/fixture"
	"github.com/lifeboat-boot/lifeboat/hack/rig"
	"github.com/lifeboat-boot/lifeboat/hack/vm"
	"github.com/lifeboat-boot/lifeboat/images"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/store/sqlite"
)

type rigT struct {
	*rig.Rig
	dir   string
	disks map[string]*fixture.Disk // by layout name
	// passphrase opens every volume but the five-volume disk's "vault",
	// which opens with second.
	passphrase, second string
	// attack, if set, runs once the host is ready for unlock, before the
	// customer unlocks it (TestImpostor).
	attack func(t *testing.T, ctx context.Context, h rig.Host)
}

// layout is a test disk: what its volumes are, and what the test OS prints
// once it opened them.
type layout struct {
	// volumes are the volumes besides the root (the root's format is
	// root), and markers what the test OS prints of each.
	root    fixture.Format
	data    bool
	volumes func(second string) []fixture.Volume
	markers map[string]string
}

// layouts are the test disks; diskOf says which host boots which (the
// others boot "two").
var layouts = map[string]layout{
	// A root and a data volume on one passphrase: one unlock opens both,
	// and the OS finds a key for each.
	"two": {data: true, markers: map[string]string{"data": dataMarker}},
	// Five volumes as a customer's disk grows over the years: root and
	// data on the passphrase, a LUKS2 volume on a passphrase of its own,
	// and two LUKS1 volumes from an older install (aes-xts and the old
	// default aes-cbc-essiv:sha256) on the passphrase.
	"five": {data: true, volumes: func(second string) []fixture.Volume {
		return []fixture.Volume{
			{Name: "vault", UUID: "9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b", Label: "vault", Passphrase: []byte(second), Marker: "marker-from-the-vault"},
			{Name: "legacy-xts", UUID: "5d6e7f80-9a1b-4c2d-8e3f-4a5b6c7d8e9f", Format: fixture.Format{Type: "luks1"}, Marker: "marker-from-luks1-xts"},
			{Name: "legacy-cbc", UUID: "7f8091a2-b3c4-4d5e-9f60-718293a4b5c6", Format: fixture.Format{Type: "luks1", Cipher: "aes-cbc-essiv:sha256"}, Marker: "marker-from-luks1-cbc-essiv"},
		}
	}, markers: map[string]string{"data": dataMarker, "vault": "marker-from-the-vault", "legacy-xts": "marker-from-luks1-xts", "legacy-cbc": "marker-from-luks1-cbc-essiv"}},
	// An install from the years of cryptsetup's LUKS1 default: the root
	// alone, in aes-cbc-essiv:sha256.
	"cbc": {root: fixture.Format{Type: "luks1", Cipher: "aes-cbc-essiv:sha256"}},
}

var diskOf = map[string]string{"bios-host": "five", "uefi-pxe-host": "cbc"}

func layoutOf(host string) string {
	if l, ok := diskOf[host]; ok {
		return l
	}
	return "two"
}

func repoRoot(t *testing.T) string {
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	t.Fatal("no go.mod above", dir)
	return ""
}

var hosts = []rig.Host{
	{Name: "bios-host", Firmware: "bios", MAC: "52:54:00:4c:42:10", IP: "10.77.0.10"},
	{Name: "uefi-host", Firmware: "uefi", MAC: "52:54:00:4c:42:20", IP: "10.77.0.20"},
	{Name: "uefi-pxe-host", Firmware: "uefi-pxe", MAC: "52:54:00:4c:42:30", IP: "10.77.0.30"},
	{Name: "uefi-http-host", Firmware: "uefi-http", MAC: "52:54:00:4c:42:80", IP: "10.77.0.80"},
}

// setup builds the disks of o.Hosts and starts their site (o.Root and
// o.Dir are filled in).
func setup(t *testing.T, o rig.Options) *rigT {
	root := repoRoot(t)
	hs := o.Hosts
	r := &rigT{dir: t.TempDir(), passphrase: "canary-" + rig.RandHex(12), second: "canary-" + rig.RandHex(12), disks: map[string]*fixture.Disk{}}
	k, err := images.FetchKernel(filepath.Join(root, "build", "cache"), "linux-image-amd64")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		name := layoutOf(h.Name)
		if r.disks[name] != nil {
			continue
		}
		l := layouts[name]
		o := fixture.Options{Kernel: k, Dir: filepath.Join(r.dir, "disk-"+name), Passphrase: []byte(r.passphrase),
			Marker: "marker-from-the-encrypted-root", PBKDFMemoryKiB: 32 * 1024, PBKDFTime: 4, Root: l.root}
		if l.data {
			o.Data = dataMarker
		}
		if l.volumes != nil {
			o.Volumes = l.volumes(r.second)
		}
		start := time.Now()
		if r.disks[name], err = fixture.Build(o); err != nil {
			t.Fatal(err)
		}
		t.Logf("test disk %q built in %s", name, time.Since(start).Round(time.Millisecond))
	}
	o.Root, o.Dir = root, r.dir
	r.Rig = startRig(t, o)
	return r
}

// vmSlots bounds the QEMU hosts running at once across the parallel tests:
// under software emulation on a small machine, more than two per core
// starve one another past every timeout.
var vmSlots = make(chan struct{}, max(2, 2*runtime.NumCPU()))

// startVM starts host on ns once a slot is free, and frees it when QEMU
// exits (or ctx ends first).
func startVM(t *testing.T, ctx context.Context, host *vm.Host, ns *vm.NS, tap string) *vm.Running {
	t.Helper()
	select {
	case vmSlots <- struct{}{}:
	case <-ctx.Done():
		t.Fatalf("%s: no slot to start in: %v", host.Name, ctx.Err())
	}
	run, err := host.Start(ctx, ns, tap)
	if err != nil {
		<-vmSlots
		t.Fatal(err)
	}
	go func() { <-run.Done(); <-vmSlots }()
	return run
}

// bootToPrompt powers host on (once a VM slot is free) and waits for its
// "ready for unlock" banner, which it returns with the power-on time. The
// host is killed when t ends, its console logged if t failed.
func bootToPrompt(t *testing.T, ctx context.Context, host *vm.Host, ns *vm.NS, tap string) (*vm.Running, time.Time, string) {
	t.Helper()
	run := startVM(t, ctx, host, ns, tap)
	start := time.Now() // after a slot was free: power-on
	t.Cleanup(run.Kill)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s console:\n%s", host.Name, run.Console.Text())
		}
	})
	line, err := run.Console.WaitFor(ctx, 8*time.Minute, "is ready for unlock", "FATAL")
	if err != nil || strings.Contains(line, "FATAL") {
		t.Fatalf("%s: not ready for unlock: %v %s", host.Name, err, line)
	}
	return run, start, line
}

// startRig starts a site and stops it when t ends, showing lifeboatd's log
// (and the site DHCP server's) if t failed.
func startRig(t *testing.T, o rig.Options) *rig.Rig {
	r, err := rig.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("lifeboatd log:\n%s", r.ServerLog.String())
			if r.SiteLog != nil {
				t.Logf("site DHCP (dnsmasq) log:\n%s", r.SiteLog.String())
			}
		}
	})
	return r
}

func (r *rigT) ssh(ctx context.Context, ip string, extra ...string) *exec.Cmd {
	return r.NS.Command(ctx, "ssh", r.SSHArgs(ip, append([]string{"-o", "BatchMode=yes"}, extra...)...)...)
}

// TestEndToEnd boots a BIOS and a UEFI host from lifeboatd, unlocks each over
// SSH (interactively on a pty, and scripted on stdin), and checks that the
// OS booted from inside its encrypted root; an unknown host gets nothing.
func TestEndToEnd(t *testing.T) {
	t.Parallel() // each site has its own namespace
	r := setup(t, rig.Options{Hosts: hosts})
	canaryHits := watchProcs(t, r.passphrase, r.second)

	t.Run("hosts", func(t *testing.T) {
		t.Run("bios-interactive", func(t *testing.T) { t.Parallel(); r.bootAndUnlock(t, hosts[0], true) })
		t.Run("uefi-scripted", func(t *testing.T) { t.Parallel(); r.bootAndUnlock(t, hosts[1], false) })
		t.Run("uefi-native-pxe-scripted", func(t *testing.T) { t.Parallel(); r.bootAndUnlock(t, hosts[2], false) })
		t.Run("uefi-http-boot-scripted", func(t *testing.T) { t.Parallel(); r.bootAndUnlock(t, hosts[3], false) })
		t.Run("unknown-mac", func(t *testing.T) { t.Parallel(); r.unknownHost(t) })
	})

	t.Run("canary", func(t *testing.T) {
		if hits := canaryHits(); len(hits) > 0 {
			t.Errorf("passphrase found in process argv/environment: %v", hits)
		}
		for _, pass := range []string{r.passphrase, r.second} {
			if strings.Contains(r.ServerLog.String(), pass) {
				t.Error("passphrase found in lifeboatd's log")
			}
			for _, f := range []string{r.EventLog, r.EventLog + "-wal"} {
				ev, _ := os.ReadFile(f)
				if bytes.Contains(ev, []byte(pass)) {
					t.Errorf("passphrase found in the database (%s)", filepath.Base(f))
				}
			}
			for _, h := range hosts {
				con, _ := os.ReadFile(filepath.Join(r.dir, h.Name+"-console.log"))
				if len(con) == 0 {
					t.Errorf("%s: empty console log", h.Name)
				}
				if bytes.Contains(con, []byte(pass)) {
					t.Errorf("passphrase found on %s's console", h.Name)
				}
			}
		}
	})

	t.Run("events", func(t *testing.T) {
		evs, err := sqlite.ReadEvents(r.EventLog)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			string(audit.BootStart), string(audit.DHCPOffer), string(audit.DHCPAck), string(audit.ScriptFetch),
			"http.image:vmlinuz", "http.image:initramfs.cpio.zst", "http.image:agent.cpio",
			string(audit.AgentCheckin), string(audit.SSHLogin), string(audit.UnlockFailure),
			string(audit.UnlockSuccess), string(audit.Handoff),
		}
		for _, h := range hosts {
			var got []string
			boot := ""
			for _, e := range evs {
				if e.Host != h.Name {
					continue
				}
				if boot == "" {
					boot = e.Boot
				}
				if e.Boot != boot || e.MAC != h.MAC {
					t.Errorf("%s: event %s has boot %q mac %q, want %q %q", h.Name, e.Code, e.Boot, e.MAC, boot, h.MAC)
				}
				c := string(e.Code)
				if e.Code == audit.ImageFetch || e.Code == audit.FirstStageFetch {
					c += ":" + e.Details["file"]
				}
				got = append(got, c)
			}
			w := want
			if h.Firmware == "uefi-pxe" {
				// The firmware's own PXE client takes the first stage
				// over TFTP, then iPXE asks DHCP again: one boot.
				w = append([]string{string(audit.BootStart), string(audit.DHCPOffer), string(audit.DHCPAck), "tftp.fetch:ipxe.efi"}, want[1:]...)
			}
			if h.Firmware == "uefi-http" {
				// The firmware's HTTP boot takes ipxe.efi from /loaders/
				// (the same event code, with via=http).
				w = append([]string{string(audit.BootStart), string(audit.DHCPOffer), string(audit.DHCPAck), "tftp.fetch:ipxe.efi"}, want[1:]...)
			}
			if !subsequence(w, got) {
				t.Errorf("%s: events\n  %v\nwant in this order\n  %v", h.Name, got, w)
			}
		}
		for _, e := range evs {
			if e.MAC == unknownMAC {
				t.Errorf("event for the unknown MAC: %+v", e)
			}
			if e.Code == audit.AgentCheckin && e.Details["host_cert_serial"] == "" {
				t.Errorf("%s: check-in without a host certificate: %+v", e.Host, e)
			}
		}
		if _, err := audit.Verify(evs, audit.Start()); err != nil {
			t.Errorf("the audit chain of the run does not verify: %v", err)
		}
	})
}

func subsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func (r *rigT) bootAndUnlock(t *testing.T, h rig.Host, interactive bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	tap, err := r.NS.AddTap()
	if err != nil {
		t.Fatal(err)
	}
	lay := layouts[layoutOf(h.Name)]
	host := &vm.Host{Name: h.Name, Firmware: h.Firmware, MAC: h.MAC, Disk: r.disks[layoutOf(h.Name)].Path, MemMiB: 1536, Dir: r.dir}
	run, start, line := bootToPrompt(t, ctx, host, r.NS, tap)
	readyAt := time.Now()
	t.Logf("%s: power-on to SSH-ready: %s", h.Name, readyAt.Sub(start).Round(100*time.Millisecond))
	if !strings.Contains(line, "ssh root@"+h.IP) {
		t.Errorf("ready line %q does not name the reserved address %s", line, h.IP)
	}

	if r.attack != nil {
		r.attack(t, ctx, h)
	}
	wrong := "not-the-" + r.passphrase[len("canary-"):] // shares no canary prefix
	var unlockedAt time.Time
	if interactive {
		unlockedAt = r.unlockInteractive(t, ctx, h, lay, wrong, readyAt)
	} else {
		unlockedAt = r.unlockScripted(t, ctx, h, wrong, readyAt)
	}
	if _, err := run.Console.WaitFor(ctx, 6*time.Minute, "TESTOS-MARKER: marker-from-the-encrypted-root", "TESTOS-FAIL"); err != nil {
		t.Fatalf("%s: the OS did not open its encrypted root: %v", h.Name, err)
	}
	if l, _ := run.Console.WaitFor(ctx, time.Second, "TESTOS-FAIL"); l != "" {
		t.Fatalf("%s: %s", h.Name, l)
	}
	// The test OS prints the other volumes' markers before the root's.
	for name, marker := range lay.markers {
		if !strings.Contains(run.Console.Text(), "TESTOS-VOLUME "+name+": "+marker) {
			t.Errorf("%s: the OS did not open its volume %q with the handed-over key", h.Name, name)
		}
	}
	t.Logf("%s: passphrase to OS marker: %s", h.Name, time.Since(unlockedAt).Round(100*time.Millisecond))
	if err := run.Wait(time.Minute); err != nil {
		t.Logf("%s: qemu exit: %v", h.Name, err)
	}
}

// unlockInteractive drives the prompt as a person would, on a pty: a
// wrong passphrase, then the right one, and on the five-volume disk the
// vault's own passphrase for the one volume still locked.
func (r *rigT) unlockInteractive(t *testing.T, ctx context.Context, h rig.Host, lay layout, wrong string, readyAt time.Time) time.Time {
	cmd := r.ssh(ctx, h.IP, "-tt")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := &expect{r: bufio.NewReader(stdout), t: t}
	defer func() { t.Logf("%s: the unlock session:\n%s", h.Name, out.all.String()) }()
	vols := 1 + len(lay.markers)
	out.until(fmt.Sprintf("Encrypted volumes found: %d", vols))
	out.until("LUKS2")
	out.until("argon2id")
	out.until("Passphrase for ")
	t.Logf("%s: \"ready for unlock\" on the console to the prompt on a first login: %s", h.Name, time.Since(readyAt).Round(100*time.Millisecond))
	fmt.Fprintf(stdin, "%s\r", wrong)
	out.until("Wrong passphrase")
	out.until("4 tries left")
	out.until("Passphrase for ")
	at := time.Now()
	fmt.Fprintf(stdin, "%s\r", r.passphrase)
	second := 0
	if lay.volumes != nil {
		for _, v := range lay.volumes(r.second) {
			if string(v.Passphrase) == r.second {
				second++
			}
		}
	}
	for range vols - second {
		out.until("unlocked with keyslot 0")
	}
	if second > 0 {
		out.until("Still locked (this passphrase does not open it):")
		out.until(`label "vault"`)
		out.until("Passphrase for the 1 volume still locked (Enter: boot with the 4 volumes open): ")
		fmt.Fprintf(stdin, "%s\r", r.second)
		out.until("unlocked with keyslot 0")
	}
	out.until("Handing over to the OS kernel")
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("interactive ssh after a successful unlock: %v, want exit status 0", err)
	}
	return at
}

// unlockScripted uses the non-interactive form: the passphrase on stdin.
func (r *rigT) unlockScripted(t *testing.T, ctx context.Context, h rig.Host, wrong string, readyAt time.Time) time.Time {
	cmd := r.ssh(ctx, h.IP)
	cmd.Args = append(cmd.Args, "unlock")
	cmd.Stdin = strings.NewReader(wrong + "\n")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("wrong passphrase: exit %v, want exit status 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "Wrong passphrase") {
		t.Fatalf("wrong passphrase: no clear message in\n%s", out)
	}
	t.Logf("%s: \"ready for unlock\" to the answer of a first scripted try: %s", h.Name, time.Since(readyAt).Round(100*time.Millisecond))
	at := time.Now()
	cmd = r.ssh(ctx, h.IP)
	cmd.Args = append(cmd.Args, "unlock")
	cmd.Stdin = strings.NewReader(r.passphrase + "\n")
	out, err = cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Handing over to the OS kernel") {
		t.Fatalf("right passphrase: %v, want exit status 0 and a hand-off message in\n%s", err, out)
	}
	return at
}

type expect struct {
	r        *bufio.Reader
	t        *testing.T
	buf, all strings.Builder
}

// until reads until s appears (the ssh process's own timeouts bound it).
func (e *expect) until(s string) {
	e.t.Helper()
	for !strings.Contains(e.buf.String(), s) {
		b, err := e.r.ReadByte()
		if err != nil {
			e.t.Fatalf("waiting for %q: %v; got:\n%s", s, err, e.buf.String())
		}
		e.buf.WriteByte(b)
		e.all.WriteByte(b)
	}
	rest := e.buf.String()
	rest = rest[strings.Index(rest, s)+len(s):]
	e.buf.Reset()
	e.buf.WriteString(rest)
}

const unknownMAC = "52:54:00:4c:42:99"

// dataMarker is in the test disk's second encrypted volume.
const dataMarker = "marker-from-the-second-volume"

func (r *rigT) unknownHost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tap, err := r.NS.AddTap()
	if err != nil {
		t.Fatal(err)
	}
	// UEFI, because OVMF and its iPXE print to the serial console (SeaBIOS
	// and the BIOS iPXE ROM print only to the screen).
	host := &vm.Host{Name: "unknown-host", Firmware: "uefi", MAC: unknownMAC, Dir: r.dir}
	run := startVM(t, ctx, host, r.NS, tap)
	defer run.Kill()
	// iPXE gives up on DHCP after its retries; the firmware then has
	// nothing to boot.
	line, err := run.Console.WaitFor(ctx, 4*time.Minute, "No configuration methods succeeded", "lifeboat:")
	if err != nil {
		t.Fatalf("unknown host: %v\n%s", err, run.Console.Text())
	}
	if strings.Contains(line, "lifeboat:") {
		t.Fatalf("unknown host was booted: %s", line)
	}
	// The silence was lifeboatd's decision, not a lost packet.
	if !strings.Contains(r.ServerLog.String(), `"msg":"dhcp: unknown MAC, staying silent","mac":"`+unknownMAC) {
		t.Errorf("lifeboatd did not log the unknown MAC %s at debug level", unknownMAC)
	}
}

// watchProcs samples every process's argv and environment until the
// returned function is called, and returns those that held the canary.
func watchProcs(t *testing.T, canaries ...string) func() []string {
	stop := make(chan struct{})
	var mu sync.Mutex
	hits := map[string]bool{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			procs, _ := filepath.Glob("/proc/[0-9]*")
			for _, p := range procs {
				for _, f := range []string{"cmdline", "environ"} {
					b, err := os.ReadFile(filepath.Join(p, f))
					for _, canary := range canaries {
						if err == nil && bytes.Contains(b, []byte(canary)) {
							mu.Lock()
							hits[p+"/"+f+": "+strings.ReplaceAll(string(b), "\x00", " ")] = true
							mu.Unlock()
						}
					}
				}
			}
		}
	}()
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(stop); wg.Wait() }) })
	return func() []string {
		once.Do(func() { close(stop); wg.Wait() })
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for h := range hits {
			out = append(out, h)
		}
		return out
	}
}

// TestProxyAndDiskMode runs a site whose own DHCP server (dnsmasq, on
// another machine of the segment) hands out the addresses, with lifeboatd
// as a proxyDHCP server: a BIOS host unlocks through it, and a UEFI host in
// disk mode goes straight on to its own disk's boot loader.
func TestProxyAndDiskMode(t *testing.T) {
	proxyHosts := []rig.Host{
		{Name: "proxy-bios-host", Firmware: "bios", MAC: "52:54:00:4c:42:40", IP: "10.77.0.40"},
		{Name: "disk-mode-host", Firmware: "uefi", MAC: "52:54:00:4c:42:50", IP: "10.77.0.50", Mode: "disk"},
	}
	t.Parallel()
	r := setup(t, rig.Options{Hosts: proxyHosts, Proxy: true})
	k, err := images.FetchKernel(filepath.Join(r.Root, "build", "cache"), "linux-image-amd64")
	if err != nil {
		t.Fatal(err)
	}
	esp, err := fixture.BuildESP(fixture.Options{Kernel: k, Dir: filepath.Join(r.dir, "esp")})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("hosts", func(t *testing.T) {
		t.Run("proxy-unlock", func(t *testing.T) { t.Parallel(); r.bootAndUnlock(t, proxyHosts[0], false) })
		t.Run("disk-mode", func(t *testing.T) {
			t.Parallel()
			h := proxyHosts[1]
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			tap, err := r.NS.AddTap()
			if err != nil {
				t.Fatal(err)
			}
			m := &vm.Host{Name: h.Name, Firmware: h.Firmware, MAC: h.MAC, Disk: esp.Path, Dir: r.dir}
			run := startVM(t, ctx, m, r.NS, tap)
			defer run.Kill()
			start := time.Now()
			line, err := run.Console.WaitFor(ctx, 8*time.Minute, "TESTOS: booted", "is ready for unlock")
			if err != nil || !strings.Contains(line, "TESTOS: booted") {
				t.Fatalf("disk-mode host did not boot its own disk: %v %s\n%s", err, line, run.Console.Text())
			}
			t.Logf("%s: power-on to its own OS from disk: %s", h.Name, time.Since(start).Round(100*time.Millisecond))
			if !strings.Contains(run.Console.Text(), "is in disk mode") {
				t.Errorf("iPXE did not run lifeboatd's disk-mode script first:\n%s", run.Console.Text())
			}
		})
	})
	evs, err := sqlite.ReadEvents(r.EventLog)
	if err != nil {
		t.Fatal(err)
	}
	var proxyCodes, diskCodes []string
	for _, e := range evs {
		c := string(e.Code)
		if e.Code == audit.ImageFetch {
			c += ":" + e.Details["file"]
		}
		switch e.Host {
		case proxyHosts[0].Name:
			proxyCodes = append(proxyCodes, c)
			if e.Code == audit.DHCPOffer && e.Details["mode"] != "proxy" {
				t.Errorf("proxy site: offer event %+v not marked proxy", e)
			}
		case proxyHosts[1].Name:
			diskCodes = append(diskCodes, c)
		}
	}
	want := []string{string(audit.BootStart), string(audit.DHCPOffer), string(audit.ScriptFetch), "http.image:vmlinuz",
		"http.image:initramfs.cpio.zst", "http.image:agent.cpio", string(audit.AgentCheckin), string(audit.SSHLogin),
		string(audit.UnlockFailure), string(audit.UnlockSuccess), string(audit.Handoff)}
	if !subsequence(want, proxyCodes) {
		t.Errorf("proxy host events %v, want in order %v", proxyCodes, want)
	}
	for _, c := range proxyCodes {
		if c == string(audit.DHCPAck) {
			t.Error("lifeboatd ACKed an address in proxy mode")
		}
	}
	if !subsequence([]string{string(audit.BootStart), string(audit.DHCPOffer), string(audit.ScriptFetch)}, diskCodes) ||
		strings.Contains(strings.Join(diskCodes, " "), "http.image") {
		t.Errorf("disk-mode host events %v: want a script and no image", diskCodes)
	}
	if !strings.Contains(r.SiteLog.String(), "DHCPACK(eth0) 10.77.0.40") {
		t.Errorf("the site's DHCP server did not give the proxy host its address:\n%s", r.SiteLog.String())
	}
}
