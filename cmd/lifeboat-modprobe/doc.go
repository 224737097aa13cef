// Command lifeboat-modprobe is the RAM image's modprobe, which the kernel's
// request_module runs (for "crypto-xts(aes)", "fs-ext4", "net-pf-38" and
// the like): it resolves the name through modules.alias and loads the
// module with its softdeps and dependencies (initramfs/coldplug). The
// agent points /proc/sys/kernel/modprobe at it.
package main
