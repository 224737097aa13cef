// Package store owns the model of lifeboatd's state and the decisions on
// it: the host inventory (Host, its checks, the in-memory Index that DHCP
// reads), the boot state machine (Boots), customers, webhooks, notices,
// boot-token bindings and the filters and records the operator API speaks
// in.
//
// It holds no database code, so that the CLI can use its types without
// linking a database driver; the embedded SQLite store is store/sqlite.
package store
