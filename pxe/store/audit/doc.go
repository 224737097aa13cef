// Package audit owns the stable event codes of lifeboat, the Event record
// every package emits through one Emitter, and the tamper-evident hash
// chain over those records: how a record is encoded, sealed (Seal), redacted
// for a customer who may not read it (Redact), and verified (Verifier,
// Verify) against receipts.
//
// The codes are part of the product's contract with providers and customers:
// once shipped, a code keeps its meaning. The encoding is too: customers may
// check the chain with code of their own. This package does no I/O, so that
// the server, the CLI and the RAM-image agent can all share it.
package audit
