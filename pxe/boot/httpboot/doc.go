// Package httpboot serves what a booting host fetches over HTTP: the
// per-host iPXE script, the kernel and initramfs, the per-boot agent
// archive, and the first-stage loaders for UEFI HTTP boot. Every fetch is
// a boot step (store.Steps): recorded before it is served. The agent API
// that the RAM image talks to once it runs is pxe/agent/agentserver.
//
// It issues boot tokens: 256-bit random values, bound to one host and one
// boot, valid for minutes, used once (redeemed by the check-in), and kept
// only as SHA-256 hashes. The token reaches the RAM image inside a small
// per-boot cpio archive that iPXE loads as a second initrd, never on the
// kernel command line.
package httpboot
