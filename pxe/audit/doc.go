// Package audit owns the stable event codes of lifeboat and the Event record
// every package emits through one Emitter.
//
// The codes are part of the product's contract with providers and customers:
// once shipped, a code keeps its meaning. The tamper-evident hash chain over
// these records comes later; this package stays free of I/O so that both the
// server and the RAM-image agent can share it.
package audit
