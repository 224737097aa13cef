// Package keyfile owns how lifeboatd keeps its own keys on disk (the SSH
// host CA, the secret key that seals webhook secrets and signs approval
// links): made once, at first start, mode 0600 in a directory only its
// owner can enter; never replaced; refused when others can read it.
package keyfile
