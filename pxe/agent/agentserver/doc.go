// Package agentserver is the server half of the agent API (the wire types
// and client are pxe/agent/agentapi): the check-in that trades a one-time
// boot token for the host's configuration and a certified host key, the
// agent's event reports, its rescue grant's state, and the pieces of
// rescue recordings.
//
// A check-in is one store call (store.CheckinRequest): the token is
// redeemed, the check-in recorded, a report token issued and a rescue
// grant activated in one transaction, or nothing is. A store failure is a
// 503 that leaves the token unused, and the agent tries again; a retry by
// the same agent (same token and host key) after its answer was lost gets
// the same answer. Every boot step goes through store.Steps.
package agentserver
