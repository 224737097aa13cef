// Package httpboot is lifeboatd's boot listener: the per-host iPXE script, the
// kernel and initramfs, the per-boot agent archive, and the agent API
// (check-in and event reports).
//
// It owns boot tokens: 256-bit random values, bound to one host and one boot,
// valid for minutes, used once, and kept only as SHA-256 hashes. The token
// reaches the RAM image inside a small per-boot cpio archive that iPXE loads
// as a second initrd, never on the kernel command line.
package httpboot
