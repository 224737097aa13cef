// Command lifeboat-image builds lifeboat's RAM image: the Debian kernel, an
// initramfs made by mkuimage from u-root's init, lifeboat-init and the
// kernel modules the machines need, and a manifest with each artefact's
// sha256 and size.
package main
