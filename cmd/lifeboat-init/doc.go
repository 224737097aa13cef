// Command lifeboat-init is the agent of lifeboat's RAM image, run by u-root's
// init as the uinit. It wires initramfs/agent (modules, network, check-in),
// initramfs/sshd and the unlock dialog, and prints its progress on the
// console for whoever watches it at 3 a.m.
package main
