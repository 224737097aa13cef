// Package consolecode makes a console grant's one-time code and the
// salted, slow hash that the server keeps and the RAM image checks typed
// codes against. The code itself is shown once, to the staff member who
// requested the grant.
package consolecode
