// Package unlock finds the LUKS volumes of a host, tests a passphrase against
// them one key derivation at a time, and runs the customer's unlock dialog.
// Its subpackage handoff builds the in-memory key archive and kexecs the
// host's own OS.
//
// It never touches the network: the dialog reads and writes an io.ReadWriter
// (an SSH channel in production, a pipe in tests) and reports events through
// a function it is given. Passphrases are []byte, never string, so that they
// can be zeroed once used.
package unlock
