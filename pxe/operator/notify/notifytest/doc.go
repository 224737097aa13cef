// Package notifytest runs real receivers of notices for tests: an HTTP
// webhook receiver that checks Standard Webhooks signatures the way a
// customer's would (written from the scheme, not with lifeboat's signing
// code), and an SMTP server offering STARTTLS. Both listen on loopback.
package notifytest
