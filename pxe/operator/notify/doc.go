// Package notify tells customers what happened to their hosts: it relays
// the outbox of notices that the store writes in the same transaction as
// each audit record, to signed webhooks and to e-mail.
//
// Delivery is at least once. A notice keeps its id (webhook-id, and the
// e-mail's Message-ID) across attempts and restarts, so a receiver drops
// duplicates by it. A failed attempt is retried with exponential backoff for
// up to three days; then the relay gives up, with an audit record saying so.
//
// Webhooks follow the Standard Webhooks scheme: headers webhook-id,
// webhook-timestamp and webhook-signature, the last "v1," followed by the
// base64 HMAC-SHA256, keyed with the webhook's secret, of
// "id.timestamp.body". Each webhook's secret is stored sealed with the
// server's secret key (pxe/keys/keyring), never in the clear.
//
// Every notice carries a receipt: the audit record's sequence number and
// hash, which the customer can later check the log against with
// 'lifeboat audit verify --customer --receipt SEQ:HASH'.
//
// This package is never in the DHCP, TFTP or boot path: the relay reads
// the outbox on its own.
package notify
