// Package sqlite is lifeboatd's embedded store: customers, the inventory,
// boots with their stage history, the audit chain, the notice outbox,
// webhooks, boot and report tokens and operators, in one SQLite file through
// a pure-Go driver (no cgo).
//
// Schema migrations are embedded and applied in order at Open; a database
// from a newer lifeboatd is refused. The SQL is portable (standard types,
// '?' parameters, ON CONFLICT upserts) so that a PostgreSQL store for
// several lifeboatd servers can follow with the same methods. Tokens are
// kept as SHA-256 hashes only; webhook secrets only sealed by the caller.
//
// The DHCP path never waits on a query: the inventory is served from an
// in-memory snapshot rebuilt after each change, and events are written by
// one writer goroutine that commits whatever has queued in one transaction
// (group commit). Inventory changes and their events commit together, and
// an agent's check-in (Checkin) is one transaction: the token redeemed, the
// check-in recorded, a report token issued, the rescue grant activated.
//
// Every event is sealed into the audit chain (pxe/store/audit) as it is written:
// one lock (chainMu) is held from the first seal of a transaction to its
// commit, so that the chain's order is the commit order, and the head moves
// only once a commit succeeds. A notice for the host's customer is written
// to the outbox in the same transaction as its record, so a notice is never
// lost and never sent for a record that was not kept.
package sqlite
