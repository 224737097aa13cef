// Package paths generates odd and hostile file names for tests of every
// server that serves files: traversal, absolute, encoded, NUL, backslashes,
// overlong and control-character names.
package paths
