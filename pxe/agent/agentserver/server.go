package agentserver

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
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/keys/sshca"
	"github.com/lifeboat-boot/lifeboat/pxe/metrics"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// Store is what the agent API needs of the store; sqlite.DB is one.
type Store interface {
	// Checkin redeems a boot token, records the check-in, issues a
	// report token and activates the host's grant, all or nothing.
	Checkin(ctx context.Context, req store.CheckinRequest) (*store.Checkin, error)
	// ReportBinding returns the boot a live report token belongs to.
	ReportBinding(ctx context.Context, tok string) (store.Binding, error)
	Grant(ctx context.Context, id string) (*store.Grant, error)
	Grants(ctx context.Context, f store.GrantFilter) ([]*store.Grant, error)
	// EndGrant ends host's active grant for boot, with its record.
	EndGrant(ctx context.Context, host, boot, actor string, details map[string]string) (*store.Grant, error)
	// Heartbeat keeps a checked-in agent alive (store.ErrBootEnded once
	// it is not); EndAgent ends it at its hand-off, or not after a
	// failed one.
	Heartbeat(ctx context.Context, b store.Binding) error
	EndAgent(ctx context.Context, b store.Binding, ended bool) error
	// LastHandoff is the details and time of host's last hand-off in an
	// unlock boot (nil if none).
	LastHandoff(ctx context.Context, host string) (map[string]string, time.Time, error)
	// RecordingBegun says whether boot of host recorded the start of a
	// shell (or console shell) with recording name.
	RecordingBegun(ctx context.Context, host, boot, name string) (bool, error)
	// SaveHardware keeps a boot's hardware report with its record
	// (store.ErrConflict for a second one).
	SaveHardware(ctx context.Context, b store.Binding, report []byte, summary map[string]string, warnings []string) error
}

// Recordings keeps the rescue shells' recordings.
type Recordings interface {
	Append(host, boot, name string, off int64, data []byte) (int64, error)
}

// ReportTTL bounds how long a checked-in agent may report: a boot's life.
const ReportTTL = 24 * time.Hour

// Server is the agent API's handler.
type Server struct {
	Store  Store
	Steps  *store.Steps
	Log    *slog.Logger
	Unlock agentapi.UnlockPolicy
	// Recordings keeps the rescue shells' recordings; nil refuses them
	// (and with that, every rescue shell).
	Recordings Recordings
	// CA certifies each boot's host key for CertTTL; nil leaves host keys
	// uncertified (tests only: customers would have to trust on first use).
	CA      *sshca.CA
	CertTTL time.Duration
	// RescueDomain, if set, names hosts in their certificates as
	// NAME.RescueDomain (besides their reserved address).
	RescueDomain string
	// Sign signs each check-in answer (agentapi.AnswerMessage), for the
	// agent to check against the key it pinned; nil leaves them unsigned
	// (tests of the protocol only).
	Sign func(msg []byte) string

	refusals window // refused check-ins recorded, at most one a minute per host (or peer) and reason
}

// window lets one event per key through per minute: a flood of refused
// check-ins costs the audit chain and the customer's inbox one record a
// minute, not one each (the metric still counts every one).
type window struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (w *window) allow(key string, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == nil || len(w.last) > 4096 { // bound memory under a flood of peers
		w.last = map[string]time.Time{}
	}
	if t, ok := w.last[key]; ok && now.Sub(t) < time.Minute {
		return false
	}
	w.last[key] = now
	return true
}

// Handler returns the agent API's routes (under /agent/).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+agentapi.CheckinPath, s.checkin)
	mux.HandleFunc("POST "+agentapi.EventsPath, s.report)
	mux.HandleFunc("POST "+agentapi.HeartbeatPath, s.heartbeat)
	mux.HandleFunc("GET "+agentapi.GrantsPath+"{id}", s.grantStatus)
	mux.HandleFunc("PUT "+agentapi.RecordingsPath+"{name}", s.recording)
	mux.HandleFunc("PUT "+agentapi.HardwarePath, s.hardware)
	return mux
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

// refusal names why a check-in was refused, for its record and metric;
// "" for a store failure (the agent may try again).
var refusal = map[error]string{store.ErrTokenUnknown: "unknown", store.ErrTokenExpired: "expired", store.ErrTokenUsed: "replay",
	store.ErrTokenBinding: "binding", store.ErrHostGone: "host_gone", store.ErrWrongPeer: "peer", store.ErrAgentAlive: "agent_alive"}

// trustDetails is what the check-in's record says of the boot's trust:
// the agent's checked words and the line the customer reads.
func trustDetails(t *agentapi.BootTrust) (map[string]string, error) {
	if t == nil {
		return map[string]string{"trust": "unknown (the RAM image did not say how it was started)"}, nil
	}
	if err := t.Check(); err != nil {
		return nil, err
	}
	return map[string]string{"firmware": t.Firmware, "secure_boot": t.SecureBoot, "lockdown": t.Lockdown, "trust": t.Line()}, nil
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
	fp := ssh.FingerprintSHA256(hostKey)
	req.HostKey = fp // what the refusal's record may keep of it
	trust, err := trustDetails(req.Trust)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	c, err := s.Store.Checkin(r.Context(), store.CheckinRequest{Token: bearer(r), MAC: req.MAC, Boot: req.Boot, HostKey: fp, IP: req.IP, Peer: peerIP(r).String(),
		Trust: trust, ReportTTL: ReportTTL, Certify: s.certify(hostKey)})
	if err != nil {
		s.refuse(w, r, req, c, err)
		return
	}
	var grant *agentapi.RescueGrant
	if g := c.Grant; g != nil {
		grant = &agentapi.RescueGrant{ID: g.ID, Scope: g.Scope, Staff: g.Staff, StaffKey: g.StaffKey, Ticket: g.Ticket, Until: g.Until,
			Left: time.Until(g.Until), ConsoleCodeHash: g.ConsoleCodeHash}
	}
	b := c.Binding
	outcome := "ok"
	if c.Retry {
		outcome = "retry"
	}
	metrics.Checkins.WithLabelValues(outcome).Inc()
	s.Steps.Reached(b.MAC, b.Boot, store.StageCheckin)
	s.Log.Info("agent checked in", "mac", b.MAC, "host", b.Host, "boot", b.Boot, "host_key", fp, "retry", c.Retry)
	var last *agentapi.BootRecord
	if d, at, err := s.Store.LastHandoff(r.Context(), c.Host.Name); err != nil {
		s.Log.Error("check-in: reading the last hand-off", "host", c.Host.Name, "err", err)
	} else if d != nil && d["kernel_sha256"] != "" {
		last = &agentapi.BootRecord{Device: d["device"], Entry: d["entry"], Kernel: d["kernel_sha256"], Initrd: d["initrd_sha256"], Cmdline: d["cmdline"], At: at}
	}
	body, err := json.Marshal(agentapi.CheckinResponse{Host: c.Host.Name, Boot: b.Boot, Mode: c.Mode,
		AuthorizedKeys: c.Host.AuthorizedKeys, ReportToken: c.ReportToken, Unlock: s.Unlock, HostCertificate: c.HostCert, Grant: grant, LastBoot: last})
	if err != nil {
		httpError(w, http.StatusInternalServerError, "internal error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if s.Sign != nil {
		w.Header().Set(agentapi.SignatureHeader, s.Sign(agentapi.AnswerMessage(b.Boot, body)))
	}
	_, _ = w.Write(body)
}

// certify signs the boot's host key, inside the check-in's transaction.
func (s *Server) certify(hostKey ssh.PublicKey) func(h *store.Host, b store.Binding) (string, map[string]string, error) {
	if s.CA == nil {
		return nil
	}
	return func(h *store.Host, b store.Binding) (string, map[string]string, error) {
		cert, err := s.CA.Sign(sshca.HostCert{Key: hostKey, KeyID: fmt.Sprintf("lifeboat host %s boot %s", h.Name, b.Boot),
			Principals: Principals(h, s.RescueDomain), ValidFor: s.CertTTL, Now: time.Now()})
		if err != nil {
			return "", nil, err
		}
		return string(ssh.MarshalAuthorizedKey(cert)), map[string]string{
			"host_cert_serial": fmt.Sprint(cert.Serial),
			"host_cert_until":  time.Unix(int64(cert.ValidBefore), 0).UTC().Format(time.RFC3339),
		}, nil
	}
}

// Principals are the names a host's certificate is valid for: names the
// provider controls, never one the caller chose: its reserved address and
// NAME.domain. A bare inventory name ("web1") is used only when the host
// has neither, since a customer's ssh may know their production host by
// that very name.
func Principals(h *store.Host, domain string) []string {
	var p []string
	if h.IP.IsValid() {
		p = append(p, h.IP.String())
	}
	if domain != "" {
		p = append(p, h.Name+"."+domain)
	}
	if len(p) == 0 {
		p = append(p, h.Name)
	}
	return p
}

// refuse answers a check-in the store did not take: a refusal (recorded,
// the agent gives up) or a store failure (503: nothing was written, and the
// agent tries again with the same token).
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, req agentapi.CheckinRequest, c *store.Checkin, err error) {
	reason := ""
	for e, why := range refusal {
		if errors.Is(err, e) {
			reason = why
		}
	}
	metrics.Checkins.WithLabelValues(cmp.Or(reason, "failed")).Inc()
	if reason == "" {
		s.Log.Error("check-in: store failed; the agent will try again", "err", err)
		httpError(w, http.StatusServiceUnavailable, "store unavailable, try again")
		return
	}
	var b store.Binding
	if c != nil {
		b = c.Binding
	}
	// The record says what the server knows (the token's binding), never
	// what the caller claims: anyone on the boot network can post here.
	// A MAC it claims is kept only as a well-formed one, in the details.
	details := map[string]string{"reason": reason, "peer": peerIP(r).String()}
	if m, err := net.ParseMAC(req.MAC); err == nil && b.MAC == "" {
		details["claimed_mac"] = m.String()
	}
	code := audit.CheckinRefused
	if c != nil && c.Live != nil {
		// Someone else is, or claims to be, this host while its agent
		// is up: the customer is alarmed, not merely told.
		code = audit.AgentConflict
		details["host_key"] = req.HostKey
		details["live_boot"], details["live_host_key"] = c.Live.Boot, c.Live.HostKey
		details["live_seen"] = c.Live.Seen.UTC().Format(time.RFC3339)
	}
	peer := peerIP(r).String()
	// Per host, not per boot: an impostor can start boots of the host
	// as fast as it can do DHCP, and must not reach the inbox that fast.
	if s.refusals.allow(reason+"|"+cmp.Or(b.Host, peer), time.Now()) {
		s.Log.Warn("check-in refused", "mac", b.MAC, "host", b.Host, "boot", b.Boot, "peer", r.RemoteAddr, "reason", reason)
		if eerr := s.Steps.Events.Emit(r.Context(), audit.Event{Code: code, MAC: b.MAC, Host: b.Host, Boot: b.Boot, Actor: "agent",
			Details: details}); eerr != nil {
			s.Log.Error("event log failed", "err", eerr)
		}
	}
	status := http.StatusUnauthorized
	switch {
	case errors.Is(err, store.ErrAgentAlive):
		status = http.StatusLocked // the agent may try again once the live one is gone
	case errors.Is(err, store.ErrWrongPeer):
		status = http.StatusForbidden
	case errors.Is(err, store.ErrTokenUsed):
		status = http.StatusConflict
	case errors.Is(err, store.ErrHostGone):
		status = http.StatusGone
	}
	httpError(w, status, err.Error())
}

var reportStage = map[audit.Code]store.Stage{
	audit.SSHLogin: store.StageLogin, audit.UnlockSuccess: store.StageUnlock, audit.Handoff: store.StageHandoff,
}

var unlockOutcome = map[audit.Code]string{
	audit.UnlockSuccess: "success", audit.UnlockFailure: "failure", audit.UnlockLockout: "lockout",
	audit.Handoff: "handoff", audit.HandoffFailed: "handoff_failed",
}

// binding authenticates an agent's report token; on failure it has
// answered. A boot that handed over may still say that its hand-off
// failed (afterEnd, with ended set); it may say nothing else.
func (s *Server) binding(w http.ResponseWriter, r *http.Request, afterEnd bool) (b store.Binding, ended, ok bool) {
	b, err := s.Store.ReportBinding(r.Context(), bearer(r))
	if errors.Is(err, store.ErrBootEnded) {
		if afterEnd {
			return b, true, true
		}
		httpError(w, http.StatusGone, "this boot has handed over, or a newer boot of the host checked in: its report token may say no more")
		return store.Binding{}, false, false
	}
	if err != nil {
		if !errors.Is(err, store.ErrTokenUnknown) && !errors.Is(err, store.ErrTokenExpired) {
			s.Log.Error("agent: token store failed", "err", err)
			httpError(w, http.StatusServiceUnavailable, "store unavailable")
			return store.Binding{}, false, false
		}
		httpError(w, http.StatusUnauthorized, "unknown report token")
		return store.Binding{}, false, false
	}
	return b, false, true
}

// heartbeat keeps a checked-in agent alive: while it is, no other machine
// gets a certificate for its host.
func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) {
	b, _, ok := s.binding(w, r, false)
	if !ok {
		return
	}
	switch err := s.Store.Heartbeat(r.Context(), b); {
	case errors.Is(err, store.ErrBootEnded):
		httpError(w, http.StatusGone, err.Error())
	case err != nil:
		httpError(w, http.StatusServiceUnavailable, "store unavailable")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// grantStatus tells a rescue boot's agent its grant's state, so that a
// revocation ends the session within a poll.
func (s *Server) grantStatus(w http.ResponseWriter, r *http.Request) {
	b, _, ok := s.binding(w, r, false)
	if !ok {
		return
	}
	g, err := s.Store.Grant(r.Context(), r.PathValue("id"))
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
	// The last pieces of a session may come after its rescue.end: the
	// boot's token still takes them (a new recording needs a grant).
	b, _, ok := s.binding(w, r, true)
	if !ok {
		return
	}
	if s.Recordings == nil {
		httpError(w, http.StatusNotFound, "this lifeboatd keeps no recordings")
		return
	}
	off, err := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	if err != nil || off < 0 {
		httpError(w, http.StatusBadRequest, "offset: want the piece's byte offset")
		return
	}
	if off == 0 {
		gs, err := s.Store.Grants(r.Context(), store.GrantFilter{Host: b.Host, State: store.GrantActive, Limit: 1})
		if err != nil {
			httpError(w, http.StatusServiceUnavailable, "grant store unavailable")
			return
		}
		if len(gs) == 0 {
			// A shell whose start was recorded while its grant was live
			// (revoked since, before its first piece came) is recorded
			// still: the revoke ends it, not its evidence.
			begun, err := s.Store.RecordingBegun(r.Context(), b.Host, b.Boot, r.PathValue("name"))
			if err != nil {
				httpError(w, http.StatusServiceUnavailable, "event store unavailable")
				return
			}
			if !begun {
				httpError(w, http.StatusForbidden, "no active rescue grant for this host: no recording begins")
				return
			}
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

// hardware keeps the boot's hardware report: once a boot, checked and
// bounded (ParseHardware), with a record that says its warnings.
func (s *Server) hardware(w http.ResponseWriter, r *http.Request) {
	b, _, ok := s.binding(w, r, false)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, agentapi.MaxHardwareBytes))
	if err != nil {
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("a hardware report is %d KiB at most", agentapi.MaxHardwareBytes>>10))
		return
	}
	h, canon, err := ParseHardware(body)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	summary := map[string]string{"cpu": h.CPU.Model, "cpus": fmt.Sprint(h.CPU.Count), "memory_bytes": fmt.Sprint(h.MemoryBytes),
		"nics": fmt.Sprint(len(h.NICs)), "disks": fmt.Sprint(len(h.Disks)), "unclaimed": fmt.Sprint(len(h.Unclaimed))}
	warnings := h.Warnings()
	switch err := s.Store.SaveHardware(r.Context(), b, canon, summary, warnings); {
	case errors.Is(err, store.ErrConflict):
		httpError(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		s.Log.Error("agent: hardware report not stored", "host", b.Host, "boot", b.Boot, "err", err)
		httpError(w, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	s.Log.Info("hardware report", "host", b.Host, "boot", b.Boot, "nics", len(h.NICs), "disks", len(h.Disks), "warnings", len(warnings))
	w.WriteHeader(http.StatusNoContent)
}

// ParseHardware reads a hardware report from an agent (anyone holding a
// boot's report token): strict JSON (no unknown fields, one value),
// within agentapi's bounds. It returns the report and its canonical
// encoding, which is what is stored.
func ParseHardware(body []byte) (*agentapi.Hardware, []byte, error) {
	if len(body) > agentapi.MaxHardwareBytes {
		return nil, nil, fmt.Errorf("a hardware report is %d KiB at most", agentapi.MaxHardwareBytes>>10)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var h agentapi.Hardware
	if err := dec.Decode(&h); err != nil {
		return nil, nil, fmt.Errorf("malformed hardware report: %w", err)
	}
	if dec.More() {
		return nil, nil, errors.New("malformed hardware report: more than one JSON value")
	}
	if err := h.Check(); err != nil {
		return nil, nil, err
	}
	canon, err := json.Marshal(&h)
	if err != nil {
		return nil, nil, err
	}
	return &h, canon, nil
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	b, ended, ok := s.binding(w, r, true)
	if !ok {
		return
	}
	var ev agentapi.EventReport
	if err := decodeJSON(r, &ev); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if ended && ev.Code != audit.HandoffFailed {
		httpError(w, http.StatusGone, "this boot has handed over: its report token may only say that the hand-off failed")
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
	stage, moves := reportStage[ev.Code]
	// The end of a rescue session ends its grant, and that move is the
	// record; other codes are recorded as reported.
	recorded := false
	if ev.Code == audit.RescueEnd {
		g, err := s.Store.EndGrant(r.Context(), b.Host, b.Boot, cmp.Or(ev.Actor, "agent"), ev.Details)
		if err != nil {
			httpError(w, http.StatusServiceUnavailable, "grant store unavailable")
			return
		}
		recorded = g != nil
	}
	rec := audit.Event{Code: ev.Code, MAC: b.MAC, Host: b.Host, Boot: b.Boot, Actor: ev.Actor, Details: ev.Details}
	var err error
	switch {
	case recorded && moves:
		s.Steps.Reached(b.MAC, b.Boot, stage)
	case recorded:
	case moves:
		err = s.Steps.Step(r.Context(), rec, stage)
	default:
		err = s.Steps.Record(r.Context(), rec)
	}
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, "event log unavailable")
		return
	}
	// After its hand-off (or a rescue session's end, after which it
	// reboots) the agent is gone: a new boot of the host may be
	// certified. A failed hand-off leaves it in lifeboat, alive.
	if ev.Code == audit.Handoff || ev.Code == audit.HandoffFailed || ev.Code == audit.RescueEnd {
		if err := s.Store.EndAgent(r.Context(), b, ev.Code != audit.HandoffFailed); err != nil {
			s.Log.Error("agent: could not record its end", "host", b.Host, "boot", b.Boot, "err", err)
		}
	}
	if o, ok := unlockOutcome[ev.Code]; ok {
		metrics.Unlocks.WithLabelValues(o).Inc()
	}
	s.Log.Info("agent event", "mac", b.MAC, "host", b.Host, "boot", b.Boot, "code", string(ev.Code))
	w.WriteHeader(http.StatusNoContent)
}
