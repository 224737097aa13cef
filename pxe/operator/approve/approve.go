package approve

import (
	"cmp"
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/pxe/store"
)

// Store is what the page needs of the store.
type Store interface {
	Grant(ctx context.Context, id string) (*store.Grant, error)
	Customer(ctx context.Context, name string) (*store.Customer, error)
	DenyGrant(ctx context.Context, id, actor string) (*store.Grant, error)
	ApproveGrant(ctx context.Context, id string, signature []byte) (*store.Grant, error)
	RevokeGrant(ctx context.Context, id, actor string) (*store.Grant, error)
}

// Signer checks approval links; keyring.Keyring is one.
type Signer interface {
	CheckApproval(grantID, sig string) bool
}

// Server is the customer listener's handler. The link in the notice shows
// the grant and lets the customer deny it; approving takes a signature by
// one of the customer's own SSH keys over the grant's exact text, so that
// whoever else sees the link (the provider's mail server, an operator who
// added a webhook) cannot approve.
type Server struct {
	Store    Store
	Links    Signer
	Log      *slog.Logger
	Provider string // the provider's name, as customers know it
}

type page struct {
	Grant    *store.Grant
	Customer string // display name, or name
	Provider string
	Meaning  []string
	After    string
	KeyFP    string
	Duration string
	From     string
	Until    string
	Asked    string
	Decided  string
	Text     string // what to sign
	TextURL  string
	Sig      string
	Waiting  bool
	Open     bool   // approved or active: the customer may end it here
	Done     string // the decision just made
	Error    string
	Refused  string // why a signature did not count
}

var tmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>lifeboat: rescue grant {{with .Grant}}for {{.Host}}{{end}}</title>
<style>
body { font: 17px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 40em; padding: 1em; color: #111; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .3em 1em; }
dt { font-weight: 600; } dd { margin: 0; overflow-wrap: anywhere; }
pre { background: #f4f4f4; padding: .6em; overflow-x: auto; font-size: .85em; }
textarea { width: 100%; font: .8em monospace; }
.buttons { display: flex; gap: 1em; margin-top: 1em; }
button { flex: 1; font-size: 1.1em; padding: .8em; border-radius: .4em; border: 1px solid #555; }
button.approve { background: #1a7f37; color: #fff; border-color: #1a7f37; }
button.deny { background: #fff; color: #a40e26; border-color: #a40e26; }
.state { padding: .8em; border-radius: .4em; background: #eef; }
.error { padding: .8em; border-radius: .4em; background: #fee; }
</style>
</head>
<body>
{{if .Error}}<h1>lifeboat</h1><p class="error" id="error">{{.Error}}</p>{{else}}{{with .Grant}}
<h1>{{if $.Provider}}{{$.Provider}}: {{end}}rescue grant for {{.Host}}</h1>
{{if $.Done}}<p class="state" id="result">You {{$.Done}} this grant.</p>{{end}}
{{if $.Refused}}<p class="error" id="refused">The signature was not accepted: {{$.Refused}}</p>{{end}}
<p><strong>{{.Staff}}</strong>{{if $.Provider}} of {{$.Provider}}{{end}} asks for a <strong>{{.Scope}}</strong> grant on <strong>{{.Host}}</strong> for {{$.Duration}}. If you approve:</p>
<ul id="meaning">{{range $.Meaning}}<li>{{.}}</li>{{end}}</ul>
<p id="after">{{$.After}}</p>
<dl>
<dt>Host</dt><dd id="host">{{.Host}}</dd>
<dt>Customer</dt><dd>{{$.Customer}}</dd>
<dt>Who</dt><dd id="staff">{{.Staff}}, with SSH key {{$.KeyFP}}</dd>
<dt>Ticket</dt><dd id="ticket">{{.Ticket}}</dd>
<dt>Reason</dt><dd id="reason">{{.Reason}}</dd>
<dt>Asked</dt><dd>{{$.Asked}}</dd>
<dt>Window</dt><dd id="window">{{if $.Decided}}from {{$.From}} until {{$.Until}}{{else}}{{$.Duration}} from your approval{{end}}</dd>
<dt>State</dt><dd id="state">{{.State}}{{if .DecidedBy}} ({{.DecidedBy}}, {{$.Decided}}){{end}}</dd>
</dl>
{{if $.Waiting}}
<h2>To approve</h2>
<p>Sign this exact text with one of your SSH keys on file with your provider:</p>
<pre id="text">{{$.Text}}</pre>
<p>For example, in a terminal:</p>
<pre id="command">curl -s '{{$.TextURL}}' | ssh-keygen -Y sign -n lifeboat-grant -f ~/.ssh/id_ed25519</pre>
<p>Or save the text as grant.txt and run <code>ssh-keygen -Y sign -n lifeboat-grant -f ~/.ssh/id_ed25519 grant.txt</code>; it writes grant.txt.sig. Paste the signature here:</p>
<form method="post" action="/approve/{{.ID}}">
<input type="hidden" name="sig" value="{{$.Sig}}">
<textarea name="signature" id="signature" rows="8" placeholder="-----BEGIN SSH SIGNATURE-----"></textarea>
<div class="buttons">
<button class="approve" id="approve" type="submit" name="decision" value="approve">Approve</button>
<button class="deny" id="deny" type="submit" name="decision" value="deny">Deny</button>
</div>
</form>
<p>Denying needs no signature. Whatever you choose is recorded in the audit log with this grant (an approval with your signature, so anyone can check later that it was you), and you will get a notice of it.</p>
{{else if $.Open}}
<form method="post" action="/approve/{{.ID}}">
<input type="hidden" name="sig" value="{{$.Sig}}">
<div class="buttons"><button class="deny" id="revoke" type="submit" name="decision" value="revoke">End this grant now</button></div>
</form>
<p>Ending it takes effect at once: a session in progress ends within seconds and the host reboots into its own system.</p>
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
	mux.HandleFunc("GET /approve/{id}/text", s.text)
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

// grant loads the grant of a link, answering for it if it cannot.
func (s *Server) grant(w http.ResponseWriter, r *http.Request, sig string) (*store.Grant, bool) {
	id := r.PathValue("id")
	if !s.Links.CheckApproval(id, sig) {
		s.Log.Warn("approval page: bad or missing link signature", "grant", id, "peer", r.RemoteAddr)
		render(w, http.StatusForbidden, page{Error: "This link is not valid. Open the link from the notice exactly as it was sent."})
		return nil, false
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
		return nil, false
	}
	return g, true
}

// text serves the exact text to sign, for curl | ssh-keygen -Y sign.
func (s *Server) text(w http.ResponseWriter, r *http.Request) {
	g, ok := s.grant(w, r, r.URL.Query().Get("sig"))
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(store.ConsentText(g))
}

func (s *Server) show(w http.ResponseWriter, r *http.Request, sig, done string) {
	s.showRefused(w, r, sig, done, "")
}

func (s *Server) showRefused(w http.ResponseWriter, r *http.Request, sig, done, refused string) {
	g, ok := s.grant(w, r, sig)
	if !ok {
		return
	}
	name, tz := g.Customer, ""
	if c, err := s.Store.Customer(r.Context(), g.Customer); err == nil {
		name, tz = cmp.Or(c.DisplayName, c.Name), c.TimeZone
	}
	p := page{Grant: g, Customer: name, Provider: s.Provider, Meaning: store.Meaning(g.Scope), After: store.AfterApproval,
		Duration: store.Duration(g.Until.Sub(g.From)), Asked: store.When(g.Created, tz), From: store.When(g.From, tz), Until: store.When(g.Until, tz),
		Text: string(store.ConsentText(g)), Sig: sig, Waiting: g.State == store.GrantRequested, Done: done, Refused: refused,
		Open: g.State == store.GrantApproved || g.State == store.GrantActive}
	if !g.Decided.IsZero() {
		p.Decided = store.When(g.Decided, tz)
	}
	u := url.URL{Scheme: "https", Host: r.Host, Path: "/approve/" + g.ID + "/text", RawQuery: url.Values{"sig": {sig}}.Encode()}
	if r.TLS == nil {
		u.Scheme = "http"
	}
	p.TextURL = u.String()
	if pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(g.StaffKey)); err == nil {
		p.KeyFP = ssh.FingerprintSHA256(pk)
	}
	code := http.StatusOK
	if refused != "" {
		code = http.StatusForbidden
	}
	render(w, code, p)
}

func (s *Server) decide(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		render(w, http.StatusBadRequest, page{Error: "The form could not be read."})
		return
	}
	sig, decision := r.PostForm.Get("sig"), r.PostForm.Get("decision")
	if !s.Links.CheckApproval(id, sig) {
		s.Log.Warn("approval page: decision with a bad link signature", "grant", id, "peer", r.RemoteAddr)
		render(w, http.StatusForbidden, page{Error: "This link is not valid. Open the link from the notice exactly as it was sent."})
		return
	}
	g, err := s.Store.Grant(r.Context(), id)
	if err != nil {
		s.show(w, r, sig, "")
		return
	}
	var done string
	switch decision {
	case "approve":
		if _, err = s.Store.ApproveGrant(r.Context(), id, []byte(r.PostForm.Get("signature"))); err == nil {
			done = "approved"
		} else if errors.Is(err, store.ErrConsent) {
			s.Log.Warn("approval page: signature refused", "grant", id, "peer", r.RemoteAddr, "err", err)
			s.showRefused(w, r, sig, "", strings.TrimPrefix(err.Error(), store.ErrConsent.Error()+": "))
			return
		}
	case "deny":
		if _, err = s.Store.DenyGrant(r.Context(), id, "customer:"+g.Customer+" (approval link)"); err == nil {
			done = "denied"
		}
	case "revoke":
		// Ending access needs no more than the link: whoever holds it can
		// only take away.
		if _, err = s.Store.RevokeGrant(r.Context(), id, "customer:"+g.Customer+" (grant link)"); err == nil {
			done = "ended"
		}
	default:
		render(w, http.StatusBadRequest, page{Error: "Choose Approve or Deny."})
		return
	}
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			s.show(w, r, sig, "") // decided already: the page says what it is now
			return
		}
		s.Log.Error("approval page: decision failed", "grant", id, "err", err)
		render(w, http.StatusInternalServerError, page{Error: "The decision could not be recorded, so it was not made. Please try again."})
		return
	}
	s.Log.Info("grant decided by its customer", "grant", id, "host", g.Host, "decision", decision, "peer", r.RemoteAddr)
	s.show(w, r, sig, done)
}

func render(w http.ResponseWriter, code int, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_ = tmpl.Execute(w, p)
}
