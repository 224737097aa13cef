// Package e2e holds the end-to-end tests: lifeboatd and QEMU hosts (SeaBIOS
// with iPXE, OVMF with iPXE) in a network namespace, a LUKS2 disk made by
// cryptsetup, the OpenSSH client typing the passphrase, and the host's own
// OS proving from inside its encrypted root that it booted unlocked.
//
// They need root, QEMU and a built image; they run with the e2e build tag
// from 'make test'.
package e2e
