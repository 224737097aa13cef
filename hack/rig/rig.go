package rig

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lifeboat-boot/lifeboat/hack/vm"
	"github.com/lifeboat-boot/lifeboat/pxe/keys/sshca"
	"github.com/lifeboat-boot/lifeboat/pxe/server"
)

// ServerIP is lifeboatd's address on the namespace's bridge.
const ServerIP = "10.77.0.1"

// Host is an inventory entry of the rig.
type Host struct {
	Name, Firmware, MAC, IP string
	Mode                    string // unlock (default) or disk
	VLAN                    int    // its boot network's tag (Options.VLAN), 0: untagged
}

// Options configure a rig.
type Options struct {
	Root     string // repository root
	Dir      string // work folder: config, inventory, key, event log, consoles
	Hosts    []Host
	LogLevel string
	Lockout  string
	// ImageDir is the RAM image to serve (default Root/build/image).
	ImageDir string
	// Proxy runs lifeboatd as a proxyDHCP server next to the site's own
	// DHCP server: dnsmasq in a second namespace on the same bridge, which
	// hands every host its reserved address.
	Proxy bool
	// API turns on the operator API (APIAddr) and the customer listener
	// (CustomerAddr), and gives operator "e2e" a token (TokenFile) for
	// the lifeboat CLI (CLI).
	API bool
	// AgentURL, if set, is the agent API URL lifeboatd gives the agents
	// (agent_url), instead of its own.
	AgentURL string
	// VLAN, if set, is a tagged boot network on the bridge (vm.AddVLAN),
	// lifeboatd at VLANServerIP(VLAN) on it, with a first-stage pool on
	// the untagged segment (FirstStagePool).
	VLAN int
}

// FirstStagePool is a VLAN rig's pool for its tagged hosts' untagged
// first stage.
const FirstStagePool = "10.77.0.200-10.77.0.219/24"

// VLANServerIP is lifeboatd's address on a rig's VLAN: 10.77.TAG.1 (the
// hosts there are 10.77.TAG.x).
func VLANServerIP(tag int) string { return fmt.Sprintf("10.77.%d.1", tag) }

// Addresses of the API rig's listeners: the namespace's loopback (lifeboatd
// refuses plain HTTP elsewhere), reached by clients run in the namespace.
const (
	APIAddr      = "127.0.0.1:8081"
	CustomerAddr = "127.0.0.1:8082"
)

// Rig is a running site: namespace + lifeboatd.
type Rig struct {
	Options
	NS       *vm.NS
	Key      string // the customer's private key file
	EventLog string // lifeboatd's store (SQLite), which holds the event log
	// KnownHosts is the customer's known_hosts: lifeboatd's CA line only.
	KnownHosts string
	ServerLog  *SyncBuffer
	server     *exec.Cmd
	site       *vm.Peer
	vlan       *vm.VLAN
	dnsmasq    *exec.Cmd
	// SiteLog is dnsmasq's output (proxy rigs).
	SiteLog *SyncBuffer
	// TokenFile holds operator e2e's API token; cli is the lifeboat CLI
	// (API rigs).
	TokenFile string
	cli       string
}

// CLI runs the lifeboat CLI in the namespace as operator e2e (or with the
// token in tokenFile, if set) and returns its standard output; an error
// carries the standard error and the exit status.
func (r *Rig) CLI(ctx context.Context, tokenFile string, args ...string) (string, error) {
	if tokenFile == "" {
		tokenFile = r.TokenFile
	}
	cmd := r.NS.Command(ctx, r.cli, append([]string{"--server", "http://" + APIAddr, "--token-file", tokenFile}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("lifeboat %s: %w\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// SyncBuffer is a bytes.Buffer safe for one writer and many readers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// RandHex returns n random bytes in hex.
func RandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Start builds lifeboatd, writes the configuration, creates the namespace and
// starts the server in it. Close undoes all of it.
func Start(o Options) (r *Rig, err error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("needs root (network namespaces, tap devices)")
	}
	if o.LogLevel == "" {
		o.LogLevel = "debug"
	}
	if o.Lockout == "" {
		o.Lockout = "2m"
	}
	img := o.ImageDir
	if img == "" {
		img = filepath.Join(o.Root, "build", "image")
	}
	if _, err := os.Stat(filepath.Join(img, "manifest.json")); err != nil {
		return nil, fmt.Errorf("no RAM image: run 'make image' first (%v)", err)
	}
	r = &Rig{Options: o, Key: filepath.Join(o.Dir, "id_customer"), EventLog: filepath.Join(o.Dir, "lifeboat.db"), ServerLog: &SyncBuffer{}}
	if _, err := os.Stat(r.Key); err != nil {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "customer@example", "-f", r.Key).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub, err := os.ReadFile(r.Key + ".pub")
	if err != nil {
		return nil, err
	}
	type h struct {
		Name           string   `json:"name"`
		MAC            string   `json:"mac"`
		IP             string   `json:"ip"`
		Mode           string   `json:"mode"`
		AuthorizedKeys []string `json:"authorized_keys"`
		VLAN           int      `json:"vlan,omitempty"`
	}
	var inv struct {
		Hosts []h `json:"hosts"`
	}
	for _, x := range o.Hosts {
		mode := x.Mode
		if mode == "" {
			mode = "unlock"
		}
		inv.Hosts = append(inv.Hosts, h{x.Name, x.MAC, x.IP, mode, []string{strings.TrimSpace(string(pub))}, x.VLAN})
	}
	dhcpMode := "full"
	if o.Proxy {
		dhcpMode = "proxy"
	}
	if err := writeJSON(filepath.Join(o.Dir, "hosts.json"), inv); err != nil {
		return nil, err
	}
	cfg := filepath.Join(o.Dir, "lifeboatd.json")
	conf := map[string]any{
		"interface": "br0", "server_ip": ServerIP, "http_port": 8080, "dhcp_mode": dhcpMode,
		"image_dir": img, "inventory": filepath.Join(o.Dir, "hosts.json"), "database": r.EventLog,
		"kernel_cmdline": "console=ttyS0,115200 panic=-1", "log_level": o.LogLevel, "ssh_ca_key": filepath.Join(o.Dir, "ssh_ca_key"),
		"unlock": map[string]any{"max_tries": 5, "lockout": o.Lockout},
	}
	if o.AgentURL != "" {
		conf["agent_url"] = o.AgentURL
	}
	caHosts := server.DefaultCAHosts(netip.MustParseAddr(ServerIP), "")
	if o.VLAN != 0 {
		conf["vlans"] = fmt.Sprintf("%d:vl%d:%s", o.VLAN, o.VLAN, VLANServerIP(o.VLAN))
		conf["first_stage_pool"] = FirstStagePool
		caHosts += "," + server.DefaultCAHosts(netip.MustParseAddr(VLANServerIP(o.VLAN)), "")
	}
	if o.API {
		conf["api_listen"], conf["customer_listen"] = APIAddr, CustomerAddr
		conf["notice_retry"] = "1s"
	}
	if err := writeJSON(cfg, conf); err != nil {
		return nil, err
	}
	// The CA key lifeboatd will use, made here so that the customer's
	// known_hosts can be written before anything boots.
	ca, err := sshca.Load(filepath.Join(o.Dir, "ssh_ca_key"))
	if err != nil {
		return nil, err
	}
	r.KnownHosts = filepath.Join(o.Dir, "known_hosts")
	if err := os.WriteFile(r.KnownHosts, []byte(ca.KnownHosts(caHosts)+"\n"), 0o600); err != nil {
		return nil, err
	}
	bin := filepath.Join(o.Dir, "lifeboatd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/lifeboatd")
	build.Dir = o.Root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build lifeboatd: %v\n%s", err, out)
	}
	if o.API {
		r.cli = filepath.Join(o.Dir, "lifeboat")
		build := exec.Command("go", "build", "-o", r.cli, "./cmd/lifeboat")
		build.Dir = o.Root
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build lifeboat: %v\n%s", err, out)
		}
		r.TokenFile = filepath.Join(o.Dir, "token")
		var errb bytes.Buffer
		add := exec.Command(bin, "-config", cfg, "operator", "add", "e2e")
		add.Stderr = &errb
		tok, err := add.Output()
		if err != nil {
			return nil, fmt.Errorf("lifeboatd operator add: %w: %s", err, errb.String())
		}
		if err := os.WriteFile(r.TokenFile, tok, 0o600); err != nil {
			return nil, err
		}
	}
	ns, err := vm.NewNS("lb-"+RandHex(3), ServerIP+"/24")
	if err != nil {
		return nil, err
	}
	r.NS = ns
	defer func() {
		if err != nil {
			ns.Close() // not r.NS: r is nil on the error paths
		}
	}()
	if o.Proxy {
		if err := r.startSiteDHCP(); err != nil {
			return nil, err
		}
	}
	if o.VLAN != 0 {
		if r.vlan, err = ns.AddVLAN(o.VLAN, VLANServerIP(o.VLAN)+"/24"); err != nil {
			return nil, err
		}
	}
	r.server = r.NS.Command(context.Background(), bin, "-config", cfg)
	r.server.Stdout, r.server.Stderr = r.ServerLog, r.ServerLog
	if err := r.server.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	// lifeboatd logs "dhcp serving" at info level; a quieter rig waits for
	// the DHCP socket instead.
	for !strings.Contains(r.ServerLog.String(), "dhcp serving") && !dhcpBound(ns) {
		if time.Now().After(deadline) {
			_ = r.server.Process.Kill()
			_ = r.server.Wait()
			return nil, fmt.Errorf("lifeboatd did not start:\n%s", r.ServerLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return r, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// SSHArgs is the OpenSSH command line (without "ssh") that reaches ip as the
// customer. Host keys are made per boot in RAM and certified by lifeboatd's
// CA: the customer's known_hosts holds only the CA's @cert-authority line,
// and checking is strict, so an uncertified host would be refused.
func (r *Rig) SSHArgs(ip string, extra ...string) []string {
	args := []string{"-i", r.Key, "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + r.KnownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"}
	args = append(args, extra...)
	return append(args, "root@"+ip)
}

// Close stops lifeboatd gracefully (SIGTERM) and deletes the namespace. It
// reports an error if lifeboatd did not stop within 10 s.
func (r *Rig) Close() error {
	var err error
	if r.server != nil && r.server.Process != nil {
		_ = r.server.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- r.server.Wait() }()
		select {
		case werr := <-done:
			if werr != nil {
				err = fmt.Errorf("lifeboatd exit after SIGTERM: %w", werr)
			}
		case <-time.After(10 * time.Second):
			_ = r.server.Process.Kill()
			err = fmt.Errorf("lifeboatd did not stop within 10 s of SIGTERM")
		}
	}
	if r.dnsmasq != nil && r.dnsmasq.Process != nil {
		_ = r.dnsmasq.Process.Kill()
		_ = r.dnsmasq.Wait()
	}
	if r.site != nil {
		_ = r.site.Close()
	}
	if r.vlan != nil {
		_ = r.vlan.Close()
	}
	if nerr := r.NS.Close(); nerr != nil && err == nil {
		err = nerr
	}
	return err
}

// SiteDHCPIP is the address of the site's own DHCP server in proxy rigs.
const SiteDHCPIP = "10.77.0.2"

// startSiteDHCP runs dnsmasq as the site's DHCP server on its own
// namespace, with every host's reservation and no PXE of its own.
func (r *Rig) startSiteDHCP() error {
	var err error
	r.site, err = r.NS.AddPeer(r.NS.Name+"-site", SiteDHCPIP+"/24")
	if err != nil {
		return err
	}
	args := []string{"--no-daemon", "--conf-file=/dev/null", "--port=0", "--user=root", "--interface=eth0", "--bind-interfaces",
		"--dhcp-range=10.77.0.100,10.77.0.150,255.255.255.0,1h", "--dhcp-leasefile=" + filepath.Join(r.Dir, "dnsmasq.leases"),
		"--pid-file=" + filepath.Join(r.Dir, "dnsmasq.pid"), "--log-dhcp"}
	for _, h := range r.Hosts {
		args = append(args, "--dhcp-host="+h.MAC+","+h.IP)
	}
	r.SiteLog = &SyncBuffer{}
	r.dnsmasq = r.site.Command(context.Background(), "dnsmasq", args...)
	r.dnsmasq.Stdout, r.dnsmasq.Stderr = r.SiteLog, r.SiteLog
	if err := r.dnsmasq.Start(); err != nil {
		return fmt.Errorf("dnsmasq: %w (apt-get install dnsmasq-base)", err)
	}
	return nil
}

// dhcpBound reports whether something in ns listens on UDP port 67.
func dhcpBound(ns *vm.NS) bool {
	out, _ := ns.Command(context.Background(), "ss", "-Hlun", "sport = :67").Output()
	return len(bytes.TrimSpace(out)) > 0
}
