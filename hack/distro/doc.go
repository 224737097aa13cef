// Package distro builds real installed systems for the hand-off tests:
// Debian stable, debootstrapped from Debian's packages, with its root on
// LUKS2 and its initrd made by initramfs-tools (cryptsetup-initramfs) or by
// dracut (systemd-cryptsetup). Built roots are cached by recipe, so that
// only the first run on a machine pays for debootstrap.
package distro
