// Package sshd is the RAM image's SSH server. It authenticates customers by
// public key only, against the keys the server gave at check-in, and hands
// each session to its handler (agent.Boot). CertifiedHostKey pairs the
// boot's key with the certificate lifeboatd signed for it.
//
// Identity is taken from the permissions of the key that completed
// authentication (ssh.ServerConn.Permissions), never from keys merely offered
// during the handshake (CVE-2024-45337).
package sshd
