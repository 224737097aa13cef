// Package shadow changes one user's password hash in an installed system's
// /etc/shadow and nothing else: the other lines, the other fields of the
// user's line, the file's owner, mode and extended attributes (its SELinux
// label) stay byte for byte as they were.
//
// The hash is made the way the installed system makes its own: the method
// named by ENCRYPT_METHOD in its /etc/login.defs (yescrypt or SHA-512 crypt,
// with its cost settings), else the method of the user's current hash, else
// yescrypt, Debian's default since bullseye.
package shadow
