// Command testsum runs `go test -json ...`, prints the test output as
// `go test -v` would, and ends with each failed test's own messages (the
// file:line lines it logged, without the consoles and logs it dumped), so
// that the last lines of a long end-to-end run say why it failed.
package main
