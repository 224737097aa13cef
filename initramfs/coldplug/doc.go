// Package coldplug loads the kernel modules a machine's devices need, the
// way udev and modprobe do on an installed system, for the RAM image that
// has neither: each device's modalias is matched against modules.alias
// (softdeps first), devices that appear once their parent's driver loads
// are followed through the kernel's uevents, and the kernel's own
// request_module calls reach the image's modprobe (cmd/lifeboat-modprobe),
// which resolves names through the same index.
//
// The matching (Index) is pure and table-tested; Loader and the sysfs and
// netlink readers are thin.
package coldplug
