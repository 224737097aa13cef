// Package api is the operator API's wire format and its Go client, used by
// the lifeboat CLI. It links no server code and no database driver.
//
// Every call carries the operator's own token (Authorization: Bearer);
// errors come back as JSON {"error": ..., "hint": ...} with an HTTP status
// that says which kind of failure it is.
package api
