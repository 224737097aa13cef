package apiserver

import (
	"github.com/lifeboat-boot/lifeboat/pxe/operator/api"
	"github.com/lifeboat-boot/lifeboat/pxe/recordings"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
)

// The store's types and the API's are declared apart (see api/types.go);
// here the server converts between them. Where the two have the same
// fields a plain conversion is used, which stops compiling the day they
// differ: the change then gets a decision of its own here.

// each converts every element of xs, never returning nil (a listing is
// [] in JSON, not null).
func each[S, T any](xs []S, f func(S) T) []T {
	out := make([]T, 0, len(xs))
	for _, x := range xs {
		out = append(out, f(x))
	}
	return out
}

func hostOut(h *store.Host) *api.Host {
	if h == nil {
		return nil
	}
	x := api.Host(*h)
	return &x
}

// hostIn keeps a null entry null: the inventory's checks name it.
func hostIn(h *api.Host) *store.Host {
	if h == nil {
		return nil
	}
	x := store.Host(*h)
	return &x
}

func customerOut(c store.Customer) api.Customer { return api.Customer(c) }

func customerIn(c api.Customer) store.Customer { return store.Customer(c) }

func changeOut(r store.ChangeResult) api.ChangeResult { return api.ChangeResult(r) }

func policyOut(p store.Policy) api.Policy { return api.Policy(p) }

func recordingOut(r recordings.Info) api.Recording { return api.Recording(r) }

func grantRequestIn(r api.GrantRequest) store.GrantRequest { return store.GrantRequest(r) }

func bootOut(b store.BootRecord) api.Boot {
	return api.Boot{ID: b.ID, Host: b.Host, MAC: b.MAC, Firmware: b.Firmware, Started: b.Started, Stage: b.Stage,
		Stages: each(b.Stages, func(s store.StageTimes) api.Stage { return api.Stage(s) }), Warnings: b.Warnings, Trust: b.Trust}
}

// webhookOut leaves out the sealed secret.
func webhookOut(w store.Webhook) api.Webhook {
	return api.Webhook{ID: w.ID, Customer: w.Customer, URL: w.URL, Created: w.Created}
}

func noticeOut(n store.Notice) api.Notice {
	return api.Notice{ID: n.ID, Channel: n.Channel, Target: n.Target, Customer: n.Customer, Created: n.Created,
		Attempts: n.Attempts, State: n.State, Error: n.Error, Event: n.Event}
}

// grantOut leaves out the console code's hash (the code itself is in the
// answer to the request only).
func grantOut(g *store.Grant) *api.Grant {
	return &api.Grant{ID: g.ID, Host: g.Host, Customer: g.Customer, Staff: g.Staff, StaffKey: g.StaffKey, Ticket: g.Ticket,
		Reason: g.Reason, Scope: g.Scope, Policy: g.Policy, State: g.State, From: g.From, Until: g.Until, Created: g.Created,
		Decided: g.Decided, DecidedBy: g.DecidedBy, ConsoleCode: g.ConsoleCode}
}
