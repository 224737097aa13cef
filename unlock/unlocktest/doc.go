// Package unlocktest makes real LUKS volumes for tests, with cryptsetup,
// and a fake /sys/class/block and /dev that list them.
package unlocktest
