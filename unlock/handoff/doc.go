// Package handoff starts the host's own OS after an unlock: it finds the
// OS's boot entry on its unencrypted /boot, appends an in-memory cpio with the
// key file where the OS's initrd looks for it, and kexecs the OS kernel with
// its own command line.
//
// The key never touches a disk: the combined initrd lives in a memfd that is
// closed once the kernel has copied it, and the caller's buffers are zeroed.
package handoff
