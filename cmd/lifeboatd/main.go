package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"

	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/boot/dhcp"
	"github.com/lifeboat-boot/lifeboat/pxe/boot/httpboot"
	"github.com/lifeboat-boot/lifeboat/pxe/boot/tftp"
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

var version = "dev"

func main() {
	os.Exit(lifeboatd(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

const usage = `usage: lifeboatd [flags]                   run the boot server
       lifeboatd [flags] operator add NAME    give an operator an API token (printed once)
       lifeboatd [flags] operator remove NAME revoke it
       lifeboatd [flags] operator list

Every configuration key can be set in the file, in the environment as
LIFEBOATD_KEY (LIFEBOATD_HTTP_PORT, LIFEBOATD_UNLOCK_MAX_TRIES) or as a flag
(-http_port, -unlock.max_tries); flags win over the environment, which wins
over the file.

flags:
`

// lifeboatd is main without the process: it returns the exit status (0 ok,
// 1 failed while running, 2 bad usage or configuration).
func lifeboatd(args, env []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lifeboatd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	configPath := fs.String("config", "/etc/lifeboat/lifeboatd.json", "configuration file (env LIFEBOATD_CONFIG)")
	check := fs.Bool("check-config", false, "check the configuration and the inventory file, then exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	var overrides []override
	keys := configKeys(defaultConfig())
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		fs.Func(k, "overrides the configuration key "+k+" (env "+envName(k)+")", func(v string) error {
			overrides = append(overrides, override{k, v})
			return nil
		})
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "LIFEBOATD_CONFIG="); ok {
			*configPath = v
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "lifeboatd", version)
		return 0
	}
	cfg, err := loadConfig(*configPath, env, overrides)
	if err != nil {
		fmt.Fprintf(stderr, "lifeboatd: %v\n", err)
		return 2
	}
	if *check {
		if err := cfg.checkFiles(); err != nil {
			fmt.Fprintf(stderr, "lifeboatd: %v\n", err)
			return 2
		}
		fmt.Fprintln(stdout, "configuration OK")
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if fs.NArg() > 0 {
		return operatorCmd(ctx, cfg, fs.Args(), stdout, stderr)
	}
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintf(stderr, "lifeboatd: %v\n", err)
		return 1
	}
	return 0
}

// checkFiles checks what the configuration points at, without changing
// anything: the inventory file and the API's TLS pair.
func (c *Config) checkFiles() error {
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

const operatorUsage = "lifeboatd: usage: lifeboatd operator add|remove NAME, or lifeboatd operator list"

// operatorCmd manages operators on the store directly: it is how the first
// operator gets a token, so it needs no token itself, only access to the
// database file.
func operatorCmd(ctx context.Context, cfg *Config, args []string, stdout, stderr io.Writer) int {
	if args[0] != "operator" {
		fmt.Fprintf(stderr, "lifeboatd: unknown command %q (see lifeboatd -help)\n", args[0])
		return 2
	}
	if len(args) < 2 {
		fmt.Fprintln(stderr, operatorUsage)
		return 2
	}
	db, err := openStore(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "lifeboatd: %v\n", err)
		return 1
	}
	defer db.Close()
	actor := "local"
	if u, err := user.Current(); err == nil {
		actor = "local:" + u.Username
	}
	switch {
	case args[1] == "list" && len(args) == 2:
		ops, err := db.Operators(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "lifeboatd: %v\n", err)
			return 1
		}
		for _, o := range ops {
			fmt.Fprintf(stdout, "%s\t%s\n", o.Name, o.Created.Format(time.RFC3339))
		}
		return 0
	case args[1] == "add" && len(args) == 3:
		tok, err := db.AddOperator(ctx, args[2], actor)
		if err != nil {
			fmt.Fprintf(stderr, "lifeboatd: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, tok)
		fmt.Fprintf(stderr, "lifeboatd: token for operator %q printed above; it is shown only once: put it in a file only they can read (lifeboat --token-file)\n", args[2])
		return 0
	case args[1] == "remove" && len(args) == 3:
		if err := db.RemoveOperator(ctx, args[2], actor); err != nil {
			fmt.Fprintf(stderr, "lifeboatd: %v\n", err)
			return 1
		}
		return 0
	}
	fmt.Fprintln(stderr, operatorUsage)
	return 2
}

func openStore(ctx context.Context, cfg *Config) (*sqlite.DB, error) {
	if err := os.MkdirAll(filepath.Dir(cfg.Database), 0o750); err != nil {
		return nil, err
	}
	return sqlite.Open(ctx, cfg.Database)
}

func run(ctx context.Context, cfg *Config) error {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	db, err := openStore(ctx, cfg)
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
	boots, err := db.NewBoots(ctx)
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
		for st, n := range boots.InFlight(time.Hour) {
			out[st.String()] = n
		}
		return out
	})); err != nil {
		return err
	}
	base := fmt.Sprintf("http://%s", netip.AddrPortFrom(cfg.ServerIP, uint16(cfg.HTTPPort)))
	recs := &recordings.Store{Dir: cfg.RecordingsDir, Recipient: db.HostAgeRecipient}

	hb := &httpboot.Server{
		BaseURL: base, Inventory: db, Boots: boots, Events: db, Tokens: db, Log: log, StartBoots: cfg.DHCPMode == "off",
		Image: httpboot.Image{Dir: cfg.ImageDir, Kernel: "vmlinuz", Initramfs: "initramfs.cpio", Cmdline: cfg.KernelCmdline,
			Loaders: []string{cfg.UEFILoader}, LoaderDir: cfg.TFTPDir},
		TokenTTL: time.Duration(cfg.TokenTTL),
		Unlock:   agentapi.UnlockPolicy{MaxTries: cfg.Unlock.MaxTries, Lockout: time.Duration(cfg.Unlock.Lockout)},
		CA:       ca, CertTTL: time.Duration(cfg.HostCertTTL), Grants: db, Recordings: recs,
	}
	handler, err := hb.Handler()
	if err != nil {
		return err
	}
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

	var custLn net.Listener
	if cfg.CustomerListen != "" {
		if custLn, err = listen(cfg.CustomerListen, cfg.CustomerTLSCert, cfg.CustomerTLSKey); err != nil {
			return fmt.Errorf("customer listener: %w", err)
		}
		closers = append(closers, custLn)
	}

	var apiLn net.Listener
	if cfg.APIListen != "" {
		if apiLn, err = listen(cfg.APIListen, cfg.APITLSCert, cfg.APITLSKey); err != nil {
			return fmt.Errorf("api: %w", err)
		}
		closers = append(closers, apiLn)
	}

	ts := &tftp.Server{
		Addr: netip.AddrPortFrom(cfg.ServerIP, 69).String(), Dir: cfg.TFTPDir,
		Files: []string{cfg.BIOSLoader, cfg.UEFILoader}, Log: log,
		OnSent: func(peer net.UDPAddr, file string, n int64, took time.Duration) {
			metrics.TFTPTransfers.WithLabelValues("sent").Inc()
			metrics.TFTPBytes.Add(float64(n))
			ip, _ := netip.AddrFromSlice(peer.IP)
			h, ok := db.LookupIP(ip.Unmap())
			if !ok {
				return
			}
			ev := audit.Event{Code: audit.FirstStageFetch, MAC: h.MAC, Host: h.Name, Actor: "system",
				Details: map[string]string{"file": file, "bytes": fmt.Sprint(n), "took": took.String()}}
			if b, ok := boots.Current(h.MAC); ok {
				ev.Boot = b.ID
				boots.Advance(h.MAC, b.ID, store.StageFirstStage)
			}
			if err := db.Emit(ctx, ev); err != nil {
				log.Error("event log failed", "err", err)
			}
		},
	}
	if err := ts.Listen(); err != nil {
		return err
	}

	var ds *dhcp.Server
	if cfg.DHCPMode != "off" {
		ds = &dhcp.Server{
			Iface: cfg.Interface, Inventory: db, Boots: boots, Events: db, Log: log,
			Self: dhcp.Self{
				IP:        cfg.ServerIP,
				ScriptURL: func(mac net.HardwareAddr) string { return base + "/boot/" + mac.String() + ".ipxe" },
				LoaderURL: func(name string) string { return base + "/loaders/" + name },
				Loaders:   dhcp.Loaders{BIOS: cfg.BIOSLoader, UEFI: cfg.UEFILoader},
				Lease:     time.Duration(cfg.LeaseTime),
				Proxy:     cfg.DHCPMode == "proxy",
			},
		}
		if err := ds.Listen(); err != nil {
			return err
		}
	}

	log.Info("lifeboatd starting", "version", version, "iface", cfg.Interface, "dhcp_mode", cfg.DHCPMode, "server", base, "api", cfg.APIListen)
	g, gctx := errgroup.WithContext(ctx)
	if ds != nil {
		g.Go(func() error { return ds.Serve(gctx) })
	}
	g.Go(func() error { return ts.Serve(gctx) })
	g.Go(func() error { return serveHTTP(gctx, ln, handler, log) })
	relay := &notify.Relay{Outbox: db, Keys: keys, SMTP: smtp, Log: log, MinBackoff: time.Duration(cfg.NoticeRetry)}
	if custLn != nil {
		base := strings.TrimRight(cfg.CustomerURL, "/")
		relay.ApprovalURL = func(id string) string { return base + "/approve/" + id + "?sig=" + keys.ApprovalSig(id) }
		ap := &approve.Server{Store: db, Links: keys, Log: log}
		g.Go(func() error { return serveHTTP(gctx, custLn, ap.Handler(), log) })
		log.Info("customer listener serving", "addr", cfg.CustomerListen, "url", cfg.CustomerURL)
	} else {
		log.Warn("no customer_listen: rescue grants that wait for the customer's approval cannot be approved")
	}
	g.Go(func() error { return relay.Run(gctx) })
	g.Go(func() error { return expireGrants(gctx, db, log) })
	if apiLn != nil {
		as := &apiserver.Server{Store: db, Log: log, Metrics: metrics.Handler(), Secrets: keys, Recordings: recs,
			CA: api.CA{PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ca.PublicKey()))), KnownHosts: knownHosts}}
		g.Go(func() error { return serveHTTP(gctx, apiLn, as.Handler(), log) })
		log.Info("api serving", "addr", cfg.APIListen, "tls", cfg.APITLSCert != "")
	}
	err = g.Wait()
	log.Info("lifeboatd stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// expireGrants ends grants whose window has closed, every 15 seconds: the
// server enforces expiry whether or not anything asks.
func expireGrants(ctx context.Context, db *sqlite.DB, log *slog.Logger) error {
	t := time.NewTicker(15 * time.Second)
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

// serveHTTP runs one listener until ctx is done, then shuts it down
// gracefully. Requests see ctx, so that long ones (a followed event
// stream) end at shutdown instead of holding it up.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
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
