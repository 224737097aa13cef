// Package server assembles lifeboatd from its parts: the configuration
// (a JSON file, the environment and flags; Config, LoadConfig), the store,
// and every listener and loop (Run): DHCP, TFTP, the boot listener (boot
// files from pxe/boot/httpboot, the agent API from pxe/agent/agentserver),
// the operator API, the customer listener, the notice relay and the
// expiry of rescue grants. cmd/lifeboatd parses its command line and calls
// Run; nothing here decides how a boot goes, only what is connected to
// what.
package server
