package httpboot

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/keys/sshca"
	"github.com/lifeboat-boot/lifeboat/pxe/metrics"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// Image names the files of the RAM image served under /images/.
type Image struct {
	// Loaders are first-stage files (in LoaderDir) also served under
	// /loaders/ for UEFI HTTP boot, which fetches its NBP over HTTP.
	Loaders   []string
	LoaderDir string // folder of the loaders (default Dir/tftp, as TFTP serves them)
	Dir       string // folder of the built image
	Kernel    string // file name of the kernel in Dir
	Initramfs string // file name of the initramfs in Dir
	Cmdline   string // kernel command line, without initrd= (added here)
}

// TokenStore keeps one-time boot tokens (as hashes); store.DB is one.
type TokenStore interface {
	IssueToken(ctx context.Context, b store.Binding, ttl time.Duration) (string, error)
	PeekToken(ctx context.Context, tok string) (store.Binding, error)
	RedeemToken(ctx context.Context, tok string, want store.Binding) (store.Binding, error)
	// Report tokens outlive a restart of lifeboatd: a customer at the
	// unlock prompt is not cut off by one.
	IssueReportToken(ctx context.Context, b store.Binding, ttl time.Duration) (string, error)
	ReportBinding(ctx context.Context, tok string) (store.Binding, error)
}

// reportTTL bounds how long a checked-in agent may report: a boot's life.
const reportTTL = 24 * time.Hour

// Server is the boot listener's handler.
type Server struct {
	BaseURL   string // how hosts reach this listener, e.g. http://10.77.0.1:8080
	Image     Image
	Inventory store.Inventory
	Boots     *store.Boots
	Events    audit.Emitter
	Tokens    TokenStore
	// StartBoots: a script fetch begins a boot (when the site's DHCP, not
	// ours, sends hosts here, no DISCOVER does).
	StartBoots bool
	Log        *slog.Logger
	TokenTTL   time.Duration
	Unlock     agentapi.UnlockPolicy
	// Grants activates a rescue boot's grant at check-in; nil: no rescue.
	Grants interface {
		ActivateGrant(ctx context.Context, host, boot string) (*store.Grant, error)
		Grant(ctx context.Context, id string) (*store.Grant, error)
		EndGrant(ctx context.Context, host, boot, actor string, details map[string]string) (*store.Grant, error)
		Grants(ctx context.Context, f store.GrantFilter) ([]*store.Grant, error)
	}
	// Recordings keeps the rescue shells' recordings; nil refuses them
	// (and with that, every rescue shell).
	Recordings interface {
		Append(host, boot, name string, off int64, data []byte) (int64, error)
	}
	// CA certifies each boot's host key for CertTTL; nil leaves host keys
	// uncertified (tests only: customers would have to trust on first use).
	CA      *sshca.CA
	CertTTL time.Duration

	root    *os.Root
	loaders *os.Root
}

// Handler opens the image folder and returns the routes.
func (s *Server) Handler() (http.Handler, error) {
	root, err := os.OpenRoot(s.Image.Dir)
	if err != nil {
		return nil, fmt.Errorf("image folder: %w (run 'make image' first)", err)
	}
	for _, f := range []string{s.Image.Kernel, s.Image.Initramfs} {
		if _, err := root.Stat(f); err != nil {
			root.Close()
			return nil, fmt.Errorf("image: %w (run 'make image' first)", err)
		}
	}
	s.root = root
	dir := s.Image.LoaderDir
	if dir == "" {
		dir = filepath.Join(s.Image.Dir, "tftp")
	}
	// The loaders are checked here too: a UEFI HTTP boot client that
	// gets a 404 falls through to its next boot option, with no message
	// anywhere on the server.
	if len(s.Image.Loaders) > 0 {
		if s.loaders, err = os.OpenRoot(dir); err != nil {
			root.Close()
			return nil, fmt.Errorf("loader folder: %w (run 'make image' first)", err)
		}
		for _, f := range s.Image.Loaders {
			if _, err := s.loaders.Stat(f); err != nil {
				root.Close()
				s.loaders.Close()
				return nil, fmt.Errorf("loader for UEFI HTTP boot: %w (run 'make image' first)", err)
			}
		}
	}
	if s.TokenTTL == 0 {
		s.TokenTTL = 10 * time.Minute
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boot/{file}", s.script)
	mux.HandleFunc("GET /boot/agent/{file}", s.agentArchive)
	mux.HandleFunc("GET /images/{file}", s.image)
	mux.HandleFunc("GET /loaders/{file}", s.loader)
	mux.HandleFunc("POST "+agentapi.CheckinPath, s.checkin)
	mux.HandleFunc("POST "+agentapi.EventsPath, s.report)
	mux.HandleFunc("GET "+agentapi.GrantsPath+"{id}", s.grantStatus)
	mux.HandleFunc("PUT "+agentapi.RecordingsPath+"{name}", s.recording)
	return s.accessLog(mux), nil
}

// accessLog logs the route pattern, never the raw path: the agent archive's
// path holds a boot token.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &metrics.CountWriter{ResponseWriter: w}
		start := time.Now()
		next.ServeHTTP(cw, r)
		route := r.Pattern // set by the mux: one of the fixed routes
		if route == "" {
			route = "none"
		}
		code := cmp.Or(cw.Code, http.StatusOK)
		metrics.HTTPRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
		metrics.HTTPBytes.WithLabelValues(route).Add(float64(cw.Bytes))
		s.Log.Debug("http", "method", r.Method, "route", route, "status", code,
			"bytes", cw.Bytes, "peer", r.RemoteAddr, "took", time.Since(start).String())
	})
}

func peerIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(agentapi.Error{Error: msg})
}

var scriptTmpl = template.Must(template.New("ipxe").Parse(`#!ipxe
echo lifeboat: {{.Host}} boot {{.Boot}}: loading the unlock environment
kernel --name {{.Kernel}} {{.Base}}/images/{{.Kernel}} {{.Cmdline}} initrd={{.Initramfs}} initrd=agent.cpio || goto failed
initrd --name {{.Initramfs}} {{.Base}}/images/{{.Initramfs}} || goto failed
initrd --name agent.cpio {{.Base}}/boot/agent/{{.Token}}.cpio || goto failed
boot || goto failed
:failed
echo lifeboat: boot failed; trying again in 10 seconds
sleep 10
reboot
`))

// ScriptData fills the iPXE script.
type ScriptData struct {
	Host, Boot, Base, Kernel, Initramfs, Cmdline, Token string
}

// RenderScript renders the per-boot iPXE script.
func RenderScript(d ScriptData) ([]byte, error) {
	var b bytes.Buffer
	if err := scriptTmpl.Execute(&b, d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// script serves /boot/MAC.ipxe. Only the host holding the reservation may
// fetch its script, so that no other machine on the segment can mint tokens
// for it.
func (s *Server) script(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	macStr, ok := strings.CutSuffix(file, ".ipxe")
	mac, err := net.ParseMAC(macStr)
	if !ok || err != nil {
		http.NotFound(w, r)
		return
	}
	h, ok := s.Inventory.Lookup(mac)
	if !ok || peerIP(r) != h.IP {
		s.Log.Warn("script refused", "mac", mac.String(), "peer", r.RemoteAddr)
		http.NotFound(w, r)
		return
	}
	boot, ok := s.Boots.Current(h.MAC)
	if s.StartBoots {
		// No DHCP of ours saw this boot begin: the script fetch is its
		// first sign (a re-fetch after the script stage is a reboot).
		var started bool
		if boot, started = s.Boots.OnDiscover(h.MAC, h.Name, store.ClientIPXE, "ipxe"); started {
			if err := s.Events.Emit(r.Context(), audit.Event{Code: audit.BootStart, MAC: h.MAC, Host: h.Name, Boot: boot.ID,
				Actor: "system", Details: map[string]string{"firmware": "ipxe"}}); err != nil {
				http.Error(w, "event log unavailable", http.StatusServiceUnavailable)
				return
			}
		}
		ok = boot != nil
	}
	if !ok {
		http.Error(w, "no DHCP exchange seen for this host; boot it again", http.StatusConflict)
		return
	}
	log := s.Log.With("mac", h.MAC, "host", h.Name, "boot", boot.ID)
	if h.Mode == store.ModeDisk {
		// No token, no image: iPXE exits and the firmware goes on to
		// the next boot device, the local disk.
		if err := s.Events.Emit(r.Context(), audit.Event{Code: audit.ScriptFetch, MAC: h.MAC, Host: h.Name, Boot: boot.ID, Actor: "system",
			Details: map[string]string{"mode": store.ModeDisk}}); err != nil {
			http.Error(w, "event log unavailable", http.StatusServiceUnavailable)
			return
		}
		s.Boots.Advance(h.MAC, boot.ID, store.StageScript)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "#!ipxe\necho lifeboat: %s is in disk mode: booting from its local disk\nexit\n", h.Name)
		log.Info("served disk-mode script")
		return
	}
	tok, err := s.Tokens.IssueToken(r.Context(), store.Binding{MAC: h.MAC, Host: h.Name, Boot: boot.ID}, s.TokenTTL)
	if err != nil {
		log.Error("script refused: token store failed", "err", err)
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	body, err := RenderScript(ScriptData{Host: h.Name, Boot: boot.ID, Base: s.BaseURL,
		Kernel: s.Image.Kernel, Initramfs: s.Image.Initramfs, Cmdline: s.Image.Cmdline, Token: tok})
	if err != nil {
		log.Error("script render", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := s.Events.Emit(r.Context(), audit.Event{Code: audit.ScriptFetch, MAC: h.MAC, Host: h.Name, Boot: boot.ID, Actor: "system"}); err != nil {
		log.Error("script refused: event log failed", "err", err)
		http.Error(w, "event log unavailable", http.StatusServiceUnavailable)
		return
	}
	s.Boots.Advance(h.MAC, boot.ID, store.StageScript)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
	log.Info("served iPXE script")
}

// AgentArchive builds the per-boot cpio holding the agent's boot
// parameters.
func AgentArchive(p agentapi.BootParams) ([]byte, error) {
	js, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	cw := cpio.Newc.Writer(&b)
	recs := []cpio.Record{
		cpio.Directory("etc", 0o755),
		cpio.Directory("etc/lifeboat", 0o700),
		cpio.StaticRecord(js, cpio.Info{Name: agentapi.BootFile, Mode: 0o100600}),
	}
	if err := cpio.WriteRecordsAndDirs(cw, recs); err != nil {
		return nil, err
	}
	if err := cpio.WriteTrailer(cw); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (s *Server) agentArchive(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutSuffix(r.PathValue("file"), ".cpio")
	if !ok {
		http.NotFound(w, r)
		return
	}
	b, err := s.Tokens.PeekToken(r.Context(), tok)
	if err != nil {
		s.Log.Warn("agent archive refused", "peer", r.RemoteAddr, "err", err)
		http.NotFound(w, r)
		return
	}
	data, err := AgentArchive(agentapi.BootParams{Server: s.BaseURL, Boot: b.Boot, MAC: b.MAC, Host: b.Host, Token: tok})
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := s.Events.Emit(r.Context(), audit.Event{Code: audit.ImageFetch, MAC: b.MAC, Host: b.Host, Boot: b.Boot, Actor: "system",
		Details: map[string]string{"file": "agent.cpio", "bytes": fmt.Sprint(len(data))}}); err != nil {
		http.Error(w, "event log unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(data)
}

func (s *Server) image(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	var stage store.Stage
	switch name {
	case s.Image.Kernel:
		stage = store.StageKernel
	case s.Image.Initramfs:
		stage = store.StageInitrd
	default:
		http.NotFound(w, r)
		return
	}
	f, err := s.root.Open(name)
	if err != nil {
		http.Error(w, "image missing on server", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.Error(w, "image missing on server", http.StatusInternalServerError)
		return
	}
	h, known := s.Inventory.LookupIP(peerIP(r))
	var boot *store.Boot
	if known {
		boot, _ = s.Boots.Current(h.MAC)
	}
	if boot != nil {
		// Record the fetch before serving it: the audit rule is "record,
		// then act".
		if err := s.Events.Emit(r.Context(), audit.Event{Code: audit.ImageFetch, MAC: h.MAC, Host: h.Name, Boot: boot.ID, Actor: "system",
			Details: map[string]string{"file": name, "bytes": fmt.Sprint(fi.Size())}}); err != nil {
			http.Error(w, "event log unavailable", http.StatusServiceUnavailable)
			return
		}
		s.Boots.Advance(h.MAC, boot.ID, stage)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, name, fi.ModTime(), f)
}

func bearer(r *http.Request) string {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(v)
}

func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed request body: %w", err)
	}
	return nil
}

func (s *Server) checkin(w http.ResponseWriter, r *http.Request) {
	var req agentapi.CheckinRequest
	if err := decodeJSON(r, &req); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(req.HostKey))
	if err != nil {
		httpError(w, http.StatusBadRequest, "host_key is not an SSH public key")
		return
	}
	tok := bearer(r)
	b, err := s.Tokens.RedeemToken(r.Context(), tok, store.Binding{MAC: req.MAC, Boot: req.Boot})
	if err != nil {
		reason := map[error]string{store.ErrTokenUnknown: "unknown", store.ErrTokenExpired: "expired", store.ErrTokenUsed: "replay", store.ErrTokenBinding: "binding"}[err]
		metrics.Checkins.WithLabelValues(cmp.Or(reason, "failed")).Inc()
		if reason == "" {
			s.Log.Error("check-in: token store failed", "err", err)
			httpError(w, http.StatusServiceUnavailable, "store unavailable")
			return
		}
		mac := b.MAC
		if mac == "" {
			mac = req.MAC
		}
		s.Log.Warn("check-in refused", "mac", mac, "boot", req.Boot, "peer", r.RemoteAddr, "reason", reason)
		if eerr := s.Events.Emit(r.Context(), audit.Event{Code: audit.CheckinRefused, MAC: mac, Host: b.Host, Boot: req.Boot, Actor: "agent",
			Details: map[string]string{"reason": reason, "peer": peerIP(r).String()}}); eerr != nil {
			s.Log.Error("event log failed", "err", eerr)
		}
		code := http.StatusUnauthorized
		if errors.Is(err, store.ErrTokenUsed) {
			code = http.StatusConflict
		}
		httpError(w, code, err.Error())
		return
	}
	h, ok := s.Inventory.Lookup(mustMAC(b.MAC))
	if !ok {
		httpError(w, http.StatusGone, "host no longer in the inventory")
		return
	}
	fp := ssh.FingerprintSHA256(hostKey)
	details := map[string]string{"host_key": fp, "ip": req.IP, "mode": h.Mode}
	var certText string
	if s.CA != nil {
		cert, err := s.CA.Sign(sshca.HostCert{Key: hostKey, KeyID: fmt.Sprintf("lifeboat host %s boot %s", h.Name, b.Boot),
			Principals: []string{h.Name, h.IP.String()}, ValidFor: s.CertTTL, Now: time.Now()})
		if err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		certText = string(ssh.MarshalAuthorizedKey(cert))
		details["host_cert_serial"] = fmt.Sprint(cert.Serial)
		details["host_cert_until"] = time.Unix(int64(cert.ValidBefore), 0).UTC().Format(time.RFC3339)
	}
	// The record comes first: a check-in that is not recorded gets no
	// certificate and no report token.
	if err := s.Events.Emit(r.Context(), audit.Event{Code: audit.AgentCheckin, MAC: b.MAC, Host: b.Host, Boot: b.Boot, Actor: "agent",
		Details: details}); err != nil {
		httpError(w, http.StatusServiceUnavailable, "event log unavailable")
		return
	}
	report, err := s.Tokens.IssueReportToken(r.Context(), b, reportTTL)
	if err != nil {
		s.Log.Error("check-in: token store failed", "err", err)
		httpError(w, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	var grant *agentapi.RescueGrant
	if h.Mode == store.ModeRescue && s.Grants != nil {
		// The grant is used by this boot (with its own record): from here
		// on the host boots in its own mode again. Last, so that nothing
		// that can still fail burns it.
		g, err := s.Grants.ActivateGrant(r.Context(), h.Name, b.Boot)
		if err != nil {
			s.Log.Error("check-in: activating the rescue grant failed", "host", h.Name, "err", err)
			httpError(w, http.StatusServiceUnavailable, "store unavailable")
			return
		}
		if g != nil {
			grant = &agentapi.RescueGrant{ID: g.ID, Scope: g.Scope, Staff: g.Staff, StaffKey: g.StaffKey, Ticket: g.Ticket, Until: g.Until,
				Left: time.Until(g.Until), ConsoleCodeHash: g.ConsoleCodeHash}
		}
	}
	metrics.Checkins.WithLabelValues("ok").Inc()
	s.Boots.Advance(b.MAC, b.Boot, store.StageCheckin)
	s.Log.Info("agent checked in", "mac", b.MAC, "host", b.Host, "boot", b.Boot, "host_key", fp)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(agentapi.CheckinResponse{Host: h.Name, Boot: b.Boot, Mode: h.Mode,
		AuthorizedKeys: h.AuthorizedKeys, ReportToken: report, Unlock: s.Unlock, HostCertificate: certText, Grant: grant})
}

func mustMAC(s string) net.HardwareAddr {
	m, _ := net.ParseMAC(s)
	return m
}

var reportStage = map[audit.Code]store.Stage{
	audit.SSHLogin: store.StageLogin, audit.UnlockSuccess: store.StageUnlock, audit.Handoff: store.StageHandoff,
}

var unlockOutcome = map[audit.Code]string{
	audit.UnlockSuccess: "success", audit.UnlockFailure: "failure", audit.UnlockLockout: "lockout",
	audit.Handoff: "handoff", audit.HandoffFailed: "handoff_failed",
}

// binding authenticates an agent's report token; on failure it has
// answered.
func (s *Server) binding(w http.ResponseWriter, r *http.Request) (store.Binding, bool) {
	b, err := s.Tokens.ReportBinding(r.Context(), bearer(r))
	if err != nil {
		if !errors.Is(err, store.ErrTokenUnknown) && !errors.Is(err, store.ErrTokenExpired) {
			s.Log.Error("agent: token store failed", "err", err)
			httpError(w, http.StatusServiceUnavailable, "store unavailable")
			return store.Binding{}, false
		}
		httpError(w, http.StatusUnauthorized, "unknown report token")
		return store.Binding{}, false
	}
	return b, true
}

// grantStatus tells a rescue boot's agent its grant's state, so that a
// revocation ends the session within a poll.
func (s *Server) grantStatus(w http.ResponseWriter, r *http.Request) {
	b, ok := s.binding(w, r)
	if !ok {
		return
	}
	if s.Grants == nil {
		httpError(w, http.StatusNotFound, "no rescue grants here")
		return
	}
	g, err := s.Grants.Grant(r.Context(), r.PathValue("id"))
	if err != nil || g.Host != b.Host {
		httpError(w, http.StatusNotFound, "no such grant for this host")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(agentapi.GrantStatus{State: g.State, Left: time.Until(g.Until)})
}

// recording stores a piece of a rescue shell's recording. A recording
// begins only while the host has an active grant; its later pieces are
// taken after the grant's end too, so that the last seconds of a revoked
// session are kept.
func (s *Server) recording(w http.ResponseWriter, r *http.Request) {
	b, ok := s.binding(w, r)
	if !ok {
		return
	}
	if s.Recordings == nil || s.Grants == nil {
		httpError(w, http.StatusNotFound, "this lifeboatd keeps no recordings")
		return
	}
	off, err := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	if err != nil || off < 0 {
		httpError(w, http.StatusBadRequest, "offset: want the piece's byte offset")
		return
	}
	if off == 0 {
		gs, err := s.Grants.Grants(r.Context(), store.GrantFilter{Host: b.Host, State: store.GrantActive, Limit: 1})
		if err != nil {
			httpError(w, http.StatusServiceUnavailable, "grant store unavailable")
			return
		}
		if len(gs) == 0 {
			httpError(w, http.StatusForbidden, "no active rescue grant for this host: no recording begins")
			return
		}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
	if err != nil {
		httpError(w, http.StatusRequestEntityTooLarge, "a piece is 4 MiB at most")
		return
	}
	if _, err := s.Recordings.Append(b.Host, b.Boot, r.PathValue("name"), off, data); err != nil {
		s.Log.Warn("agent: recording piece refused", "host", b.Host, "boot", b.Boot, "err", err)
		httpError(w, http.StatusConflict, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	b, ok := s.binding(w, r)
	if !ok {
		return
	}
	var ev agentapi.EventReport
	if err := decodeJSON(r, &ev); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !audit.AgentCodes[ev.Code] {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("event code %q may not be reported by an agent", ev.Code))
		return
	}
	if len(ev.Details) > 16 || len(ev.Actor) > 200 {
		httpError(w, http.StatusBadRequest, "event too large")
		return
	}
	for k, v := range ev.Details {
		if len(k) > 64 || len(v) > 512 {
			httpError(w, http.StatusBadRequest, "event detail too large")
			return
		}
	}
	// The end of a rescue session ends its grant, and that move is the
	// record; other codes are recorded as reported.
	recorded := false
	if ev.Code == audit.RescueEnd && s.Grants != nil {
		g, err := s.Grants.EndGrant(r.Context(), b.Host, b.Boot, cmp.Or(ev.Actor, "agent"), ev.Details)
		if err != nil {
			httpError(w, http.StatusServiceUnavailable, "grant store unavailable")
			return
		}
		recorded = g != nil
	}
	if !recorded {
		if err := s.Events.Emit(r.Context(), audit.Event{Code: ev.Code, MAC: b.MAC, Host: b.Host, Boot: b.Boot, Actor: ev.Actor, Details: ev.Details}); err != nil {
			httpError(w, http.StatusServiceUnavailable, "event log unavailable")
			return
		}
	}
	if o, ok := unlockOutcome[ev.Code]; ok {
		metrics.Unlocks.WithLabelValues(o).Inc()
	}
	if st, ok := reportStage[ev.Code]; ok {
		s.Boots.Advance(b.MAC, b.Boot, st)
	}
	s.Log.Info("agent event", "mac", b.MAC, "host", b.Host, "boot", b.Boot, "code", string(ev.Code))
	w.WriteHeader(http.StatusNoContent)
}

// loader serves a first-stage loader to UEFI HTTP boot clients.
func (s *Server) loader(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if !slices.Contains(s.Image.Loaders, name) {
		http.NotFound(w, r)
		return
	}
	f, err := s.loaders.Open(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.NotFound(w, r)
		return
	}
	// Firmware asks with HEAD for the size first: only the GET is a fetch.
	if h, ok := s.Inventory.LookupIP(peerIP(r)); ok && r.Method == http.MethodGet {
		if b, ok := s.Boots.Current(h.MAC); ok {
			if err := s.Events.Emit(r.Context(), audit.Event{Code: audit.FirstStageFetch, MAC: h.MAC, Host: h.Name, Boot: b.ID, Actor: "system",
				Details: map[string]string{"file": name, "bytes": fmt.Sprint(fi.Size()), "via": "http"}}); err != nil {
				http.Error(w, "event log unavailable", http.StatusServiceUnavailable)
				return
			}
			s.Boots.Advance(h.MAC, b.ID, store.StageFirstStage)
		}
	}
	w.Header().Set("Content-Type", "application/efi")
	http.ServeContent(w, r, name, fi.ModTime(), f)
}
