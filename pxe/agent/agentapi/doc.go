// Package agentapi holds the wire types and the client of the agent ⇄ server
// protocol: the check-in that trades a one-time boot token for the host's
// configuration, and the event reports the agent sends during the boot.
//
// It is imported by the RAM-image agent, so it must stay tiny and must not
// depend on any server package besides pxe/audit's codes.
package agentapi
