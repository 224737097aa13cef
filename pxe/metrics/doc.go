// Package metrics defines lifeboatd's Prometheus metrics in one place, on
// a registry of its own (served on the operator listener at /metrics).
// Labels take values from small fixed sets only: never a MAC, a host name
// or anything else from a packet, so that no client can blow up the
// number of series.
package metrics
