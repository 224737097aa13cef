// Package store owns lifeboatd's state: the host inventory, the boots in
// flight with their state machine, and the append-only event log.
//
// For now the inventory is a JSON file and the log a JSON-lines file; the
// embedded SQL store comes later behind the same small surface: one lookup
// (MAC → Host, or nothing: stay silent) and one Emitter.
package store
