// Package sqlite is lifeboatd's embedded store: customers, the inventory,
// boots with their stage history, the event log, boot tokens and operators,
// in one SQLite file through a pure-Go driver (no cgo).
//
// Schema migrations are embedded and applied in order at Open; a database
// from a newer lifeboatd is refused. The SQL is portable (standard types,
// '?' parameters, ON CONFLICT upserts) so that a PostgreSQL store for
// several lifeboatd servers can follow with the same methods. Secrets are
// kept as SHA-256 hashes only.
//
// The DHCP path never waits on a query: the inventory is served from an
// in-memory snapshot rebuilt after each change, and events are written by
// one writer goroutine that commits whatever has queued in one transaction
// (group commit). Inventory changes and their events commit together.
package sqlite
