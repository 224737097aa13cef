// Package hwinfo reads what a machine has, for the boot's hardware
// report: the CPU and memory from /proc, each NIC and each whole disk
// from sysfs (driver, link and speed; model, serial, size, rotational),
// and NVMe disks' health from their SMART log. It reads a root folder
// given to it, so tests run it on a fake /sys and /proc.
package hwinfo
