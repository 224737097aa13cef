package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/lifeboat-boot/lifeboat/pxe/operator/api"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
)

// A customer's settings decide who is told and what support may do
// without asking: notice channels, approval policies, the customer's own
// SSH keys (approvals are signatures by them), their age key and their
// token. Changing them is the customer's: with their own token it applies.
// An operator's change is a proposal the customer accepts with their
// token, unless the provider's contract lets operators
// (OperatorsChangeCustomers): then it applies at once, its record (and so
// its notice) queued on the channels the customer had before it.

// change is one kind of change to a customer's settings.
type change struct {
	// check validates the change and says it in words for the notice.
	check func(s *Server, ctx context.Context, customer, target string, body []byte) (string, error)
	// apply makes it, as actor, and returns the answer (status, body).
	apply func(s *Server, ctx context.Context, customer, target string, body []byte, actor string) (int, any, error)
}

var changes = map[string]change{
	"webhook.add": {
		check: func(s *Server, ctx context.Context, customer, target string, body []byte) (string, error) {
			var req api.WebhookRequest
			if err := strictJSON(body, &req); err != nil {
				return "", err
			}
			// The host only: the URL's path may hold the receiver's token,
			// and the summary goes into the record and the notices.
			u, err := url.Parse(req.URL)
			if err != nil || u.Host == "" {
				return "", fmt.Errorf("%w: webhook URL %q: want http(s)://host/path", store.ErrInvalid, req.URL)
			}
			return "add a webhook to " + u.Host, nil
		},
		apply: func(s *Server, ctx context.Context, customer, target string, body []byte, actor string) (int, any, error) {
			var req api.WebhookRequest
			if err := strictJSON(body, &req); err != nil {
				return 0, nil, err
			}
			if s.Secrets == nil {
				return 0, nil, errors.New("no secret key configured")
			}
			secret, sealed, err := s.Secrets.NewWebhookSecret()
			if err != nil {
				return 0, nil, err
			}
			wh, err := s.Store.AddWebhook(ctx, store.Webhook{Customer: customer, URL: req.URL, Sealed: sealed}, actor)
			if err != nil {
				return 0, nil, err
			}
			return http.StatusCreated, api.WebhookCreated{Webhook: webhookOut(wh), Secret: secret}, nil
		},
	},
	"webhook.remove": {
		check: func(s *Server, ctx context.Context, customer, target string, body []byte) (string, error) {
			return "remove webhook " + target, nil
		},
		apply: func(s *Server, ctx context.Context, customer, target string, body []byte, actor string) (int, any, error) {
			return http.StatusNoContent, nil, s.Store.RemoveWebhook(ctx, customer, target, actor)
		},
	},
	"policy": {
		check: func(s *Server, ctx context.Context, customer, target string, body []byte) (string, error) {
			var p api.Policy
			if err := strictJSON(body, &p); err != nil {
				return "", err
			}
			if !store.ValidScope(store.Scope(target)) || (p.Policy != store.PolicyApprove && p.Policy != store.PolicyNotify) {
				return "", fmt.Errorf("%w: policy %q for scope %q: want approve or notify, for one of %s", store.ErrInvalid, p.Policy, target, store.ScopeList())
			}
			return fmt.Sprintf("set the policy for %s grants to %s", target, p.Policy), nil
		},
		apply: func(s *Server, ctx context.Context, customer, target string, body []byte, actor string) (int, any, error) {
			var p api.Policy
			if err := strictJSON(body, &p); err != nil {
				return 0, nil, err
			}
			return http.StatusNoContent, nil, s.Store.SetPolicy(ctx, customer, store.Scope(target), p.Policy, actor)
		},
	},
	"customer.set": {
		check: func(s *Server, ctx context.Context, customer, target string, body []byte) (string, error) {
			var u api.CustomerUpdate
			if err := strictJSON(body, &u); err != nil {
				return "", err
			}
			var what []string
			if u.DisplayName != nil {
				what = append(what, "display name "+*u.DisplayName)
			}
			if u.Emails != nil {
				what = append(what, "e-mails "+strings.Join(*u.Emails, ", "))
			}
			if u.Keys != nil {
				what = append(what, "SSH keys "+strings.Join(store.Fingerprints(*u.Keys), ", "))
			}
			if u.TimeZone != nil {
				what = append(what, "time zone "+*u.TimeZone)
			}
			if len(what) == 0 {
				return "", fmt.Errorf("%w: nothing to change", store.ErrInvalid)
			}
			return "set " + strings.Join(what, "; "), nil
		},
		apply: func(s *Server, ctx context.Context, customer, target string, body []byte, actor string) (int, any, error) {
			var u api.CustomerUpdate
			if err := strictJSON(body, &u); err != nil {
				return 0, nil, err
			}
			c, err := s.Store.UpdateCustomer(ctx, customer, func(c *store.Customer) error {
				if u.DisplayName != nil {
					c.DisplayName = *u.DisplayName
				}
				if u.Emails != nil {
					c.Emails = *u.Emails
				}
				if u.Keys != nil {
					c.Keys = *u.Keys
				}
				if u.TimeZone != nil {
					c.TimeZone = *u.TimeZone
				}
				return nil
			}, actor)
			if err != nil {
				return 0, nil, err
			}
			return http.StatusOK, customerOut(*c), nil
		},
	},
	"age_recipient": {
		check: func(s *Server, ctx context.Context, customer, target string, body []byte) (string, error) {
			var a api.AgeRecipient
			if err := strictJSON(body, &a); err != nil {
				return "", err
			}
			return "seal recordings to age key " + a.Recipient, nil
		},
		apply: func(s *Server, ctx context.Context, customer, target string, body []byte, actor string) (int, any, error) {
			var a api.AgeRecipient
			if err := strictJSON(body, &a); err != nil {
				return 0, nil, err
			}
			return http.StatusNoContent, nil, s.Store.SetAgeRecipient(ctx, customer, a.Recipient, actor)
		},
	},
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: request body: %v", store.ErrInvalid, err)
	}
	return nil
}

// own answers 403 (and reports false) when a customer's token asks about
// another customer.
func own(w http.ResponseWriter, r *http.Request, customer string) bool {
	if c := principal(r).Customer; c != "" && c != customer {
		writeJSON(w, http.StatusForbidden, api.Error{Message: "a customer's token reaches that customer's own settings only"})
		return false
	}
	return true
}

// ownGrant returns the grant of the URL, if the caller may see it: any for
// an operator, those of their own hosts for a customer.
func (s *Server) ownGrant(r *http.Request) (*store.Grant, error) {
	g, err := s.Store.Grant(r.Context(), r.PathValue("id"))
	if c := principal(r).Customer; err == nil && c != "" && g.Customer != c {
		return nil, fmt.Errorf("grant %q on your hosts: %w", r.PathValue("id"), store.ErrNotFound)
	}
	return g, err
}

// customerChange makes (or proposes) one change to customer's settings.
func (s *Server) customerChange(w http.ResponseWriter, r *http.Request, customer, kind, target string, body []byte) {
	if !own(w, r, customer) {
		return
	}
	ch := changes[kind]
	summary, err := ch.check(s, r.Context(), customer, target, body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := principal(r)
	if p.Customer == "" && !s.OperatorsChangeCustomers {
		prop, err := s.Store.Propose(r.Context(), store.Proposal{Customer: customer, Kind: kind, Target: target, Body: string(body), Summary: summary, ProposedBy: p.Name})
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.Log.Info("api: change proposed to a customer", "operator", p.Name, "customer", customer, "kind", kind, "proposal", prop.ID)
		writeJSON(w, http.StatusAccepted, api.Proposed{Proposal: proposalOut(prop),
			Message: fmt.Sprintf("proposed to %s: it applies once they accept it (lifeboat customer accept %s, with their token)", customer, prop.ID)})
		return
	}
	code, out, err := ch.apply(s, r.Context(), customer, target, body, p.Name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.Log.Info("api: customer settings changed", "by", p.Name, "customer", customer, "kind", kind)
	if out == nil {
		w.WriteHeader(code)
		return
	}
	writeJSON(w, code, out)
}

// body reads a request body of at most 64 KiB.
func body(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	var raw json.RawMessage
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	if err := dec.Decode(&raw); err != nil {
		writeJSON(w, http.StatusBadRequest, api.Error{Message: "request body: " + err.Error(), Hint: "send one JSON object as documented"})
		return nil, false
	}
	return raw, true
}

func (s *Server) customerRoutes(mux *http.ServeMux, auth, anyone func(http.HandlerFunc) http.Handler) {
	changeRoute := func(pattern, kind, target string) {
		mux.Handle(pattern, anyone(func(w http.ResponseWriter, r *http.Request) {
			b := []byte("{}")
			if r.Method != http.MethodDelete {
				var ok bool
				if b, ok = body(w, r); !ok {
					return
				}
			}
			s.customerChange(w, r, r.PathValue("name"), kind, r.PathValue(target), b)
		}))
	}
	changeRoute("PATCH /v1/customers/{name}", "customer.set", "")
	changeRoute("POST /v1/customers/{name}/webhooks", "webhook.add", "")
	changeRoute("DELETE /v1/customers/{name}/webhooks/{id}", "webhook.remove", "id")
	changeRoute("PUT /v1/customers/{name}/policies/{scope}", "policy", "scope")
	changeRoute("PUT /v1/customers/{name}/age-recipient", "age_recipient", "")

	mux.Handle("GET /v1/customers/{name}", anyone(func(w http.ResponseWriter, r *http.Request) {
		if !own(w, r, r.PathValue("name")) {
			return
		}
		c, err := s.Store.Customer(r.Context(), r.PathValue("name"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, customerOut(*c))
	}))
	mux.Handle("GET /v1/customers/{name}/webhooks", anyone(func(w http.ResponseWriter, r *http.Request) {
		if !own(w, r, r.PathValue("name")) {
			return
		}
		ws, err := s.Store.Webhooks(r.Context(), r.PathValue("name"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, api.WebhookList{Webhooks: each(ws, webhookOut)})
	}))
	mux.Handle("GET /v1/customers/{name}/policies", anyone(func(w http.ResponseWriter, r *http.Request) {
		if !own(w, r, r.PathValue("name")) {
			return
		}
		ps, err := s.Store.Policies(r.Context(), r.PathValue("name"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, api.PolicyList{Policies: each(ps, policyOut)})
	}))

	// A customer's token: for a signed challenge, or a new one with theirs
	// (token.go).
	mux.HandleFunc("GET /v1/customers/{name}/challenge", s.challenge)
	mux.HandleFunc("POST /v1/customers/{name}/token", s.token)

	// Proposals wait for the customer's own token.
	mux.Handle("GET /v1/customers/{name}/proposals", anyone(func(w http.ResponseWriter, r *http.Request) {
		if !own(w, r, r.PathValue("name")) {
			return
		}
		ps, err := s.Store.Proposals(r.Context(), r.PathValue("name"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, api.ProposalList{Proposals: each(ps, proposalOut)})
	}))
	mux.Handle("POST /v1/proposals/{id}/{answer}", anyone(s.answerProposal))

	// The provider keeps each customer's staff list; the customer is told
	// of every change before it applies.
	mux.Handle("GET /v1/customers/{name}/staff", anyone(func(w http.ResponseWriter, r *http.Request) {
		if !own(w, r, r.PathValue("name")) {
			return
		}
		list, err := s.Store.Staff(r.Context(), r.PathValue("name"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, api.StaffList{Staff: each(list, func(x store.Staff) api.Staff { return api.Staff(x) })})
	}))
	mux.Handle("PUT /v1/customers/{name}/staff/{staff}", auth(func(w http.ResponseWriter, r *http.Request) {
		var in api.Staff
		if !s.decode(w, r, &in) {
			return
		}
		in.Customer, in.Name = r.PathValue("name"), r.PathValue("staff")
		if err := s.Store.AddStaff(r.Context(), store.Staff(in), operator(r)); err != nil {
			s.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.Handle("DELETE /v1/customers/{name}/staff/{staff}", auth(func(w http.ResponseWriter, r *http.Request) {
		if err := s.Store.RemoveStaff(r.Context(), r.PathValue("name"), r.PathValue("staff"), operator(r)); err != nil {
			s.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))

	// An approval is the customer's signature over the grant's text: the
	// signature is the authority, whoever carries it here.
	mux.Handle("GET /v1/grants/{id}/consent", anyone(func(w http.ResponseWriter, r *http.Request) {
		g, err := s.ownGrant(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, api.Consent{Text: string(store.ConsentText(g)), Namespace: store.ConsentNamespace})
	}))
	mux.Handle("POST /v1/grants/{id}/approve", anyone(func(w http.ResponseWriter, r *http.Request) {
		cur, err := s.ownGrant(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		var a api.Approval
		if !s.decode(w, r, &a) {
			return
		}
		g, err := s.Store.ApproveGrant(r.Context(), cur.ID, []byte(a.Signature))
		if err != nil {
			if errors.Is(err, store.ErrConsent) {
				err = &refusal{customer: cur.Customer, what: "approve grant " + cur.ID + " without the customer's signature", err: err}
			}
			s.refuse(w, r, err)
			return
		}
		s.Log.Info("api: grant approved by its customer's signature", "grant", g.ID, "by", g.DecidedBy)
		writeJSON(w, http.StatusOK, grantOut(g))
	}))
}

// answerProposal accepts or declines a proposal: the customer's token only.
func (s *Server) answerProposal(w http.ResponseWriter, r *http.Request) {
	answer := r.PathValue("answer")
	if answer != "accept" && answer != "decline" {
		writeJSON(w, http.StatusNotFound, api.Error{Message: "answer a proposal with accept or decline"})
		return
	}
	cust := principal(r).Customer
	if cust == "" {
		writeJSON(w, http.StatusForbidden, api.Error{Message: "only the customer answers a proposal, with their own token"})
		return
	}
	p, err := s.Store.Proposal(r.Context(), r.PathValue("id"))
	if err != nil || p.Customer != cust {
		s.fail(w, r, fmt.Errorf("proposal %q for you: %w", r.PathValue("id"), store.ErrNotFound))
		return
	}
	ch, known := changes[p.Kind]
	if !known || p.State != store.ProposalOpen {
		s.fail(w, r, fmt.Errorf("proposal %s: %w: it is %s", p.ID, store.ErrConflict, p.State))
		return
	}
	actor := "customer:" + cust
	if answer == "decline" {
		p, err = s.Store.CloseProposal(r.Context(), p.ID, store.ProposalDeclined, "", actor)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, proposalOut(p))
		return
	}
	if _, err := s.Store.CloseProposal(r.Context(), p.ID, store.ProposalAccepted, "", actor); err != nil {
		s.fail(w, r, err)
		return
	}
	code, out, err := ch.apply(s, r.Context(), cust, p.Target, []byte(p.Body), actor+" (proposal "+p.ID+" by "+p.ProposedBy+")")
	if err != nil {
		_, _ = s.Store.CloseProposal(r.Context(), p.ID, store.ProposalFailed, err.Error(), actor)
		s.fail(w, r, err)
		return
	}
	if out == nil {
		w.WriteHeader(code)
		return
	}
	writeJSON(w, code, out)
}

func proposalOut(p *store.Proposal) api.Proposal { return api.Proposal(*p) }
