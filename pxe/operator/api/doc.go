// Package api is the operator API's wire format and its Go client, used by
// the lifeboat CLI. Its types (types.go) are its own, not the store's: the
// server converts, so that the store can change without changing what
// clients see. It links no server code and no database driver (only the
// audit chain's format, the shared words of pxe/store/kind, and nothing
// else of lifeboat).
//
// Every call carries the operator's own token (Authorization: Bearer);
// errors come back as JSON {"error": ..., "hint": ...} with an HTTP status
// that says which kind of failure it is.
package api
