package main

// Tests that run lifeboatd as a process: restarts, SIGKILL, notices across
// both. They bind TFTP port 69 on a loopback address of their own, so they
// run as root (make test does).

import (
	"bytes"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/pxe/keys/sshsig"

	"github.com/lifeboat-boot/lifeboat/hack/bootsim"
	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/operator/api"
	"github.com/lifeboat-boot/lifeboat/pxe/operator/notify/notifytest"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/store/sqlite"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// lifeboatdBin builds lifeboatd from this tree, once per test run.
func lifeboatdBin(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test runs lifeboatd, which binds TFTP port 69: run it as root (make test does)")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lifeboatd-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "lifeboatd")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build lifeboatd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is one lifeboatd, started and stopped at will, on its own loopback
// address with DHCP off (hosts begin boots by fetching their script).
type proc struct {
	t       *testing.T
	dir     string
	ip      string
	cfg     string
	db      string
	cmd     *exec.Cmd
	log     *bytes.Buffer
	api     *api.Client
	cust    *api.Client // customer acme's own token, once fleet made it
	custKey ssh.Signer  // acme's own SSH key: its signatures approve and get tokens
	starts  int
}

var nextNet = 0

func newProc(t *testing.T, extra map[string]any) *proc {
	t.Helper()
	nextNet++
	// 127.1.0.0/16: apart from the CLI's script tests (127.0.x.x), which
	// may run at the same time. Seven blocks of 32 in turn: the tests run
	// one after another, so a block is free again by its next use (and
	// -count=N does not run past .255).
	p := &proc{t: t, dir: t.TempDir(), ip: fmt.Sprintf("127.1.%d.%d", os.Getpid()%250, 32*(1+(nextNet-1)%7)), log: &bytes.Buffer{}}
	img := filepath.Join(p.dir, "image")
	if err := os.MkdirAll(filepath.Join(img, "tftp"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vmlinuz", "initramfs.cpio.zst", "tftp/undionly.kpxe", "tftp/ipxe.efi"} {
		if err := os.WriteFile(filepath.Join(img, f), []byte("stand-in "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p.db = filepath.Join(p.dir, "state", "lifeboat.db")
	cfg := map[string]any{"dhcp_mode": "off", "server_ip": p.ip, "http_port": 8080, "api_listen": p.ip + ":8081",
		"image_dir": img, "database": p.db, "log_level": "info"}
	for k, v := range extra {
		cfg[k] = v
	}
	if cfg["customer_listen"] == "auto" { // the approval page, on this lifeboatd's address
		cfg["customer_listen"] = p.ip + ":8082"
	}
	b, _ := json.Marshal(cfg)
	p.cfg = filepath.Join(p.dir, "lifeboatd.json")
	if err := os.WriteFile(p.cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(lifeboatdBin(t), "-config", p.cfg, "operator", "add", "tester").Output()
	if err != nil {
		t.Fatalf("operator add: %v %s", err, stderrOf(err))
	}
	p.api, err = api.NewClient("http://"+p.ip+":8081", strings.TrimSpace(string(out)), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd != nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("lifeboatd log (last 4 KiB):\n%s", tail(p.log.String(), 4096))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// start runs lifeboatd and waits (at most 20 s) for its API.
func (p *proc) start() {
	p.t.Helper()
	p.cmd = exec.Command(binPath, "-config", p.cfg)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.starts++
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err := c.Get("http://" + p.ip + ":8081/healthz"); err == nil {
			resp.Body.Close()
			return
		}
	}
	p.t.Fatalf("lifeboatd did not come up (start %d)", p.starts)
}

// stop ends lifeboatd: gracefully (SIGTERM), or with SIGKILL.
func (p *proc) stop(kill bool) {
	p.t.Helper()
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = p.cmd.Process.Signal(sig)
	_ = p.cmd.Wait()
	p.cmd = nil
}

// fleet adds customer acme with a webhook to rx and an e-mail address, and
// n hosts of theirs, at the addresses after the server's. It returns the
// hosts.
func (p *proc) fleet(rx *notifytest.Receiver, n int) []*api.Host {
	p.t.Helper()
	ctx := context.Background()
	_, priv, _ := ed25519.GenerateKey(crand.Reader)
	p.custKey, _ = ssh.NewSignerFromKey(priv)
	if err := p.api.AddCustomer(ctx, api.Customer{Name: "acme", Keys: []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(p.custKey.PublicKey())))}}); err != nil {
		p.t.Fatal(err)
	}
	if rx != nil {
		// The customer gets their token with their key, and adds their
		// webhook with it.
		anon, _ := api.NewClient(p.api.Base, "", "")
		ch, err := anon.Challenge(ctx, "acme")
		if err != nil {
			p.t.Fatal(err)
		}
		sig, err := sshsig.Sign(p.custKey, []byte(ch.Text), ch.Namespace)
		if err != nil {
			p.t.Fatal(err)
		}
		tok, err := anon.SignedToken(ctx, "acme", ch.Nonce, sig)
		if err != nil {
			p.t.Fatal(err)
		}
		if p.cust, err = api.NewClient(p.api.Base, tok, ""); err != nil {
			p.t.Fatal(err)
		}
		wh, err := p.cust.AddWebhook(ctx, "acme", rx.URL)
		if err != nil {
			p.t.Fatal(err)
		}
		if err := rx.SetSecret(wh.Secret); err != nil {
			p.t.Fatal(err)
		}
	}
	base := netip.MustParseAddr(p.ip).As4()
	var hosts []*api.Host
	for i := range n {
		ip := netip.AddrFrom4([4]byte{base[0], base[1], base[2], base[3] + byte(1+i)})
		hosts = append(hosts, &api.Host{Name: fmt.Sprintf("node%02d", i), MAC: fmt.Sprintf("52:54:00:aa:00:%02x", i), IP: ip,
			Customer: "acme", AuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl c"}})
	}
	if _, err := p.api.Import(ctx, hosts); err != nil {
		p.t.Fatal(err)
	}
	return hosts
}

type acks struct {
	mu   sync.Mutex
	list []bootsim.Ack
}

func (a *acks) add(x bootsim.Ack) { a.mu.Lock(); a.list = append(a.list, x); a.mu.Unlock() }

// checkRecords verifies the chain of the stopped lifeboatd's store and that
// every acknowledged step has its record; it returns the records.
func checkRecords(t *testing.T, dbPath string, got []bootsim.Ack) []audit.Event {
	t.Helper()
	db, err := sqlite.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	head, n, err := db.VerifyChain(context.Background())
	if err != nil {
		t.Fatalf("audit chain after the run: %v", err)
	}
	t.Logf("audit chain verifies: %d records, head %s", n, head)
	recs, err := db.AuditRecords(context.Background(), "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for len(recs) < int(n) {
		more, _ := db.AuditRecords(context.Background(), "", recs[len(recs)-1].Seq, 0)
		recs = append(recs, more...)
	}
	have := map[bootsim.Ack]bool{}
	for _, e := range recs {
		have[bootsim.Ack{Host: e.Host, Boot: e.Boot, Code: e.Code}] = true
	}
	missing := 0
	for _, a := range got {
		if !have[a] {
			missing++
			if missing < 5 {
				t.Errorf("acknowledged without a record: %+v", a)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged steps lack their record", missing, len(got))
	}
	return recs
}

// Notices reach the customer's receiver although it is down for a while
// and lifeboatd is restarted twice meanwhile (SIGTERM, then SIGKILL); a
// notice sent twice carries the same webhook-id; and the receiver gets
// them in the order of their records.
func TestNoticesSurviveRestarts(t *testing.T) {
	rx, p, hosts := notifiedFleet(t, 3)
	rx.SetDown(true)
	var got acks
	ctx := context.Background()
	for round := range 3 {
		for _, h := range hosts {
			c := &bootsim.Client{Base: "http://" + p.ip + ":8080", HTTP: bootsim.From(h.IP.String())}
			if err := c.Boot(ctx, h.Name, h.MAC, got.add); err != nil {
				t.Fatalf("round %d, %s: %v", round, h.Name, err)
			}
		}
		// The outage path runs in every round: deliveries are tried and
		// turned away before lifeboatd restarts.
		for before, end := rx.TurnedAway(), time.Now().Add(20*time.Second); rx.TurnedAway() == before; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("round %d: no delivery was tried in 20 s", round)
			}
		}
		if round < 2 {
			p.stop(round == 1)
			p.start()
		}
	}
	if n := len(rx.Deliveries()); n != 0 {
		t.Fatalf("%d deliveries while the receiver was down", n)
	}
	rx.SetDown(false)
	want := waitNotices(rx, got.list, 30*time.Second)
	waitRecorded(t, rx, p.db, 30*time.Second) // the hosts' records too
	p.stop(false)
	recs := checkRecords(t, p.db, got.list)
	checkDeliveries(t, recs, rx.Deliveries(), want)
	// In record order: each record's first delivery after the last's.
	seen, last, order := map[int64]bool{}, int64(0), []int64{}
	for _, d := range rx.Deliveries() {
		if seen[d.Receipt.Seq] {
			continue
		}
		seen[d.Receipt.Seq] = true
		order = append(order, d.Receipt.Seq)
		if d.Receipt.Seq < last {
			t.Errorf("record %d delivered after record %d", d.Receipt.Seq, last)
		}
		last = d.Receipt.Seq
	}
	t.Logf("the receiver got %d records, first deliveries in the order %v", len(order), order)
	if bad := rx.Refused(); len(bad) > 0 {
		t.Errorf("the receiver refused %d deliveries: %v", len(bad), bad[0])
	}
}

// notifiedFleet starts a lifeboatd with customer acme, a webhook to a
// receiver, and n hosts.
func notifiedFleet(t *testing.T, n int) (*notifytest.Receiver, *proc, []*api.Host) {
	t.Helper()
	rx, err := notifytest.NewReceiver("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.Close() })
	p := newProc(t, map[string]any{"notice_retry": "200ms"})
	p.start()
	return rx, p, p.fleet(rx, n)
}

// waitNotices waits until rx has had a notice for each acknowledged step
// customers are told about, and returns how many those are.
func waitNotices(rx *notifytest.Receiver, acked []bootsim.Ack, d time.Duration) int {
	want := 0
	for _, a := range acked {
		if audit.Notify[a.Code] {
			want++
		}
	}
	for deadline := time.Now().Add(d); uniqueIDs(rx.Deliveries()) < want && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	return want
}

// hadChannel: e is told, and was written once the customer had a channel
// (fleet's records before the webhook, its own addition included, had
// nowhere to go: a new channel does not hear of itself).
func hadChannel(e audit.Event) bool {
	return audit.Notify[e.Code] && e.Customer != "" && e.Code != audit.CustomerToken && e.Code != audit.WebhookAdd
}

// waitRecorded waits until rx has had a notice for every notified record
// in the store at dbPath, acknowledged to a client or not.
func waitRecorded(t *testing.T, rx *notifytest.Receiver, dbPath string, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		evs, err := sqlite.ReadEvents(dbPath)
		if err != nil {
			continue // lifeboatd may be migrating or checkpointing
		}
		notified := 0
		for _, e := range evs {
			if hadChannel(e) {
				notified++
			}
		}
		if uniqueIDs(rx.Deliveries()) >= notified {
			return
		}
	}
}

func uniqueIDs(ds []notifytest.Delivery) int {
	ids := map[string]bool{}
	for _, d := range ds {
		ids[d.ID] = true
	}
	return len(ids)
}

// checkDeliveries checks that every notified record reached the receiver,
// each under one webhook-id however often it came, with the receipt of the
// record it reports, and returns the delivery latencies.
func checkDeliveries(t *testing.T, recs []audit.Event, ds []notifytest.Delivery, want int) []time.Duration {
	t.Helper()
	bySeq := map[int64]audit.Event{}
	for _, e := range recs {
		bySeq[e.Seq] = e
	}
	idOf := map[int64]string{}
	first := map[int64]time.Time{}
	dups := 0
	for _, d := range ds {
		e, ok := bySeq[d.Receipt.Seq]
		if !ok || e.Hash != d.Receipt.Hash || string(e.Code) != d.Type {
			t.Errorf("delivery %s: receipt %d:%.16s (%s) matches no record", d.ID, d.Receipt.Seq, d.Receipt.Hash, d.Type)
			continue
		}
		if id, seen := idOf[d.Receipt.Seq]; seen {
			dups++
			if id != d.ID {
				t.Errorf("record %d delivered as %s and as %s", d.Receipt.Seq, id, d.ID)
			}
			continue
		}
		idOf[d.Receipt.Seq], first[d.Receipt.Seq] = d.ID, d.At
	}
	notified := 0
	var lat []time.Duration
	for _, e := range recs {
		if !hadChannel(e) || e.Customer != "acme" {
			continue
		}
		notified++
		if _, ok := idOf[e.Seq]; !ok {
			t.Errorf("record %d (%s of %s) was never delivered", e.Seq, e.Code, e.Host)
			continue
		}
		lat = append(lat, first[e.Seq].Sub(e.Time))
	}
	if notified < want {
		t.Errorf("%d notified records, want at least the %d acknowledged", notified, want)
	}
	t.Logf("%d notices delivered, %d duplicate deliveries (same webhook-id)", len(idOf), dups)
	return lat
}

// lifeboatd is killed with SIGKILL at random moments while hosts boot. After
// every restart the chain verifies, and at the end every step the server
// acknowledged has its record, and every notice arrives.
func TestKillDuringBoots(t *testing.T) {
	rx, p, hosts := notifiedFleet(t, 8)
	const wantBoots = 400
	var (
		got      acks
		mu       sync.Mutex
		started  int
		complete int
		failed   int
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &bootsim.Client{Base: "http://" + p.ip + ":8080", HTTP: bootsim.From(h.IP.String())}
			for ctx.Err() == nil {
				mu.Lock()
				if started >= wantBoots {
					mu.Unlock()
					return
				}
				started++
				mu.Unlock()
				err := c.Boot(ctx, h.Name, h.MAC, got.add)
				mu.Lock()
				if err == nil {
					complete++
				} else {
					failed++
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(30 * time.Millisecond) // lifeboatd is restarting
				}
			}
		}()
	}
	bootsDone := make(chan struct{})
	go func() { wg.Wait(); close(bootsDone) }()
	kills := 0
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
killing:
	for {
		select {
		case <-bootsDone:
			break killing
		case <-time.After(time.Duration(20+rng.IntN(200)) * time.Millisecond):
		}
		p.stop(true)
		kills++
		p.start()
		v, err := p.api.VerifyOnServer(context.Background(), nil)
		if err != nil || !v.OK {
			t.Fatalf("after kill %d the chain does not verify: %+v, %v", kills, v, err)
		}
	}
	mu.Lock()
	t.Logf("%d boots begun, %d completed, %d cut short; lifeboatd killed %d times", started, complete, failed, kills)
	mu.Unlock()
	if kills < 10 {
		t.Errorf("only %d kills: the run was too short to test anything", kills)
	}
	want := waitNotices(rx, got.list, 60*time.Second)
	waitRecorded(t, rx, p.db, 30*time.Second) // records written but not acknowledged are told too
	p.stop(false)
	recs := checkRecords(t, p.db, got.list)
	lat := checkDeliveries(t, recs, rx.Deliveries(), want)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		t.Logf("notice latency (record to first delivery, kills included): p50 %s, p90 %s, max %s",
			lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*9/10].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	}
}

// A host in disk mode with an approved rescue grant boots into lifeboat
// once: the check-in hands the grant (the staff key, the scope, the end)
// to the RAM image and uses it up; the next boot is a disk boot again.
func TestRescueBootUsesGrantOnce(t *testing.T) {
	_, p, hosts := notifiedFleet(t, 1)
	ctx := context.Background()
	h := hosts[0]
	h.Mode = store.ModeDisk
	if err := p.api.SetHost(ctx, h); err != nil {
		t.Fatal(err)
	}
	staff := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmB4gKb2zvjO5JRBcWbJY5mbBuJYHc2hqYt29y7jYIb bob@provider"
	who, err := p.api.Whoami(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.api.PutStaff(ctx, api.Staff{Customer: "acme", Name: who.Operator, Role: "support", Keys: store.Fingerprints([]string{staff})}); err != nil {
		t.Fatal(err)
	}
	g, err := p.api.RequestGrant(ctx, api.GrantRequest{Host: h.Name, Scope: store.ScopePasswordReset, Ticket: "SUP-5",
		Reason: "root password forgotten", TTL: time.Hour, StaffKey: staff})
	if err != nil || g.State != store.GrantApproved {
		t.Fatalf("grant = %+v, %v", g, err)
	}
	// Operators still read (and write back) the host as stored.
	if stored, err := p.api.Host(ctx, h.Name); err != nil || stored.Mode != store.ModeDisk {
		t.Fatalf("host as the API shows it during the grant: %+v, %v", stored, err)
	}
	var got *agentapi.CheckinResponse
	c := &bootsim.Client{Base: "http://" + p.ip + ":8080", HTTP: bootsim.From(h.IP.String()), OnCheckin: func(r *agentapi.CheckinResponse) { got = r }}
	if err := c.Boot(ctx, h.Name, h.MAC, func(bootsim.Ack) {}); err != nil {
		t.Fatalf("rescue boot: %v", err)
	}
	if got == nil || got.Mode != store.ModeRescue || got.Grant == nil || got.Grant.ID != g.ID || got.Grant.StaffKey != staff ||
		got.Grant.Scope != store.ScopePasswordReset || !got.Grant.Until.Equal(g.Until) {
		t.Fatalf("check-in answer = %+v (grant %+v)", got, got.Grant)
	}
	if now, _ := p.api.Grant(ctx, g.ID); now.State != store.GrantActive {
		t.Fatalf("grant after the check-in is %s, want active", now.State)
	}
	// The grant is used up: the host is in disk mode again, and a disk-mode
	// host gets no RAM image (bootsim finds no agent archive in the script).
	err = (&bootsim.Client{Base: c.Base, HTTP: c.HTTP}).Boot(ctx, h.Name, h.MAC, func(bootsim.Ack) {})
	if err == nil || !strings.Contains(err.Error(), "script without an agent archive") {
		t.Fatalf("second boot: %v, want a disk-mode script", err)
	}
	evs, err := p.api.Events(ctx, api.EventQuery{Host: h.Name})
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, e := range evs.Events {
		if strings.HasPrefix(string(e.Code), "rescue.") {
			codes = append(codes, string(e.Code))
		}
	}
	if strings.Join(codes, " ") != "rescue.request rescue.approve rescue.active" {
		t.Fatalf("rescue records: %v", codes)
	}
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// TestLoaderOverHTTP: UEFI HTTP boot fetches the UEFI loader from
// /loaders/, out of the TFTP folder (here one apart from the image), and
// firmware asks with HEAD first for the size. Nothing else is served there.
func TestLoaderOverHTTP(t *testing.T) {
	loaders := t.TempDir()
	efi := []byte("MZ stand-in for ipxe.efi in its own folder")
	for name, data := range map[string][]byte{"ipxe.efi": efi, "undionly.kpxe": []byte("stand-in")} {
		if err := os.WriteFile(filepath.Join(loaders, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := newProc(t, map[string]any{"tftp_dir": loaders})
	p.start()
	base := "http://" + p.ip + ":8080/loaders/"
	head, err := http.Head(base + "ipxe.efi")
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if head.StatusCode != 200 || head.ContentLength != int64(len(efi)) {
		t.Fatalf("HEAD ipxe.efi: %s, length %d, want 200 and %d", head.Status, head.ContentLength, len(efi))
	}
	resp, err := http.Get(base + "ipxe.efi")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, efi) {
		t.Fatalf("GET ipxe.efi: %s %q", resp.Status, body)
	}
	for _, name := range []string{"undionly.kpxe", "..%2Fimage%2Fvmlinuz", "vmlinuz"} {
		resp, err := http.Get(base + name)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET /loaders/%s: %s, want 404", name, resp.Status)
		}
	}
}
