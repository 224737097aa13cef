// Package dhcp decides and sends lifeboatd's DHCP answers.
//
// The decision is a pure function of the request, the host's inventory entry
// and the server's own addresses (Decide), table-tested without sockets. The
// Server is a thin loop around insomniacslk/dhcp's server4 that looks the host
// up, calls Decide, records the event and writes the reply. Hosts not in the
// inventory get no answer at all, so lifeboatd can sit next to a provider's
// existing DHCP service without stealing its clients.
package dhcp
