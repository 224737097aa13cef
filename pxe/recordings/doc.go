// Package recordings keeps the asciicast recordings of rescue shells as the
// RAM image streams them: one file per session, appended piece by piece at
// the offsets the agent sends, so that a piece sent twice (a retry after a
// lost answer) is stored once and a gap is refused.
package recordings
