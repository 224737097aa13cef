// Package agenttls is the key of lifeboatd's agent API: the TLS listener
// the RAM image checks in and reports over, and the signature on each
// check-in answer.
//
// The key (Ed25519) is made at first start and kept in a file only its
// owner can read. Its public half reaches each boot in the agent archive
// lifeboatd serves with the boot's token (agentapi.BootParams.ServerKey),
// and the agent trusts no other: a machine between the host and lifeboatd
// can neither read nor rewrite what they say. That archive travels over the
// boot network's plain HTTP, as iPXE fetches it, so the root of this trust
// is the integrity of what lifeboatd serves at boot; Secure Boot is what
// hardens that. The certificate is made afresh at each start from the key
// (the agent pins the key, not the certificate).
package agenttls
