// Package rescue is the RAM image's half of a rescue grant: what the staff
// member may run (reset-password under a password-reset grant, a recorded
// shell under a shell grant), the recording of that shell, and the opening
// of the customer's volumes in place when the customer unlocks during a
// rescue boot (no hand-off: the host stays in lifeboat until the grant ends).
package rescue
