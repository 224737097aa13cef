package approve

import (
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/pxe/store"
)

// Store is what the page needs of the store.
type Store interface {
	Grant(ctx context.Context, id string) (*store.Grant, error)
	DecideGrant(ctx context.Context, id string, approve bool, actor string) (*store.Grant, error)
}

// Signer checks approval links; keyring.Keyring is one.
type Signer interface {
	CheckApproval(grantID, sig string) bool
}

// Server is the customer listener's handler.
type Server struct {
	Store Store
	Links Signer
	Log   *slog.Logger
}

// scopeText says in plain words what each scope lets support do.
var scopeText = map[store.Scope]string{
	store.ScopePasswordReset: "reset the password of one user on the installed system, and nothing else. On an encrypted disk this is refused until you unlock it yourself.",
	store.ScopeShell:         "open a shell in lifeboat's rescue system on this host. Its output is recorded. Encrypted disks stay locked unless you unlock them.",
	store.ScopeConsole:       "let a data-centre technician use the host's console, with a one-time code.",
}

type page struct {
	Grant       *store.Grant
	ScopeText   string
	KeyFP       string
	Hours       string
	Sig         string
	Waiting     bool
	Done        string // the decision just made
	Error       string
	LocalFormat string
}

var tmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"when": func(t time.Time) string { return t.UTC().Format("Mon 2 Jan 2006, 15:04 MST") },
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>lifeboat: rescue grant {{with .Grant}}for {{.Host}}{{end}}</title>
<style>
body { font: 17px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 36em; padding: 1em; color: #111; }
h1 { font-size: 1.3em; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .3em 1em; }
dt { font-weight: 600; } dd { margin: 0; overflow-wrap: anywhere; }
.buttons { display: flex; gap: 1em; margin-top: 1.5em; }
button { flex: 1; font-size: 1.1em; padding: .8em; border-radius: .4em; border: 1px solid #555; }
button.approve { background: #1a7f37; color: #fff; border-color: #1a7f37; }
button.deny { background: #fff; color: #a40e26; border-color: #a40e26; }
.state { padding: .8em; border-radius: .4em; background: #eef; }
.error { padding: .8em; border-radius: .4em; background: #fee; }
</style>
</head>
<body>
{{if .Error}}<h1>lifeboat</h1><p class="error" id="error">{{.Error}}</p>{{else}}{{with .Grant}}
<h1>Rescue grant for {{.Host}}</h1>
{{if $.Done}}<p class="state" id="result">You {{$.Done}} this grant.</p>{{end}}
<p><strong>{{.Staff}}</strong> asks to {{$.ScopeText}}</p>
<dl>
<dt>Host</dt><dd id="host">{{.Host}}</dd>
<dt>Customer</dt><dd>{{.Customer}}</dd>
<dt>Who</dt><dd id="staff">{{.Staff}}, with SSH key {{$.KeyFP}}</dd>
<dt>Ticket</dt><dd id="ticket">{{.Ticket}}</dd>
<dt>Reason</dt><dd id="reason">{{.Reason}}</dd>
<dt>Scope</dt><dd id="scope">{{.Scope}}</dd>
<dt>Valid</dt><dd>from {{when .From}} until {{when .Until}} ({{$.Hours}})</dd>
<dt>State</dt><dd id="state">{{.State}}{{if .DecidedBy}} ({{.DecidedBy}}, {{when .Decided}}){{end}}</dd>
</dl>
{{if $.Waiting}}
<form method="post" action="/approve/{{.ID}}">
<input type="hidden" name="sig" value="{{$.Sig}}">
<div class="buttons">
<button class="approve" id="approve" type="submit" name="decision" value="approve">Approve</button>
<button class="deny" id="deny" type="submit" name="decision" value="deny">Deny</button>
</div>
</form>
<p>Whatever you choose is recorded in the audit log with this grant, and you will get a notice of it.</p>
{{else if not $.Done}}<p class="state">This grant is {{.State}}: there is nothing to decide any more.</p>{{end}}
{{end}}{{end}}
</body>
</html>
`))

// Handler returns the routes of the customer listener.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /approve/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.show(w, r, r.URL.Query().Get("sig"), "")
	})
	mux.HandleFunc("POST /approve/{id}", s.decide)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	return headers(mux)
}

// headers: the page loads nothing, runs nothing, posts only to itself, and
// keeps its signed URL out of Referer headers.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

func (s *Server) show(w http.ResponseWriter, r *http.Request, sig, done string) {
	id := r.PathValue("id")
	if !s.Links.CheckApproval(id, sig) {
		s.Log.Warn("approval page: bad or missing signature", "grant", id, "peer", r.RemoteAddr)
		render(w, http.StatusForbidden, page{Error: "This link is not valid. Open the link from the notice exactly as it was sent."})
		return
	}
	g, err := s.Store.Grant(r.Context(), id)
	if err != nil {
		code := http.StatusInternalServerError
		msg := "Something went wrong on the server. Please try again later."
		if errors.Is(err, store.ErrNotFound) {
			code, msg = http.StatusNotFound, "There is no such grant."
		} else {
			s.Log.Error("approval page: store", "grant", id, "err", err)
		}
		render(w, code, page{Error: msg})
		return
	}
	p := page{Grant: g, ScopeText: scopeText[g.Scope], Sig: sig, Waiting: g.State == store.GrantRequested, Done: done,
		Hours: g.Until.Sub(g.From).Round(time.Minute).String()}
	if pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(g.StaffKey)); err == nil {
		p.KeyFP = ssh.FingerprintSHA256(pk)
	}
	render(w, http.StatusOK, p)
}

func (s *Server) decide(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		render(w, http.StatusBadRequest, page{Error: "The form could not be read."})
		return
	}
	sig, decision := r.PostForm.Get("sig"), r.PostForm.Get("decision")
	if !s.Links.CheckApproval(id, sig) {
		s.Log.Warn("approval page: decision with a bad signature", "grant", id, "peer", r.RemoteAddr)
		render(w, http.StatusForbidden, page{Error: "This link is not valid. Open the link from the notice exactly as it was sent."})
		return
	}
	if decision != "approve" && decision != "deny" {
		render(w, http.StatusBadRequest, page{Error: "Choose Approve or Deny."})
		return
	}
	g, err := s.Store.Grant(r.Context(), id)
	if err != nil {
		s.show(w, r, sig, "")
		return
	}
	actor := "customer:" + g.Customer + " (approval link)"
	if _, err := s.Store.DecideGrant(r.Context(), id, decision == "approve", actor); err != nil {
		if errors.Is(err, store.ErrConflict) {
			s.show(w, r, sig, "") // decided already: the page says what it is now
			return
		}
		s.Log.Error("approval page: decision failed", "grant", id, "err", err)
		render(w, http.StatusInternalServerError, page{Error: "The decision could not be recorded, so it was not made. Please try again."})
		return
	}
	s.Log.Info("grant decided by its customer", "grant", id, "host", g.Host, "decision", decision, "peer", r.RemoteAddr)
	done := "approved"
	if decision == "deny" {
		done = "denied"
	}
	s.show(w, r, sig, done)
}

func render(w http.ResponseWriter, code int, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_ = tmpl.Execute(w, p)
}
