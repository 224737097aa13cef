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

	"github.com/lifeboat-boot/lifeboat/pxe/api"
	"github.com/lifeboat-boot/lifeboat/pxe/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
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
	Authenticate(ctx context.Context, token string) (string, bool)
}

// Server is the operator API handler.
type Server struct {
	Store   Store
	Log     *slog.Logger
	Metrics http.Handler // served at /metrics without a token, if set
	// KeepAlive is how often a followed event stream with nothing to say
	// sends an empty line, so that idle proxies keep it open.
	KeepAlive time.Duration
}

type ctxKey struct{}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	if s.Metrics != nil {
		mux.Handle("GET /metrics", s.Metrics)
	}
	auth := func(h http.HandlerFunc) http.Handler { return s.auth(h) }
	mux.Handle("GET /v1/whoami", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.Whoami{Operator: operator(r)})
	}))
	mux.Handle("GET /v1/hosts", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.HostList{Hosts: nonNil(s.Store.Hosts())})
	}))
	mux.Handle("POST /v1/hosts", auth(s.putHost(true)))
	mux.Handle("POST /v1/hosts/import", auth(s.importHosts))
	mux.Handle("GET /v1/hosts/{name}", auth(func(w http.ResponseWriter, r *http.Request) {
		h, err := s.Store.Host(r.PathValue("name"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, h)
	}))
	mux.Handle("PUT /v1/hosts/{name}", auth(s.putHost(false)))
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
		writeJSON(w, http.StatusOK, api.CustomerList{Customers: nonNil(cs)})
	}))
	mux.Handle("POST /v1/customers", auth(func(w http.ResponseWriter, r *http.Request) {
		var c store.Customer
		if !s.decode(w, r, &c) {
			return
		}
		if err := s.Store.AddCustomer(r.Context(), c, operator(r)); err != nil {
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
		writeJSON(w, http.StatusOK, b)
	}))
	mux.Handle("GET /v1/events", auth(s.events))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, api.Error{Message: fmt.Sprintf("no such API call: %s %s", r.Method, r.URL.Path),
			Hint: "this lifeboatd may be older than your lifeboat CLI"})
	})
	return mux
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// auth lets through requests carrying a known operator token, and puts the
// operator's name in the context.
func (s *Server) auth(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		name, known := "", false
		if ok && tok != "" {
			name, known = s.Store.Authenticate(r.Context(), tok)
		}
		if !known {
			s.Log.Warn("api: request without a valid operator token", "peer", r.RemoteAddr, "path", r.URL.Path)
			writeJSON(w, http.StatusUnauthorized, api.Error{Message: "no valid operator token",
				Hint: "pass your token with --token-file; an admin on the server creates one with 'lifeboatd operator add NAME'"})
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, name)))
	})
}

func operator(r *http.Request) string { name, _ := r.Context().Value(ctxKey{}).(string); return name }

// putHost adds (POST, the host must be new) or replaces (PUT, it must
// exist) one host.
func (s *Server) putHost(create bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var h store.Host
		if !s.decode(w, r, &h) {
			return
		}
		if !create && h.Name != r.PathValue("name") {
			writeJSON(w, http.StatusBadRequest, api.Error{Message: fmt.Sprintf("the body names host %q, the URL %q", h.Name, r.PathValue("name")),
				Hint: "a host is renamed by removing it and adding it again"})
			return
		}
		res, err := s.Store.Apply(r.Context(), store.Change{Put: []*store.Host{&h}, Create: create, Replace: !create}, operator(r))
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
		writeJSON(w, code, nh)
	}
}

func (s *Server) importHosts(w http.ResponseWriter, r *http.Request) {
	var l api.HostList
	if !s.decode(w, r, &l) {
		return
	}
	res, err := s.Store.Apply(r.Context(), store.Change{Put: l.Hosts}, operator(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.Log.Info("api: hosts imported", "operator", operator(r), "added", res.Added, "updated", res.Updated, "unchanged", res.Unchanged)
	writeJSON(w, http.StatusOK, res)
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
	writeJSON(w, http.StatusOK, api.BootList{Boots: nonNil(bs)})
}

// events serves a page of the log, or with follow=1 streams it (NDJSON)
// from the given point on, until the client or the server goes away.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.EventFilter{Host: q.Get("host"), Boot: q.Get("boot")}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, api.Error{Message: fmt.Sprintf("after %q: want a sequence number", v)})
			return
		}
		f.After = n
	}
	var ok bool
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
	default:
		s.Log.Error("api: request failed", "path", r.URL.Path, "operator", operator(r), "err", err)
		writeJSON(w, http.StatusInternalServerError, api.Error{Message: "internal error in lifeboatd", Hint: "see lifeboatd's log"})
	}
}

func hint404(r *http.Request) string {
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/hosts"):
		return "'lifeboat host list' shows the hosts"
	case strings.HasPrefix(r.URL.Path, "/v1/boots"):
		return "'lifeboat boot list' shows recent boots"
	}
	return ""
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
