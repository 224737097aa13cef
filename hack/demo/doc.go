// Command demo is 'make demo': it builds a test disk with a LUKS2 root,
// starts lifeboatd and a QEMU host in a network namespace, waits until the
// host is at the unlock prompt, and hands the terminal to ssh so that you can
// type the demo passphrase and watch the host's own OS boot unlocked.
// Everything it made is removed when it exits.
package main
