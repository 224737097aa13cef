// Package apiserver serves the operator API (wire format in pxe/api) on its
// own listener, apart from the boot listener: inventory, customers, boots
// with their stage timings, and the event log (paged, or followed live).
//
// Every request but /healthz and /metrics must carry an operator's own
// token; every change is recorded in the event log under that operator's
// name, in the same transaction as the change.
package apiserver
