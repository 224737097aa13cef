// Package agent is the boot flow of the RAM image: load the drivers, bring up
// the network, make a host key in RAM, check in with lifeboatd using the
// one-time boot token (retrying while the server is unavailable, never
// after a refusal), and report events of this boot. Boot is the rest: the
// SSH server and what each session runs (the unlock dialog, or a rescue
// grant's commands), the end of a rescue session, and the jump into the
// host's OS once the customer's session has closed. The jump and the
// restart are injected, so the flow is table-tested without a VM;
// cmd/lifeboat-init passes the real ones.
package agent
