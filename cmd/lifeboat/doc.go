// Command lifeboat is the operator CLI of lifeboatd: hosts, customers,
// rescue grants, recordings, boots, the audit chain and the event log,
// over the operator API (never the store directly).
//
// The commands are one table (commands.go): it is the dispatch and the
// usage text. Each noun has a file: host.go, customer.go, rescue.go,
// recording.go, boot.go (boots and events), audit.go (the chain, notices,
// the CA line).
//
// Exit status: 0 done; 1 the server refused (not found, conflict, invalid
// input); 2 bad usage; 3 lifeboatd could not be reached or did not accept
// the token.
package main
