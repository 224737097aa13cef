// Package vm is the test and demo harness: a network namespace with a bridge
// that the boot server listens on, QEMU hosts attached to it through tap
// devices, and their serial consoles captured line by line.
//
// Everything runs inside the namespace, so no test traffic can leave the
// machine. QEMU always runs with -no-reboot and a context deadline, so that a
// failed boot ends the run instead of hanging it.
package vm
