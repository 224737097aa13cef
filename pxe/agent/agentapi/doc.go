// Package agentapi holds the wire types and the client of the agent ⇄ server
// protocol: the check-in that trades a one-time boot token for the host's
// configuration, the event reports the agent sends during the boot, its
// rescue grant's state and the pieces of rescue recordings. The server half
// is pxe/agent/agentserver.
//
// It is imported by the RAM-image agent, so it must stay tiny: besides the
// standard library it uses only pxe/store/audit (event codes) and
// pxe/store/kind (the shared words).
package agentapi
