// Package sealed is the file format of a recording sealed to a customer's
// age key: segments, one per piece, each an age file of its own. The
// server writes it (pxe/recordings) without being able to read it; the
// customer's CLI reads it with their key. It links no server code.
package sealed
