// Package store owns the model of lifeboatd's state and the decisions on
// it: the host inventory (Host, its checks, the in-memory Index that DHCP
// reads), the boot state machine (Boots) and the one way a boot step is
// taken (Steps: record, then stage, then history), customers, rescue
// grants and their states, webhooks, notices, boot-token bindings and the
// check-in the store takes in one transaction (CheckinRequest).
//
// It holds no database code; the embedded SQLite store is store/sqlite.
// The operator API has wire types of its own (pxe/operator/api); the
// words both share are pxe/store/kind.
package store
