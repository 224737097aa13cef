package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lifeboat-boot/lifeboat/hack/vm"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
)

// The site: servers in one namespace (bridge br0, 10.88.0.1/16), clients
// in another (eth0, 10.88.255.254/16, perfdhcp's giaddr) on that bridge.
const (
	serverIP = "10.88.0.1"
	clientIP = "10.88.255.254"
	nReserve = 10000 // reservations for perfdhcp's clients
	nStorm   = 200   // simulated hosts of the boot storm
)

type bench struct {
	root     string
	rounds   int
	started  time.Time
	dir      string
	ns       *vm.NS
	cli      *vm.Peer
	sections []string
	cleanups []func()
	mu       sync.Mutex
	running  []*proc // servers started and not yet stopped
}

// stopAll stops every server still running (on an interrupt).
func (b *bench) stopAll() {
	b.mu.Lock()
	procs := b.running
	b.running = nil
	b.mu.Unlock()
	for _, p := range procs {
		p.stop()
	}
}

func (b *bench) cleanup() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
	b.cleanups = nil
}

// site makes the namespaces and the work directory, once.
func (b *bench) site() error {
	if b.ns != nil {
		return nil
	}
	var err error
	if b.dir, err = os.MkdirTemp("", "lifeboat-bench"); err != nil {
		return err
	}
	b.cleanups = append(b.cleanups, func() { os.RemoveAll(b.dir) })
	// nginx's workers and tftpd-hpa drop privileges: they must be able
	// to reach the files.
	if err := os.Chmod(b.dir, 0o755); err != nil {
		return err
	}
	if b.ns, err = vm.NewNS(fmt.Sprintf("lbb-s%d", os.Getpid()), serverIP+"/16"); err != nil {
		return err
	}
	b.cleanups = append(b.cleanups, func() { b.ns.Close() })
	if b.cli, err = b.ns.AddPeer(fmt.Sprintf("lbb-c%d", os.Getpid()), clientIP+"/16"); err != nil {
		return err
	}
	b.cleanups = append(b.cleanups, func() { b.cli.Close() })
	// The storm's hosts fetch their scripts from their own reserved
	// addresses, as real hosts would.
	for i := range nStorm {
		if out, err := exec.Command("ip", "-n", b.cli.Name, "addr", "add", stormIP(i)+"/16", "dev", "eth0").CombinedOutput(); err != nil {
			return fmt.Errorf("ip addr add: %v: %s", err, out)
		}
	}
	return nil
}

// perfMAC is the i-th MAC perfdhcp uses: its base 00:0c:01:02:03:04 plus i.
func perfMAC(i int) net.HardwareAddr {
	v := uint32(0x020304) + uint32(i)
	return net.HardwareAddr{0x00, 0x0c, 0x01, byte(v >> 16), byte(v >> 8), byte(v)}
}

func perfIP(i int) string { return fmt.Sprintf("10.88.%d.%d", 1+i/250, 1+i%250) }

func stormMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x52, 0x54, 0x00, 0xbb, byte(i >> 8), byte(i)}
}

func stormIP(i int) string { return fmt.Sprintf("10.88.200.%d", 1+i) }

type reservation struct {
	mac net.HardwareAddr
	ip  string
}

// reservations are every server's: perfdhcp's clients, then the storm's.
func reservations() []reservation {
	var rs []reservation
	for i := range nReserve + 256 { // perfdhcp may stray a little past -R
		rs = append(rs, reservation{perfMAC(i), perfIP(i)})
	}
	for i := range nStorm {
		rs = append(rs, reservation{stormMAC(i), stormIP(i)})
	}
	return rs
}

// proc is a server started in the server namespace.
type proc struct {
	name    string
	cmd     *exec.Cmd
	log     *bytes.Buffer
	stopped bool
}

func (b *bench) startProc(name string, env []string, argv ...string) (*proc, error) {
	p := &proc{name: name, log: &bytes.Buffer{}}
	p.cmd = b.ns.Command(context.Background(), argv[0], argv[1:]...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	b.mu.Lock()
	b.running = append(b.running, p)
	b.mu.Unlock()
	return p, nil
}

func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil || p.stopped {
		return
	}
	p.stopped = true
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// waitPort waits until something in the server namespace listens on port
// (udp or tcp).
func (b *bench) waitPort(p *proc, proto string, port int) error {
	flag := map[string]string{"udp": "-Hlun", "tcp": "-Hltn"}[proto]
	for start := time.Now(); time.Since(start) < 2*time.Minute; time.Sleep(50 * time.Millisecond) {
		out, _ := b.ns.Command(context.Background(), "ss", flag, fmt.Sprintf("sport = :%d", port)).Output()
		if len(bytes.TrimSpace(out)) > 0 {
			return nil
		}
		if p.cmd.ProcessState != nil {
			break
		}
	}
	return fmt.Errorf("%s did not start listening on %s/%d:\n%s", p.name, proto, port, p.log.String())
}

// lifeboatd starts lifeboatd in full mode with every reservation; tftpDir
// and uefiLoader let the TFTP comparison serve its 10 MB file (in proxy
// mode, to a client that has no reservation).
func (b *bench) lifeboatd(tftpDir, uefiLoader string) (*proc, error) {
	dir, err := os.MkdirTemp(b.dir, "lifeboatd")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(b.dir, "lifeboatd")
	if _, err := os.Stat(bin); err != nil {
		build := exec.Command("go", "build", "-o", bin, "./cmd/lifeboatd")
		build.Dir = b.root
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build lifeboatd: %v\n%s", err, out)
		}
	}
	var inv struct {
		Hosts []*store.Host `json:"hosts"`
	}
	for i, r := range reservations() {
		inv.Hosts = append(inv.Hosts, &store.Host{Name: fmt.Sprintf("h%d", i), MAC: r.mac.String(), IP: netip.MustParseAddr(r.ip), Prefix: 16,
			AuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bench"}})
	}
	if err := writeJSON(filepath.Join(dir, "hosts.json"), inv); err != nil {
		return nil, err
	}
	cfg := map[string]any{"interface": "br0", "server_ip": serverIP, "image_dir": filepath.Join(b.root, "build", "image"),
		"inventory": filepath.Join(dir, "hosts.json"), "database": filepath.Join(dir, "lifeboat.db"), "api_listen": "", "log_level": "warn",
		// perfdhcp and the storm's hosts play relay agents from the
		// client namespace's addresses.
		"dhcp_relays": "10.88.0.0/16"}
	if tftpDir != "" {
		cfg["tftp_dir"], cfg["uefi_loader"] = tftpDir, uefiLoader
		// In full mode lifeboatd serves TFTP only to hosts it is booting;
		// in proxy mode it serves the addresses it did not give out
		// too (unrecorded): the TFTP comparison's client is one.
		cfg["dhcp_mode"] = "proxy"
	}
	if err := writeJSON(filepath.Join(dir, "lifeboatd.json"), cfg); err != nil {
		return nil, err
	}
	p, err := b.startProc("lifeboatd", nil, bin, "-config", filepath.Join(dir, "lifeboatd.json"))
	if err != nil {
		return nil, err
	}
	if err := b.waitPort(p, "udp", 67); err != nil {
		p.stop()
		return nil, err
	}
	return p, b.waitPort(p, "tcp", 8080)
}

// dnsmasq starts dnsmasq as providers run it for PXE: every reservation
// (with its lease file, as in production), TFTP from tftpDir, BIOS PXE
// clients sent undionly.kpxe and iPXE sent the script on nginx.
func (b *bench) dnsmasq(tftpDir string) (*proc, error) {
	dir, err := os.MkdirTemp(b.dir, "dnsmasq")
	if err != nil {
		return nil, err
	}
	var hosts strings.Builder
	for _, r := range reservations() {
		fmt.Fprintf(&hosts, "%s,%s\n", r.mac, r.ip)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(hosts.String()), 0o644); err != nil {
		return nil, err
	}
	p, err := b.startProc("dnsmasq", nil, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--user=root",
		"--interface=br0", "--bind-interfaces", "--dhcp-range=10.88.0.0,static,255.255.0.0,1h", "--dhcp-lease-max=20000",
		"--dhcp-hostsfile="+filepath.Join(dir, "hosts"), "--dhcp-leasefile="+filepath.Join(dir, "leases"),
		"--pid-file="+filepath.Join(dir, "pid"), "--dhcp-match=set:ipxe,175",
		"--dhcp-boot=tag:!ipxe,undionly.kpxe,,"+serverIP, "--dhcp-boot=tag:ipxe,http://"+serverIP+":8080/boot.ipxe",
		"--enable-tftp", "--tftp-root="+tftpDir, "--log-facility="+filepath.Join(dir, "log"))
	if err != nil {
		return nil, err
	}
	if err := b.waitPort(p, "udp", 67); err != nil {
		p.stop()
		return nil, err
	}
	return p, b.waitPort(p, "udp", 69)
}

// kea starts kea-dhcp4 with the memfile lease database and every
// reservation.
func (b *bench) kea() (*proc, error) {
	dir, err := os.MkdirTemp(b.dir, "kea")
	if err != nil {
		return nil, err
	}
	type res struct {
		HW string `json:"hw-address"`
		IP string `json:"ip-address"`
	}
	var rs []res
	for _, r := range reservations() {
		rs = append(rs, res{r.mac.String(), r.ip})
	}
	cfg := map[string]any{"Dhcp4": map[string]any{
		"interfaces-config":            map[string]any{"interfaces": []string{"br0"}},
		"lease-database":               map[string]any{"type": "memfile", "persist": true, "name": filepath.Join(dir, "leases.csv"), "lfc-interval": 3600},
		"valid-lifetime":               3600,
		"host-reservation-identifiers": []string{"hw-address"},
		"subnet4": []any{map[string]any{"id": 1, "subnet": "10.88.0.0/16", "reservations": rs,
			"next-server": serverIP, "boot-file-name": "undionly.kpxe"}},
		"loggers": []any{map[string]any{"name": "kea-dhcp4", "severity": "WARN",
			"output_options": []any{map[string]any{"output": filepath.Join(dir, "kea.log")}}}},
	}}
	if err := writeJSON(filepath.Join(dir, "kea.json"), cfg); err != nil {
		return nil, err
	}
	p, err := b.startProc("kea-dhcp4", []string{"KEA_PIDFILE_DIR=" + dir, "KEA_LOCKFILE_DIR=" + dir}, "kea-dhcp4", "-c", filepath.Join(dir, "kea.json"))
	if err != nil {
		return nil, err
	}
	return p, b.waitPort(p, "udp", 67)
}

// nginx serves root on port 8080 as a provider would for netboot images.
func (b *bench) nginx(root string) (*proc, error) {
	dir, err := os.MkdirTemp(b.dir, "nginx")
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`daemon off;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  types { application/octet-stream cpio; text/plain ipxe; }
  default_type application/octet-stream;
  server { listen %[2]s:8080; root %[3]s; }
}
`, dir, serverIP, root)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p, err := b.startProc("nginx", nil, "nginx", "-c", filepath.Join(dir, "nginx.conf"), "-p", dir)
	if err != nil {
		return nil, err
	}
	return p, b.waitPort(p, "tcp", 8080)
}

// tftpdHPA starts tftpd-hpa in the foreground serving dir.
func (b *bench) tftpdHPA(dir string) (*proc, error) {
	p, err := b.startProc("tftpd-hpa", nil, "in.tftpd", "--foreground", "--address", serverIP+":69", "--secure", dir)
	if err != nil {
		return nil, err
	}
	return p, b.waitPort(p, "udp", 69)
}

// client runs this program's role in the client namespace and decodes its
// JSON answer into out.
func (b *bench) client(out any, role string, args ...string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := b.cli.Command(context.Background(), self, append([]string{role}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	data, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", role, err, stderr.String())
	}
	return json.Unmarshal(data, out)
}

func writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// machine says what the numbers were measured on.
func machine() string {
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.SplitN(string(data), "\n", 2)[0], "MemTotal: %d kB", &kb)
		mem = fmt.Sprintf(", %.1f GiB memory", float64(kb)/(1<<20))
	}
	model := ""
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = " (" + strings.TrimSpace(v) + ")"
				break
			}
		}
	}
	return fmt.Sprintf("%d cores%s%s", runtime.NumCPU(), model, mem)
}
