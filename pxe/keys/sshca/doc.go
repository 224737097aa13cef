// Package sshca is lifeboat's SSH certificate authority for host keys.
//
// Every boot of the RAM image makes a fresh host key in RAM. At check-in,
// lifeboatd signs its public half into a host certificate valid for this
// boot only (hours), for the host's name and address. A customer who has
// put the CA's one @cert-authority line in known_hosts then logs in to any
// of their hosts' unlock prompts without being asked to trust an unknown
// key, and an impostor without a certificate is refused by their ssh.
//
// The CA key is made at first start and kept in a file only its owner can
// read. This package holds no customer secret.
package sshca
