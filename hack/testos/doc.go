// Command testos is the init of the small "installed OS" the end-to-end
// tests boot after the hand-off. It behaves like a systemd initrd for one
// thing only: it opens each LUKS volume named by rd.luks.name=UUID=NAME
// with the key file /etc/cryptsetup-keys.d/NAME.key, and never asks for a
// passphrase. It mounts each, prints the marker file of every volume but
// the root (TESTOS-VOLUME NAME: ...), then the root's (TESTOS-MARKER: ...),
// so a test can see that every encrypted volume really opened.
package main
