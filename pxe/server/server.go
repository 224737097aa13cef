package server

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/keys/keyfile"

	"golang.org/x/crypto/ssh"
	"golang.org/x/net/netutil"
	"golang.org/x/sync/errgroup"

	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentserver"
	"github.com/lifeboat-boot/lifeboat/pxe/boot/dhcp"
	"github.com/lifeboat-boot/lifeboat/pxe/boot/httpboot"
	"github.com/lifeboat-boot/lifeboat/pxe/boot/tftp"
	"github.com/lifeboat-boot/lifeboat/pxe/keys/agenttls"
	"github.com/lifeboat-boot/lifeboat/pxe/keys/keyring"
	"github.com/lifeboat-boot/lifeboat/pxe/keys/sshca"
	"github.com/lifeboat-boot/lifeboat/pxe/metrics"
	"github.com/lifeboat-boot/lifeboat/pxe/operator/api"
	"github.com/lifeboat-boot/lifeboat/pxe/operator/apiserver"
	"github.com/lifeboat-boot/lifeboat/pxe/operator/approve"
	"github.com/lifeboat-boot/lifeboat/pxe/operator/notify"
	"github.com/lifeboat-boot/lifeboat/pxe/recordings"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/store/sqlite"
)

// CheckFiles checks what the configuration points at, without changing
// anything: the inventory file and the API's TLS pair.
func (c *Config) CheckFiles() error {
	if c.Inventory != "" {
		if _, err := store.LoadInventory(c.Inventory); err != nil {
			return err
		}
	}
	if c.APITLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.APITLSCert, c.APITLSKey); err != nil {
			return fmt.Errorf("api_tls_cert/api_tls_key: %w", err)
		}
	}
	return nil
}

// OpenStore opens (and migrates) the configured store, making its folder.
func OpenStore(ctx context.Context, cfg *Config) (*sqlite.DB, error) {
	if err := os.MkdirAll(filepath.Dir(cfg.Database), 0o750); err != nil {
		return nil, err
	}
	return sqlite.Open(ctx, cfg.Database)
}

// NewLogger is lifeboatd's structured log, at the configured level.
func (c *Config) NewLogger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// Run is lifeboatd: it opens the store, binds every listener (so that a
// mistake in the configuration shows before anything is served), then
// serves DHCP, TFTP, the boot listener (boot files and the agent API), the
// operator API, the customer listener, the notice relay and the grant
// expiry until ctx is done. version goes in the start line.
func Run(ctx context.Context, cfg *Config, log *slog.Logger, version string) error {
	db, err := OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if cfg.Inventory != "" {
		inv, err := store.LoadInventory(cfg.Inventory)
		if err != nil {
			return err
		}
		res, err := db.Apply(ctx, store.Change{Put: inv.Hosts()}, "config:"+cfg.Inventory)
		if err != nil {
			return fmt.Errorf("inventory %s: %w", cfg.Inventory, err)
		}
		log.Info("inventory file imported", "file", cfg.Inventory, "added", res.Added, "updated", res.Updated, "unchanged", res.Unchanged)
	}
	steps, err := db.NewSteps(ctx)
	if err != nil {
		return err
	}
	ca, err := sshca.Load(cfg.SSHCAKey)
	if err != nil {
		return err
	}
	keys, err := keyring.Load(cfg.SecretKey)
	if err != nil {
		return err
	}
	smtp := cfg.smtp()
	if smtp != nil {
		if err := smtp.Check(); err != nil {
			return err
		}
	}
	knownHosts := ca.KnownHosts(cfg.SSHCAHosts)
	log.Info("ssh host CA ready; customers put this line in known_hosts", "known_hosts", knownHosts)
	if err := metrics.Registry.Register(metrics.BootsByStage(store.StageNames(), func() map[string]int {
		out := map[string]int{}
		for st, n := range steps.Boots.InFlight(time.Hour) {
			out[st.String()] = n
		}
		return out
	})); err != nil {
		return err
	}
	base := fmt.Sprintf("http://%s", netip.AddrPortFrom(cfg.ServerIP, uint16(cfg.HTTPPort)))
	agentURL := cmp.Or(cfg.AgentURL, fmt.Sprintf("https://%s", netip.AddrPortFrom(cfg.ServerIP, uint16(cfg.AgentPort))))
	agentAddrs := []netip.Addr{cfg.ServerIP}
	if u, err := url.Parse(agentURL); err == nil {
		if a, err := netip.ParseAddr(u.Hostname()); err == nil && a != cfg.ServerIP {
			agentAddrs = append(agentAddrs, a)
		}
	}
	agentKeys, err := agenttls.Load(cfg.AgentKey, agentAddrs...)
	if err != nil {
		return err
	}
	auditKey, err := loadAuditKey(cfg.AuditKey)
	if err != nil {
		return err
	}
	auditPub := base64.StdEncoding.EncodeToString(auditKey.Public().(ed25519.PublicKey))
	log.Info("audit checkpoints are signed with this key; customers pin it (lifeboat audit verify --audit-key)", "audit_key", auditPub)
	recs := &recordings.Store{Dir: cfg.RecordingsDir, Recipient: db.HostAgeRecipient,
		Owner: func(host string) (string, error) {
			h, err := db.Host(host)
			if err != nil {
				return "", err
			}
			return h.Customer, nil
		}}

	// Hosts on a tagged boot network fetch their first stage, script and
	// image from a pool address on the untagged segment.
	var pool *dhcp.Pool
	if cfg.FirstStagePool != "" {
		if pool, err = dhcp.ParsePool(cfg.FirstStagePool, bootWindow); err != nil {
			return err
		}
	}
	firstInv := dhcp.FirstStageInventory{Inventory: db, Pool: pool}
	hb := &httpboot.Server{
		BaseURL: base, Inventory: firstInv, Steps: steps, Tokens: db, Log: log, StartBoots: cfg.DHCPMode == "off",
		Image: httpboot.Image{Dir: cfg.ImageDir, Kernel: "vmlinuz", Initramfs: "initramfs.cpio.zst", Cmdline: cfg.KernelCmdline,
			Loaders: []string{cfg.UEFILoader}, LoaderDir: cfg.TFTPDir},
		TokenTTL: time.Duration(cfg.TokenTTL), AgentURL: agentURL, AgentKey: agentKeys.PublicKey(),
	}
	bootFiles, err := hb.Handler()
	if err != nil {
		return err
	}
	as := &agentserver.Server{Store: db, Steps: steps, Log: log, Recordings: recs, CA: ca, CertTTL: time.Duration(cfg.HostCertTTL), RescueDomain: cfg.RescueDomain,
		Unlock: agentapi.UnlockPolicy{MaxTries: cfg.Unlock.MaxTries, Lockout: time.Duration(cfg.Unlock.Lockout)}, Sign: agentKeys.Sign}

	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	ln, err := net.Listen("tcp4", netip.AddrPortFrom(cfg.ServerIP, uint16(cfg.HTTPPort)).String())
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	closers = append(closers, ln)
	// The agent API speaks TLS only, with the key each boot's agent pins.
	agentLn, err := net.Listen("tcp4", netip.AddrPortFrom(cfg.ServerIP, uint16(cfg.AgentPort)).String())
	if err != nil {
		return fmt.Errorf("agent API: %w", err)
	}
	closers = append(closers, agentLn)
	agentLn = tls.NewListener(agentLn, agentKeys.TLSConfig())
	var custLn, apiLn net.Listener
	if cfg.CustomerListen != "" {
		if custLn, err = listen(cfg.CustomerListen, cfg.CustomerTLSCert, cfg.CustomerTLSKey); err != nil {
			return fmt.Errorf("customer listener: %w", err)
		}
		closers = append(closers, custLn)
	}
	if cfg.APIListen != "" {
		if apiLn, err = listen(cfg.APIListen, cfg.APITLSCert, cfg.APITLSKey); err != nil {
			return fmt.Errorf("api: %w", err)
		}
		closers = append(closers, apiLn)
	}
	ts := &tftp.Server{
		Addr: netip.AddrPortFrom(cfg.ServerIP, 69).String(), Dir: cfg.TFTPDir,
		Files: []string{cfg.BIOSLoader, cfg.UEFILoader}, Log: log,
		Record: firstStageFetch(ctx, firstInv, steps, cfg.DHCPMode),
	}
	if err := ts.Listen(); err != nil {
		return err
	}
	var dss []*dhcp.Server
	relays, err := cfg.Relays()
	if err != nil {
		return err
	}
	vlans, err := cfg.VLANNets()
	if err != nil {
		return err
	}
	if cfg.DHCPMode != "off" {
		self := dhcp.Self{
			IP:         cfg.ServerIP,
			ScriptURL:  func(mac net.HardwareAddr) string { return base + "/boot/" + mac.String() + ".ipxe" },
			LoaderURL:  func(name string) string { return base + "/loaders/" + name },
			Loaders:    dhcp.Loaders{BIOS: cfg.BIOSLoader, UEFI: cfg.UEFILoader},
			Lease:      time.Duration(cfg.LeaseTime),
			Proxy:      cfg.DHCPMode == "proxy",
			Relays:     relays,
			FirstStage: pool,
		}
		dss = append(dss, &dhcp.Server{Iface: cfg.Interface, Inventory: db, Steps: steps, Log: log, Self: self})
		// On a VLAN only its hosts' RAM images ask (their firmware and
		// iPXE are untagged), reaching the boot and agent listeners on
		// server_ip through their gateway.
		for _, v := range vlans {
			vs := self
			vs.IP, vs.VLAN, vs.FirstStage = v.ServerIP, v.Tag, nil
			dss = append(dss, &dhcp.Server{Iface: v.Interface, Inventory: db, Steps: steps, Log: log, Self: vs})
		}
		for _, ds := range dss {
			if err := ds.Listen(); err != nil {
				return err
			}
		}
	}

	log.Info("lifeboatd starting", "version", version, "iface", cfg.Interface, "dhcp_mode", cfg.DHCPMode, "vlans", cfg.VLANs, "server", base, "agent_api", agentURL, "api", cfg.APIListen)
	g, gctx := errgroup.WithContext(ctx)
	for _, ds := range dss {
		g.Go(func() error { return ds.Serve(gctx) })
	}
	g.Go(func() error { return ts.Serve(gctx) })
	g.Go(func() error { return serveHTTP(gctx, ln, metrics.AccessLog(log, bootFiles), log, bootLimits) })
	g.Go(func() error { return serveHTTP(gctx, agentLn, metrics.AccessLog(log, as.Handler()), log, agentLimits) })
	relay := &notify.Relay{Outbox: db, Keys: keys, SMTP: smtp, Log: log, MinBackoff: time.Duration(cfg.NoticeRetry),
		Checkpoint: func(ctx context.Context) *audit.Checkpoint { c, _ := db.LatestCheckpoint(ctx); return c }}
	if custLn != nil {
		base := strings.TrimRight(cfg.CustomerURL, "/")
		relay.ApprovalURL = func(id string) string { return base + "/approve/" + id + "?sig=" + keys.ApprovalSig(id) }
		ap := &approve.Server{Store: db, Links: keys, Log: log, Provider: cfg.ProviderName}
		g.Go(func() error { return serveHTTP(gctx, custLn, ap.Handler(), log, apiLimits) })
		log.Info("customer listener serving", "addr", cfg.CustomerListen, "url", cfg.CustomerURL)
	} else {
		log.Warn("no customer_listen: rescue grants that wait for the customer's approval cannot be approved")
	}
	g.Go(func() error { return relay.Run(gctx) })
	g.Go(func() error { checkpoints(gctx, db, auditKey, time.Duration(cfg.CheckpointEvery), log); return nil })
	g.Go(func() error { return expireGrants(gctx, db, 15*time.Second, log) })
	if apiLn != nil {
		as := &apiserver.Server{Store: db, Log: log, Metrics: metrics.Handler(), Secrets: keys, Recordings: recs, OperatorsChangeCustomers: cfg.OperatorsChangeCustomers,
			AuditKey: auditPub,
			CA:       api.CA{PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ca.PublicKey()))), KnownHosts: knownHosts, Hosts: cfg.SSHCAHosts},
			KRL: func(ctx context.Context) ([]byte, int, error) {
				serials, err := db.EndedCerts(ctx)
				if err != nil {
					return nil, 0, err
				}
				now := time.Now()
				return ca.KRL(serials, uint64(now.Unix()), now), len(serials), nil
			}}
		g.Go(func() error { return serveHTTP(gctx, apiLn, as.Handler(), log, apiLimits) })
		log.Info("api serving", "addr", cfg.APIListen, "tls", cfg.APITLSCert != "")
	}
	err = g.Wait()
	log.Info("lifeboatd stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// firstStageFetch records a TFTP fetch of a known host's first stage
// before it is sent, as the boot step it is. Only a host whose boot is in
// progress (it began within bootWindow, and has not gone past the first
// stage) is served. A peer outside the inventory is refused too, but in
// proxy mode, where the site's DHCP server gives the addresses and a host
// may have none on file: then it is served unrecorded. With dhcp_mode off
// no DHCP of ours begins a boot (the script fetch does, after this): a
// known host is then served and recorded outside any boot.
func firstStageFetch(ctx context.Context, inv store.Inventory, steps *store.Steps, mode string) func(netip.Addr, string, int64) error {
	return func(peer netip.Addr, file string, size int64) error {
		h, ok := inv.LookupIP(peer)
		if !ok {
			if mode != "full" {
				return nil
			}
			return fmt.Errorf("%w: %s is not a reserved address", tftp.ErrNoBoot, peer)
		}
		ev := audit.Event{Code: audit.FirstStageFetch, MAC: h.MAC, Host: h.Name, Actor: "system",
			Details: map[string]string{"file": file, "bytes": fmt.Sprint(size), "via": "tftp"}}
		b, ok := steps.Current(h.MAC)
		inProgress := ok && b.Stage <= store.StageFirstStage && time.Since(b.Started) < bootWindow
		switch {
		case inProgress:
			ev.Boot = b.ID
		case mode != "off":
			return fmt.Errorf("%w: %s (%s)", tftp.ErrNoBoot, h.Name, peer)
		}
		return steps.Step(ctx, ev, store.StageFirstStage)
	}
}

// bootWindow is how long after its DHCP exchange a boot may fetch its
// first stage: firmware does so within seconds.
const bootWindow = 10 * time.Minute

// expireGrants ends grants whose window has closed, every period: the
// server enforces expiry whether or not anything asks.
func expireGrants(ctx context.Context, db *sqlite.DB, period time.Duration, log *slog.Logger) error {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		if n, err := db.ExpireGrants(ctx); err != nil && ctx.Err() == nil {
			log.Error("expiring grants failed", "err", err)
		} else if n > 0 {
			log.Info("grants expired", "count", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// listen opens a TCP listener, with TLS if cert is set (the pair re-read at
// each handshake, so that a renewed certificate needs no restart).
func listen(addr, cert, key string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if cert == "" {
		return ln, nil
	}
	if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
		ln.Close()
		return nil, fmt.Errorf("TLS key pair: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(cert, key)
		return &c, err
	}}
	return tls.NewListener(ln, tc), nil
}

// limits bound what one client can hold of a listener: a machine on the
// boot network that opens connections and sends nothing (or reads
// nothing) ties up at most conns of them, each for a bounded time.
type limits struct {
	header, read, write, idle time.Duration // write 0: none
	conns                     int
}

var (
	// Images are tens of megabytes to iPXE, which may be slow under a
	// rack-wide boot: a generous write timeout.
	bootLimits = limits{header: 10 * time.Second, read: time.Minute, write: 10 * time.Minute, idle: time.Minute, conns: 1024}
	// Check-ins, reports, heartbeats and recording pieces (4 MiB at most).
	agentLimits = limits{header: 10 * time.Second, read: time.Minute, write: time.Minute, idle: 2 * time.Minute, conns: 1024}
	// The operator API streams events (events --follow): no read or write
	// timeout past the headers (a read deadline would cancel the stream).
	apiLimits = limits{header: 10 * time.Second, idle: 2 * time.Minute, conns: 256}
)

// serveHTTP runs one listener until ctx is done, then shuts it down
// gracefully. Requests see ctx, so that long ones (a followed event
// stream) end at shutdown instead of holding it up. Past lim.conns open
// connections, new ones wait in the kernel's queue until one closes.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger, lim limits) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: lim.header, ReadTimeout: lim.read, WriteTimeout: lim.write, IdleTimeout: lim.idle,
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	ln = netutil.LimitListener(ln, lim.conns)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	case err := <-errc:
		return err
	}
}

// loadAuditKey reads (or makes, at first start) the key that signs the
// audit chain's checkpoints.
func loadAuditKey(path string) (ed25519.PrivateKey, error) {
	seed, err := keyfile.Load(path, "audit key", func() ([]byte, error) {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return []byte(base64.StdEncoding.EncodeToString(k.Seed()) + "\n"), nil
	})
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(seed)))
	if err != nil || len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("audit key %s: not an ed25519 seed (base64); remove it to have a new one made (customers must then pin the new key)", path)
	}
	return ed25519.NewKeyFromSeed(b), nil
}

// checkpoints signs the chain's head every every, when it moved, until ctx
// ends (and once more then).
func checkpoints(ctx context.Context, db *sqlite.DB, key ed25519.PrivateKey, every time.Duration, log *slog.Logger) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if _, err := db.Checkpoint(context.WithoutCancel(ctx), key, time.Now()); err != nil {
			log.Error("audit checkpoint not signed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
