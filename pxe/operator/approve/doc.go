// Package approve serves the page where a customer approves or denies a
// rescue grant that waits for them, on lifeboatd's customer listener.
//
// The customer reaches it from the link in the grant's notice. The link
// names the grant and carries a signature of it made with the server's
// secret key: nothing is stored, and the link stops working once the grant
// is decided, since only a waiting grant can be. The page is plain HTML
// with one form and no script, readable on a phone; it shows who asks,
// for which host, which ticket, why, what the scope lets them do, and for
// how long.
package approve
