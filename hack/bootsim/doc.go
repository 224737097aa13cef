// Package bootsim plays a host booting through lifeboatd over HTTP, as
// iPXE and the RAM-image agent would: the per-boot script, the agent
// archive, the check-in with a host key, and the agent's reports (login,
// a wrong passphrase, unlock, hand-off). It records every step the server
// acknowledged, so that a test can check that each has its audit record.
//
// It is a test tool: it reaches only the base URL it is given.
package bootsim
