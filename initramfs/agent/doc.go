// Package agent is the boot flow of the RAM image: load the drivers, bring up
// the network, make a host key in RAM, check in with lifeboatd using the
// one-time boot token, and report events of this boot.
package agent
