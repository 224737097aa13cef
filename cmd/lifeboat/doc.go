// Command lifeboat is the operator CLI of lifeboatd: hosts, customers,
// boots and the event log, over the operator API (never the store
// directly).
//
// Exit status: 0 done; 1 the server refused (not found, conflict, invalid
// input); 2 bad usage; 3 lifeboatd could not be reached or did not accept
// the token.
package main
