// Command lifeboatd is lifeboat's boot server: DHCP, TFTP (first stage only)
// and HTTP (iPXE scripts, the RAM image, the agent API) for the hosts of its
// inventory. It reads its configuration, wires the services and supervises
// them; the protocol logic lives in pxe/.
package main
