// Package keyring holds lifeboatd's secret key (one 32-byte file, made at
// first start; see keyfile) and what is done with it: sealing webhook
// signing secrets for the store, so that a copy of the database alone
// cannot forge notices, and signing approval links for one grant each.
package keyring
