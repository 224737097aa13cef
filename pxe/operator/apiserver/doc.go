// Package apiserver serves the operator API (wire format in
// pxe/operator/api) on its own listener, apart from the boot listener:
// inventory, customers, webhooks, rescue grants and policies, recordings,
// boots with their stage timings, the audit chain and the event log (paged,
// or followed live). It converts the store's types to the API's own
// (wire.go).
//
// Every request but /healthz and /metrics must carry an operator's own
// token (a customer's token reads that customer's audit records and
// recordings only); every change is recorded in the event log under that
// operator's name, in the same transaction as the change.
package apiserver
