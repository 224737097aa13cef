// Package handoff starts the host's own OS after an unlock: it finds the
// OS's boot entry on its unencrypted /boot, appends an in-memory cpio with the
// key file where the OS's initrd looks for it, and kexecs the OS kernel with
// its own command line.
//
// Where the key goes depends on the OS initrd, read before the kexec
// (Inspect, MakePlan): systemd-cryptsetup initrds (dracut, sd-encrypt) look
// in /etc/cryptsetup-keys.d/NAME.key; initramfs-tools reads the key file its
// /cryptroot/crypttab names, so that crypttab is rewritten to name
// /cryptroot/keyfiles/NAME.key; mkinitcpio's encrypt hook uses
// /crypto_keyfile.bin. What cannot be handed over is said to the customer.
//
// The key never touches a disk: the combined initrd lives in a memfd that is
// closed once the kernel has copied it, and the caller's buffers are zeroed.
package handoff
