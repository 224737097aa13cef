// Command suite runs lifeboat's benchmarks side by side with the tools
// providers run today, on the same machine in one run, and writes the
// table of medians and ratios to BENCHMARKS.md:
//
//  1. DHCP: DORA exchanges per second with perfdhcp at rising rates until
//     more than 2.5% of exchanges are lost (Kea's method), 10,000
//     reservations: lifeboatd vs dnsmasq vs Kea (memfile); p50/p99 latency
//     at a fixed rate with a DORA probe of our own.
//  2. Boot storm: 200 simulated hosts start at once, each doing DHCP (as
//     PXE, then as iPXE), a TFTP fetch of undionly.kpxe, the iPXE script,
//     and the real kernel and initramfs over HTTP, checked by sha256:
//     lifeboatd vs dnsmasq (DHCP + TFTP) with nginx (HTTP), and a plain TCP
//     copy of the same bytes as the limit.
//  3. TFTP: undionly.kpxe and a 10 MB file, blksize 1468, with curl:
//     lifeboatd vs dnsmasq vs tftpd-hpa.
//  4. Unlock: passphrase to key on one LUKS2 argon2id header (1 GiB, and
//     cryptsetup's default): lifeboat's unlock code vs cryptsetup open
//     --test-passphrase; time and peak RSS.
//  5. Power-on to SSH-ready in QEMU (BIOS, UEFI) vs the same kernel and
//     boot path with a busybox initramfs that prints one line.
//
// Every comparison runs A/B/A/B (-rounds) on the same work; every server
// runs in a network namespace of its own and the clients in another, so no
// traffic leaves the machine. These are benchmarks, not tests: nothing
// asserts a time. Run as root: make bench.
package main
