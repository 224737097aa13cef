package apiserver

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/operator/api"
	"github.com/lifeboat-boot/lifeboat/pxe/recordings"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// Store is what the API needs of the store; sqlite.DB is one.
type Store interface {
	Hosts() []*store.Host
	Host(name string) (*store.Host, error)
	Apply(ctx context.Context, c store.Change, actor string) (store.ChangeResult, error)
	AddCustomer(ctx context.Context, c store.Customer, actor string) error
	Customers(ctx context.Context) ([]store.Customer, error)
	BootRecords(ctx context.Context, f store.BootFilter) ([]store.BootRecord, error)
	BootRecord(ctx context.Context, id string) (*store.BootRecord, error)
	Events(ctx context.Context, f store.EventFilter) ([]audit.Event, error)
	Changed() <-chan struct{}
	Authenticate(ctx context.Context, token string) (store.Operator, bool)
	CustomerToken(ctx context.Context, customer, actor string) (string, error)
	AddWebhook(ctx context.Context, w store.Webhook, actor string) (store.Webhook, error)
	RemoveWebhook(ctx context.Context, customer, id, actor string) error
	Webhooks(ctx context.Context, customer string) ([]store.Webhook, error)
	Notices(ctx context.Context, customer string, limit int) ([]store.Notice, error)
	AuditRecords(ctx context.Context, customer string, after int64, limit int) ([]audit.Event, error)
	VerifyChain(ctx context.Context, receipts ...audit.Receipt) (audit.Head, int64, error)
	RequestGrant(ctx context.Context, r store.GrantRequest, staff string) (*store.Grant, error)
	Grant(ctx context.Context, id string) (*store.Grant, error)
	Grants(ctx context.Context, f store.GrantFilter) ([]*store.Grant, error)
	RevokeGrant(ctx context.Context, id, actor string) (*store.Grant, error)
	SetPolicy(ctx context.Context, customer string, scope store.Scope, policy store.PolicyChoice, actor string) error
	Customer(ctx context.Context, name string) (*store.Customer, error)
	UpdateCustomer(ctx context.Context, name string, edit func(*store.Customer) error, actor string) (*store.Customer, error)
	AddStaff(ctx context.Context, s store.Staff, actor string) error
	RemoveStaff(ctx context.Context, customer, name, actor string) error
	Staff(ctx context.Context, customer string) ([]store.Staff, error)
	Propose(ctx context.Context, p store.Proposal) (*store.Proposal, error)
	Proposal(ctx context.Context, id string) (*store.Proposal, error)
	Proposals(ctx context.Context, customer string) ([]*store.Proposal, error)
	CloseProposal(ctx context.Context, id, state, why, actor string) (*store.Proposal, error)
	ApproveGrant(ctx context.Context, id string, signature []byte) (*store.Grant, error)
	Checkpoints(ctx context.Context, after int64, limit int) ([]audit.Checkpoint, error)
	Policies(ctx context.Context, customer string) ([]store.Policy, error)
	SetAgeRecipient(ctx context.Context, customer, recipient, actor string) error
	ResetAgent(ctx context.Context, host, actor string) error
	// Hardware is the newest hardware report of a host.
	Hardware(ctx context.Context, host string) (*store.Hardware, error)
	Emit(ctx context.Context, e audit.Event) error
}

// Secrets makes webhook signing secrets; keyring.Keyring is one.
type Secrets interface {
	// NewWebhookSecret returns a new secret, and the same sealed for the store.
	NewWebhookSecret() (secret, sealed string, err error)
}

// Server is the operator API handler.
type Server struct {
	Store   Store
	Log     *slog.Logger
	Metrics http.Handler // served at /metrics without a token, if set
	// KeepAlive is how often a followed event stream with nothing to say
	// sends an empty line, so that idle proxies keep it open.
	KeepAlive time.Duration
	Secrets   Secrets
	// CA is the SSH certificate authority customers trust for host keys,
	// as served at /v1/ca.
	CA api.CA
	// KRL makes the revocation list of ended boots' host certificates
	// (and says how many it revokes), served at /v1/krl; nil serves none.
	KRL func(ctx context.Context) ([]byte, int, error)
	// Recordings are the rescue shells' recordings; nil serves none.
	Recordings *recordings.Store
	// OperatorsChangeCustomers is the provider's contract letting
	// operators change a customer's notice channels, policies, keys and
	// token themselves: each change then applies at once, told on the
	// customer's existing channels first. Without it (the default) an
	// operator only proposes, and the change waits for the customer.
	OperatorsChangeCustomers bool
	// AuditKey is the public key (base64 ed25519) that signs the audit
	// chain's checkpoints, served at /v1/audit/key.
	AuditKey string

	nonces challenges // of customers' token requests
}

type ctxKey struct{}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	if s.Metrics != nil {
		mux.Handle("GET /metrics", s.Metrics)
	}
	auth := func(h http.HandlerFunc) http.Handler { return s.auth(h, false) }
	// Customers' tokens reach these, and nothing else.
	anyone := func(h http.HandlerFunc) http.Handler { return s.auth(h, true) }
	mux.Handle("GET /v1/whoami", anyone(func(w http.ResponseWriter, r *http.Request) {
		p := principal(r)
		writeJSON(w, http.StatusOK, api.Whoami{Operator: p.Name, Customer: p.Customer})
	}))
	mux.HandleFunc("GET /v1/ca", func(w http.ResponseWriter, r *http.Request) {
		if s.CA.PublicKey == "" {
			writeJSON(w, http.StatusNotFound, api.Error{Message: "this lifeboatd has no SSH certificate authority"})
			return
		}
		writeJSON(w, http.StatusOK, s.CA)
	})
	// Public, as the CA is: it lists serials of certificates, no secret.
	mux.HandleFunc("GET /v1/krl", func(w http.ResponseWriter, r *http.Request) {
		if s.KRL == nil {
			writeJSON(w, http.StatusNotFound, api.Error{Message: "this lifeboatd has no SSH certificate authority"})
			return
		}
		krl, n, err := s.KRL(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, api.KRL{Revoked: n, KRL: krl})
	})
	mux.Handle("GET /v1/audit/records", anyone(s.auditRecords))
	// Public, as the CA is: customers pin it once.
	mux.HandleFunc("GET /v1/audit/key", func(w http.ResponseWriter, r *http.Request) {
		if s.AuditKey == "" {
			writeJSON(w, http.StatusNotFound, api.Error{Message: "this lifeboatd signs no checkpoints"})
			return
		}
		writeJSON(w, http.StatusOK, api.AuditKey{Key: s.AuditKey})
	})
	mux.Handle("GET /v1/audit/checkpoints", anyone(func(w http.ResponseWriter, r *http.Request) {
		after, ok := after(w, r)
		if !ok {
			return
		}
		n, ok := limit(w, r)
		if !ok {
			return
		}
		cs, err := s.Store.Checkpoints(r.Context(), after, n)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, api.CheckpointList{Checkpoints: nonNil(cs)})
	}))
	mux.Handle("GET /v1/recordings", anyone(func(w http.ResponseWriter, r *http.Request) {
		list, err := s.recordings(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, api.RecordingList{Recordings: each(list, recordingOut)})
	}))
	mux.Handle("GET /v1/recordings/{id}", anyone(s.recording))
	mux.Handle("GET /v1/audit/verify", anyone(s.auditVerify))
	mux.Handle("POST /v1/grants", auth(func(w http.ResponseWriter, r *http.Request) {
		var req api.GrantRequest
		if !s.decode(w, r, &req) {
			return
		}
		g, err := s.Store.RequestGrant(r.Context(), grantRequestIn(req), operator(r))
		if err != nil {
			if h, herr := s.Store.Host(req.Host); herr == nil && errors.Is(err, store.ErrForbidden) {
				err = &refusal{customer: h.Customer, what: fmt.Sprintf("get a %s grant on %s", req.Scope, req.Host), err: err}
			}
			s.refuse(w, r, err)
			return
		}
		s.Log.Info("api: rescue grant requested", "operator", operator(r), "grant", g.ID, "host", g.Host, "scope", g.Scope, "state", g.State)
		writeJSON(w, http.StatusCreated, grantOut(g))
	}))
	mux.Handle("GET /v1/grants", anyone(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f := store.GrantFilter{Host: q.Get("host"), Customer: cmp.Or(principal(r).Customer, q.Get("customer")), State: store.GrantState(q.Get("state"))}
		var ok bool
		if f.Limit, ok = limit(w, r); !ok {
			return
		}
		gs, err := s.Store.Grants(r.Context(), f)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, api.GrantList{Grants: each(gs, grantOut)})
	}))
	mux.Handle("GET /v1/grants/{id}", anyone(func(w http.ResponseWriter, r *http.Request) {
		g, err := s.ownGrant(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, grantOut(g))
	}))
	// A customer ends any grant on their own hosts with their own token;
	// an operator any grant.
	mux.Handle("POST /v1/grants/{id}/revoke", anyone(func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.ownGrant(r); err != nil {
			s.fail(w, r, err)
			return
		}
		g, err := s.Store.RevokeGrant(r.Context(), r.PathValue("id"), operator(r))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.Log.Info("api: rescue grant revoked", "operator", operator(r), "grant", g.ID)
		writeJSON(w, http.StatusOK, grantOut(g))
	}))
	mux.Handle("GET /v1/notices", auth(func(w http.ResponseWriter, r *http.Request) {
		n, ok := limit(w, r)
		if !ok {
			return
		}
		ns, err := s.Store.Notices(r.Context(), r.URL.Query().Get("customer"), n)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, api.NoticeList{Notices: each(ns, noticeOut)})
	}))
	mux.Handle("GET /v1/hosts", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.HostList{Hosts: each(s.Store.Hosts(), hostOut)})
	}))
	mux.Handle("POST /v1/hosts", auth(s.putHost(true)))
	mux.Handle("POST /v1/hosts/import", auth(s.importHosts))
	mux.Handle("GET /v1/hosts/{name}", auth(func(w http.ResponseWriter, r *http.Request) {
		h, err := s.Store.Host(r.PathValue("name"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, hostOut(h))
	}))
	mux.Handle("PUT /v1/hosts/{name}", auth(s.putHost(false)))
	mux.Handle("GET /v1/hosts/{name}/hardware", auth(func(w http.ResponseWriter, r *http.Request) {
		h, err := s.Store.Hardware(r.Context(), r.PathValue("name"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, api.Hardware{Host: h.Host, Boot: h.Boot, Received: h.Received, Report: json.RawMessage(h.Report), Warnings: h.Warnings})
	}))
	mux.Handle("POST /v1/hosts/{name}/reset-agent", auth(func(w http.ResponseWriter, r *http.Request) {
		if err := s.Store.ResetAgent(r.Context(), r.PathValue("name"), operator(r)); err != nil {
			s.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.Handle("DELETE /v1/hosts/{name}", auth(func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.Store.Apply(r.Context(), store.Change{Remove: []string{r.PathValue("name")}}, operator(r)); err != nil {
			s.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.Handle("GET /v1/customers", auth(func(w http.ResponseWriter, r *http.Request) {
		cs, err := s.Store.Customers(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, api.CustomerList{Customers: each(cs, customerOut)})
	}))
	mux.Handle("POST /v1/customers", auth(func(w http.ResponseWriter, r *http.Request) {
		var c api.Customer
		if !s.decode(w, r, &c) {
			return
		}
		if err := s.Store.AddCustomer(r.Context(), customerIn(c), operator(r)); err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, c)
	}))
	mux.Handle("GET /v1/boots", auth(s.boots))
	mux.Handle("GET /v1/boots/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		b, err := s.Store.BootRecord(r.Context(), r.PathValue("id"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, bootOut(*b))
	}))
	mux.Handle("GET /v1/events", auth(s.events))
	s.customerRoutes(mux, auth, anyone)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, api.Error{Message: fmt.Sprintf("no such API call: %s %s", r.Method, r.URL.Path),
			Hint: "this lifeboatd may be older than your lifeboat CLI"})
	})
	return mux
}

// recordings lists what the caller may read: everything for an operator,
// for a customer the recordings made while the host was theirs (not those
// of a host that was someone else's then).
func (s *Server) recordings(r *http.Request) ([]recordings.Info, error) {
	if s.Recordings == nil {
		return nil, nil
	}
	all, err := s.Recordings.List()
	if err != nil {
		return nil, err
	}
	cust := principal(r).Customer
	if cust == "" {
		return all, nil
	}
	var mine []recordings.Info
	for _, in := range all {
		if in.Owner == cust {
			mine = append(mine, in)
		}
	}
	return mine, nil
}

// recording serves one recording as asciicast v2, if the caller may read it.
func (s *Server) recording(w http.ResponseWriter, r *http.Request) {
	list, err := s.recordings(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	for _, in := range list {
		if in.ID != id {
			continue
		}
		f, _, err := s.Recordings.Open(id)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/x-asciicast")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", in.Host+"-"+id+".cast"))
		http.ServeContent(w, r, "", in.Modified, f)
		return
	}
	writeJSON(w, http.StatusNotFound, api.Error{Message: fmt.Sprintf("no recording %q that you may read", id), Hint: "lifeboat recording list"})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// auth lets through requests carrying a known operator token (or, with
// customers set, a customer's token too), and puts who it is in the
// context.
func (s *Server) auth(next http.HandlerFunc, customers bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		var p store.Operator
		known := false
		if ok && tok != "" {
			p, known = s.Store.Authenticate(r.Context(), tok)
		}
		if !known {
			s.Log.Warn("api: request without a valid operator token", "peer", r.RemoteAddr, "path", r.URL.Path)
			writeJSON(w, http.StatusUnauthorized, api.Error{Message: "no valid operator token",
				Hint: "pass your token with --token-file; an admin on the server creates one with 'lifeboatd operator add NAME'"})
			return
		}
		if p.Customer != "" && !customers {
			s.Log.Warn("api: customer token used for an operator call", "customer", p.Customer, "path", r.URL.Path)
			writeJSON(w, http.StatusForbidden, api.Error{Message: "a customer's token reaches that customer's own settings, grants, audit records and recordings only",
				Hint: "lifeboat audit verify --customer"})
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)))
	})
}

func principal(r *http.Request) store.Operator {
	p, _ := r.Context().Value(ctxKey{}).(store.Operator)
	return p
}

func operator(r *http.Request) string { return principal(r).Name }

// auditRecords serves a page of the chain: in full to operators, and to a
// customer with every record not theirs redacted to its digest.
func (s *Server) auditRecords(w http.ResponseWriter, r *http.Request) {
	after, ok := after(w, r)
	if !ok {
		return
	}
	n, ok := limit(w, r)
	if !ok {
		return
	}
	recs, err := s.Store.AuditRecords(r.Context(), principal(r).Customer, after, n)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.AuditPage{Records: nonNil(recs)})
}

// auditVerify checks the whole chain on the server, against the receipts
// given as ?receipt=SEQ:HASH.
func (s *Server) auditVerify(w http.ResponseWriter, r *http.Request) {
	var receipts []audit.Receipt
	for _, v := range r.URL.Query()["receipt"] {
		rc, err := audit.ParseReceipt(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, api.Error{Message: err.Error()})
			return
		}
		receipts = append(receipts, rc)
	}
	head, n, err := s.Store.VerifyChain(r.Context(), receipts...)
	var bad *audit.BadRecord
	switch {
	case errors.As(err, &bad):
		s.Log.Error("api: audit chain does not verify", "operator", operator(r), "record", bad.Seq, "reason", bad.Reason)
		writeJSON(w, http.StatusOK, api.Verification{Head: head, Records: n, BadRecord: bad.Seq, Reason: bad.Reason})
	case err != nil:
		s.fail(w, r, err)
	default:
		writeJSON(w, http.StatusOK, api.Verification{OK: true, Head: head, Records: n})
	}
}

// after reads the after parameter (0 if absent); a bad one is answered here.
func after(w http.ResponseWriter, r *http.Request) (int64, bool) {
	v := r.URL.Query().Get("after")
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		writeJSON(w, http.StatusBadRequest, api.Error{Message: fmt.Sprintf("after %q: want a sequence number", v)})
		return 0, false
	}
	return n, true
}

// putHost adds (POST, the host must be new) or replaces (PUT, it must
// exist) one host.
func (s *Server) putHost(create bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in api.Host
		if !s.decode(w, r, &in) {
			return
		}
		h := hostIn(&in)
		if !create && h.Name != r.PathValue("name") {
			writeJSON(w, http.StatusBadRequest, api.Error{Message: fmt.Sprintf("the body names host %q, the URL %q", h.Name, r.PathValue("name")),
				Hint: "a host is renamed by removing it and adding it again"})
			return
		}
		if err := s.checkMoves([]*store.Host{h}); err != nil {
			s.refuse(w, r, err)
			return
		}
		res, err := s.Store.Apply(r.Context(), store.Change{Put: []*store.Host{h}, Create: create, Replace: !create}, operator(r))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.Log.Info("api: host written", "operator", operator(r), "host", h.Name, "added", res.Added, "changed", res.Updated)
		nh, _ := s.Store.Host(h.Name)
		code := http.StatusOK
		if create {
			code = http.StatusCreated
		}
		writeJSON(w, code, hostOut(nh))
	}
}

// checkMoves refuses to move a host from one customer to another: that
// would hand the next customer's policies, channels and staff list a host
// whose disk is the first customer's. A host leaves its customer by being
// removed (they are told) and added again; or, under the contract, moved
// (both are told, the one it leaves on their own channels).
func (s *Server) checkMoves(hosts []*store.Host) error {
	if s.OperatorsChangeCustomers {
		return nil
	}
	for _, h := range hosts {
		if h == nil {
			continue
		}
		if old, err := s.Store.Host(h.Name); err == nil && old.Customer != "" && old.Customer != h.Customer {
			return &refusal{customer: old.Customer, what: "move host " + h.Name + " to customer " + h.Customer,
				err: fmt.Errorf("host %s: %w: it belongs to customer %s; remove it (they are told) and add it again for %s",
					h.Name, store.ErrForbidden, old.Customer, h.Customer)}
		}
	}
	return nil
}

func (s *Server) importHosts(w http.ResponseWriter, r *http.Request) {
	var l api.HostList
	if !s.decode(w, r, &l) {
		return
	}
	hosts := each(l.Hosts, hostIn)
	// The file is checked as a whole first, so that every mistake in it
	// is listed at once, by its place in the file.
	if _, err := store.NewIndex(hosts); err != nil {
		s.fail(w, r, fmt.Errorf("%w: %w", store.ErrInvalid, err))
		return
	}
	if err := s.checkMoves(hosts); err != nil {
		s.refuse(w, r, err)
		return
	}
	res, err := s.Store.Apply(r.Context(), store.Change{Put: hosts}, operator(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.Log.Info("api: hosts imported", "operator", operator(r), "added", res.Added, "updated", res.Updated, "unchanged", res.Unchanged)
	writeJSON(w, http.StatusOK, changeOut(res))
}

func (s *Server) boots(w http.ResponseWriter, r *http.Request) {
	f := store.BootFilter{Host: r.URL.Query().Get("host")}
	var ok bool
	if f.Limit, ok = limit(w, r); !ok {
		return
	}
	bs, err := s.Store.BootRecords(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.BootList{Boots: each(bs, bootOut)})
}

// events serves a page of the log, or with follow=1 streams it (NDJSON)
// from the given point on, until the client or the server goes away.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.EventFilter{Host: q.Get("host"), Boot: q.Get("boot")}
	var ok bool
	if f.After, ok = after(w, r); !ok {
		return
	}
	if f.Limit, ok = limit(w, r); !ok {
		return
	}
	if q.Get("follow") == "" {
		evs, err := s.Store.Events(r.Context(), f)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		next := f.After
		if len(evs) > 0 {
			next = evs[len(evs)-1].Seq
		}
		writeJSON(w, http.StatusOK, api.EventList{Events: nonNil(evs), Next: next})
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	keep := s.KeepAlive
	if keep == 0 {
		keep = 15 * time.Second
	}
	enc := json.NewEncoder(w)
	for {
		changed := s.Store.Changed() // before the query: no commit slips between
		evs, err := s.Store.Events(r.Context(), f)
		if err != nil {
			return
		}
		for _, e := range evs {
			if enc.Encode(e) != nil {
				return
			}
			f.After = e.Seq
		}
		if len(evs) > 0 {
			if rc.Flush() != nil {
				return
			}
			if page := cmp.Or(f.Limit, 1000); len(evs) == page {
				continue // more are waiting
			}
		}
		select {
		case <-changed:
		case <-time.After(keep):
			if _, err := io.WriteString(w, "\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}

// limit reads the limit parameter (0 if absent: the store's default); a
// bad one is answered here.
func limit(w http.ResponseWriter, r *http.Request) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 0, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 10000 {
		writeJSON(w, http.StatusBadRequest, api.Error{Message: fmt.Sprintf("limit %q: want 1..10000", v)})
		return 0, false
	}
	return n, true
}

func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, api.Error{Message: "request body: " + err.Error(), Hint: "send one JSON object as documented"})
		return false
	}
	return true
}

// fail maps a store error to its status: invalid input 400, unknown name
// 404, taken name/MAC/IP 409; anything else is the server's fault, logged
// here and not shown in detail.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrInvalid):
		writeJSON(w, http.StatusBadRequest, api.Error{Message: err.Error()})
	case errors.Is(err, store.ErrNotFound):
		writeJSON(w, http.StatusNotFound, api.Error{Message: err.Error(), Hint: hint404(r)})
	case errors.Is(err, store.ErrConflict):
		writeJSON(w, http.StatusConflict, api.Error{Message: err.Error()})
	case errors.Is(err, store.ErrForbidden), errors.Is(err, store.ErrConsent):
		writeJSON(w, http.StatusForbidden, api.Error{Message: err.Error()})
	default:
		s.Log.Error("api: request failed", "path", r.URL.Path, "operator", operator(r), "err", err)
		writeJSON(w, http.StatusInternalServerError, api.Error{Message: "internal error in lifeboatd", Hint: "see lifeboatd's log"})
	}
}

// refusal is an operator's attempt at what only the customer may do: it is
// refused, and the customer is told.
type refusal struct {
	customer, what string
	err            error
}

func (e *refusal) Error() string { return e.err.Error() }
func (e *refusal) Unwrap() error { return e.err }

// refuse answers a refusal, recording it for the customer first (a
// refusal the log cannot take is still a refusal).
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, err error) {
	var rf *refusal
	if errors.As(err, &rf) && rf.customer != "" {
		ev := audit.Event{Time: time.Now(), Code: audit.OperatorRefused, Customer: rf.customer, Actor: operator(r),
			Details: map[string]string{"what": rf.what, "why": rf.err.Error()}}
		if eerr := s.Store.Emit(r.Context(), ev); eerr != nil {
			s.Log.Error("api: recording a refusal", "err", eerr)
		}
		s.Log.Warn("api: refused: needs the customer", "operator", operator(r), "customer", rf.customer, "what", rf.what)
	}
	s.fail(w, r, err)
}

func hint404(r *http.Request) string {
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/hosts"):
		return "'lifeboat host list' shows the hosts"
	case strings.HasPrefix(r.URL.Path, "/v1/boots"):
		return "'lifeboat boot list' shows recent boots"
	case strings.HasPrefix(r.URL.Path, "/v1/customers"):
		return "'lifeboat customer list' shows the customers"
	case strings.HasPrefix(r.URL.Path, "/v1/grants"):
		return "'lifeboat rescue list' shows the grants"
	}
	return ""
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
