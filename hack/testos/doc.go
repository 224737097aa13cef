// Command testos is the init of the small "installed OS" the end-to-end
// tests boot after the hand-off. It behaves like a systemd initrd for one
// thing only: it opens the LUKS volume named by rd.luks.name=UUID=NAME with
// the key file /etc/cryptsetup-keys.d/NAME.key, and never asks for a
// passphrase. It then mounts the root and prints the marker file to the
// console, so a test can see that the encrypted root really opened.
package main
