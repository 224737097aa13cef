package httpboot

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/lifeboat-boot/lifeboat/hack/paths"

	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/boot/dhcp"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/store/sqlite"
)

const custKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl c"

type rig struct {
	db     *sqlite.DB
	srv    *httptest.Server
	events string
	steps  *store.Steps
	boot   *store.Boot
	logBuf *bytes.Buffer
}

// newRig serves a host whose reservation is 127.0.0.1, so that the test
// client on loopback is that host.
func newRig(t testing.TB) *rig { return newRigWith(t, "", nil) }

// newRigWith adds the inventory entries in extra (a JSON list's items,
// each with a boot in flight) and serves a first-stage pool.
func newRigWith(t testing.TB, extra string, pool *dhcp.Pool) *rig {
	dir := t.TempDir()
	_ = os.MkdirAll(filepath.Join(dir, "tftp"), 0o755)
	for _, f := range []string{"vmlinuz", "initramfs.cpio", "tftp/ipxe.efi", "tftp/other.efi"} {
		if err := os.WriteFile(filepath.Join(dir, f), bytes.Repeat([]byte(f), 1000), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.WriteFile(filepath.Join(filepath.Dir(dir), "secret"), []byte("TOPSECRET"), 0o644)
	_ = os.Symlink("../secret", filepath.Join(dir, "secret"))
	inv, err := store.ParseInventory([]byte(`{"hosts":[{"name":"web1","mac":"52:54:00:00:00:01","ip":"127.0.0.1","authorized_keys":["` + custKey + `"]},
		{"name":"db1","mac":"52:54:00:00:00:02","ip":"127.0.0.2","mode":"disk","authorized_keys":["` + custKey + `"]}` + extra + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{events: filepath.Join(dir, "lifeboat.db"), logBuf: &bytes.Buffer{}}
	el, err := sqlite.Open(context.Background(), r.events)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { el.Close() })
	if _, err := el.Apply(context.Background(), store.Change{Put: inv.Hosts()}, "test"); err != nil {
		t.Fatal(err)
	}
	if r.steps, err = el.NewSteps(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, b := range []struct {
		mac, name string
		fw        store.Firmware
	}{{"52:54:00:00:00:01", "web1", "bios"}, {"52:54:00:00:00:02", "db1", "uefi"}, {"52:54:00:00:00:03", "vl1", "bios"}} {
		if _, ok := inv.ByName(b.name); !ok {
			continue
		}
		boot, _, err := r.steps.Begin(context.Background(), b.mac, b.name, store.ClientIPXE, b.fw, audit.Event{Code: audit.BootStart})
		if err != nil {
			t.Fatal(err)
		}
		if r.boot == nil {
			r.boot = boot
		}
	}
	r.db = el
	s := &Server{Image: Image{Loaders: []string{"ipxe.efi"}, Dir: dir, Kernel: "vmlinuz", Initramfs: "initramfs.cpio", Cmdline: "console=ttyS0"},
		Inventory: dhcp.FirstStageInventory{Inventory: el, Pool: pool}, Steps: r.steps, Tokens: el, Log: slog.New(slog.NewTextHandler(r.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		AgentURL: "https://127.0.0.1:8443", AgentKey: "MCowBQYDK2VwAyEA" + strings.Repeat("A", 43) + "="}
	h, err := s.Handler()
	if err != nil {
		t.Fatal(err)
	}
	r.srv = httptest.NewServer(h)
	s.BaseURL = r.srv.URL
	t.Cleanup(r.srv.Close)
	return r
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

var tokenRE = regexp.MustCompile(`/boot/agent/([A-Za-z0-9_-]+)\.cpio`)

func TestBootFlow(t *testing.T) {
	r := newRig(t)
	code, script := get(t, r.srv.URL+"/boot/52:54:00:00:00:01.ipxe")
	if code != 200 {
		t.Fatalf("script: HTTP %d %s", code, script)
	}
	for _, want := range []string{"#!ipxe", "kernel --name vmlinuz " + r.srv.URL + "/images/vmlinuz console=ttyS0 initrd=initramfs.cpio initrd=agent.cpio", "initrd --name initramfs.cpio"} {
		if !bytes.Contains(script, []byte(want)) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	m := tokenRE.FindSubmatch(script)
	if m == nil {
		t.Fatalf("no agent archive URL in script:\n%s", script)
	}
	token := string(m[1])
	if bytes.Contains(script[:bytes.Index(script, []byte("initrd --name agent"))], []byte(token)) {
		t.Error("token appears outside the agent archive URL (kernel command line?)")
	}

	// The agent archive carries the token inside, as a cpio file.
	code, arch := get(t, r.srv.URL+"/boot/agent/"+token+".cpio")
	if code != 200 {
		t.Fatalf("agent archive: HTTP %d", code)
	}
	rr := cpio.Newc.Reader(bytes.NewReader(arch))
	recs, err := cpio.ReadAllRecords(rr)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, rec := range recs {
		if rec.Name == agentapi.BootFile {
			b, _ := io.ReadAll(io.NewSectionReader(rec.ReaderAt, 0, int64(rec.FileSize)))
			var p agentapi.BootParams
			// The agent API's pinned key and https URL ride with the token.
			found = json.Unmarshal(b, &p) == nil && p.Token == token && p.Boot == r.boot.ID &&
				p.Server == "https://127.0.0.1:8443" && strings.HasPrefix(p.ServerKey, "MCowBQYDK2VwAyEA")
		}
	}
	if !found {
		t.Fatalf("agent archive lacks %s with token, boot id and the agent API's URL and key", agentapi.BootFile)
	}

	if code, body := get(t, r.srv.URL+"/images/vmlinuz"); code != 200 || !bytes.HasPrefix(body, []byte("vmlinuz")) {
		t.Errorf("kernel: HTTP %d", code)
	}
	for _, p := range []string{"/images/..%2fev.jsonl", "/images/ev.jsonl", "/images/%2e%2e", "/boot/agent/nope.cpio", "/boot/52:54:00:00:00:99.ipxe", "/boot/garbage.ipxe"} {
		if code, _ := get(t, r.srv.URL+p); code == 200 {
			t.Errorf("GET %s = 200, want refusal", p)
		}
	}

	if cur, _ := r.steps.Current("52:54:00:00:00:01"); cur.Stage != store.StageKernel {
		t.Errorf("boot stage = %v, want kernel", cur.Stage)
	}
	// Once the agent has checked in, the archive is not served again.
	if _, err := r.db.Checkin(context.Background(), store.CheckinRequest{Token: token, HostKey: "SHA256:k", Peer: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, r.srv.URL+"/boot/agent/"+token+".cpio"); code == 200 {
		t.Error("agent archive still served after check-in")
	}

	evs, err := sqlite.ReadEvents(r.events)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, e := range evs {
		codes = append(codes, string(e.Code))
	}
	// Every fetch is recorded before it is served, the refused ones not at all.
	want := "host.add host.add boot.start boot.start http.script http.image http.image agent.checkin"
	if got := strings.Join(codes, " "); got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}
	// The token never reaches the log or the event log.
	ev, _ := os.ReadFile(r.events)
	if bytes.Contains(ev, []byte(token)) || strings.Contains(r.logBuf.String(), token) {
		t.Error("boot token leaked into a log")
	}
}

// A host on a VLAN fetches its script from the first-stage pool address
// it holds, and its agent archive names its VLAN; the pool address is no
// other host's, and no one's before it is leased.
func TestVLANHostFromPool(t *testing.T) {
	pool, err := dhcp.ParsePool("127.0.0.9-127.0.0.9/8", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r := newRigWith(t, `,{"name":"vl1","mac":"52:54:00:00:00:03","ip":"10.9.120.5","vlan":120,"authorized_keys":["`+custKey+`"]}`, pool)
	from := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9)}}).DialContext}}
	fetch := func(path string) (int, []byte) {
		resp, err := from.Get(r.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, _ := fetch("/boot/52:54:00:00:00:03.ipxe"); code == 200 {
		t.Fatal("script served to a pool address nobody holds")
	}
	if a, ok := pool.Lease("52:54:00:00:00:03"); !ok || a.String() != "127.0.0.9" {
		t.Fatalf("lease: %s %v", a, ok)
	}
	if code, _ := fetch("/boot/52:54:00:00:00:01.ipxe"); code == 200 {
		t.Error("another host's script served to vl1's pool address")
	}
	code, script := fetch("/boot/52:54:00:00:00:03.ipxe")
	m := tokenRE.FindSubmatch(script)
	if code != 200 || m == nil {
		t.Fatalf("script from the pool address: HTTP %d\n%s", code, script)
	}
	_, arch := fetch("/boot/agent/" + string(m[1]) + ".cpio")
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(arch)))
	if err != nil {
		t.Fatal(err)
	}
	var p agentapi.BootParams
	for _, rec := range recs {
		if rec.Name == agentapi.BootFile {
			b, _ := io.ReadAll(io.NewSectionReader(rec.ReaderAt, 0, int64(rec.FileSize)))
			_ = json.Unmarshal(b, &p)
		}
	}
	if p.VLAN != 120 || p.Host != "vl1" {
		t.Errorf("boot parameters %+v: want host vl1 on VLAN 120", p)
	}
}

// FuzzRenderScript: whatever the inventory lets through as a host name and
// whatever the server puts in the other fields, the script keeps its
// commands: one line per field, nothing injected.
func FuzzRenderScript(f *testing.F) {
	f.Add("web1", "console=ttyS0", "b-0123456789abcdef")
	f.Add("a\nchain http://x/", "x\ny", "b")
	f.Fuzz(func(t *testing.T, host, cmdline, boot string) {
		if !store.NameRE.MatchString(host) || strings.ContainsAny(cmdline, "\n\r\x00") || strings.ContainsAny(boot, "\n\r") {
			return // refused at the inventory, the config or never made (boot ids are ours)
		}
		b, err := RenderScript(ScriptData{Host: host, Boot: boot, Base: "http://10.0.0.1:8080", Kernel: "vmlinuz", Initramfs: "initramfs.cpio", Cmdline: cmdline, Token: store.NewSecret()})
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 10 || lines[0] != "#!ipxe" || !strings.HasPrefix(lines[2], "kernel ") || lines[5] != "boot || goto failed" {
			t.Fatalf("script shape changed:\n%s", b)
		}
	})
}

// TestHostilePaths sends 200+ odd paths under every route as raw request
// lines; none may be answered with a file, and nothing outside the image
// folder (a secret next to it, reachable through a link inside it) leaks.
func TestHostilePaths(t *testing.T) {
	r := newRig(t)
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "secret"), []byte("TOPSECRET"), 0o644)
	names := paths.Hostile([]string{"vmlinuz", "initramfs.cpio"}, "secret")
	count := 0
	for _, route := range []string{"/images/", "/boot/", "/boot/agent/", "/"} {
		for _, n := range names {
			count++
			c, err := net.Dial("tcp", r.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "GET %s%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", route, n)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, _ := io.ReadAll(c)
			c.Close()
			status := string(resp)
			if i := strings.Index(status, "\r\n"); i > 0 {
				status = status[:i]
			}
			if strings.Contains(status, " 200 ") || strings.Contains(status, " 206 ") || bytes.Contains(resp, []byte("TOPSECRET")) {
				t.Errorf("GET %s%q answered %s", route, n, status)
			}
		}
	}
	if count < 200 {
		t.Fatalf("only %d paths", count)
	}
}

func TestDiskModeAndLoaders(t *testing.T) {
	r := newRig(t)
	// db1 holds 127.0.0.2: dial from that address.
	c := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	resp, err := c.Get(r.srv.URL + "/boot/52:54:00:00:00:02.ipxe")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasSuffix(string(body), "\nexit\n") || strings.Contains(string(body), "kernel") || tokenRE.Match(body) {
		t.Errorf("disk-mode script: HTTP %d\n%s", resp.StatusCode, body)
	}
	if code, b := get(t, r.srv.URL+"/loaders/ipxe.efi"); code != 200 || !bytes.HasPrefix(b, []byte("tftp/ipxe.efi")) {
		t.Errorf("loader: HTTP %d", code)
	}
	for _, p := range []string{"/loaders/other.efi", "/loaders/..%2fvmlinuz", "/loaders/"} {
		if code, _ := get(t, r.srv.URL+p); code == 200 {
			t.Errorf("GET %s = 200", p)
		}
	}
}

// TestRefusalsAreBounded: an address asking for agent archives with
// made-up tokens gets 60 refusals a minute, each a store lookup, then 429
// without one; the log has one line for them all; another address is not
// held back.
func TestRefusalsAreBounded(t *testing.T) {
	r := newRig(t)
	codes := map[int]int{}
	for i := range 70 {
		code, _ := get(t, fmt.Sprintf("%s/boot/agent/made-up-%d.cpio", r.srv.URL, i))
		codes[code]++
	}
	if codes[http.StatusNotFound] != 60 || codes[http.StatusTooManyRequests] != 10 {
		t.Errorf("answers to 70 made-up tokens: %v, want 60 × 404 then 10 × 429", codes)
	}
	if n := strings.Count(r.logBuf.String(), "agent archive refused"); n != 1 {
		t.Errorf("%d log lines for 70 refusals, want 1:\n%s", n, r.logBuf.String())
	}
	c := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	resp, err := c.Get(r.srv.URL + "/boot/agent/made-up.cpio")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("another address: HTTP %d, want 404", resp.StatusCode)
	}
}
