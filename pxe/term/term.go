// Package term makes strings safe for a terminal, a log line or a notice:
// strings from a disk (LUKS UUIDs and KDF names, boot entry titles,
// os-release), from a packet or from an operator (a ticket, a reason) may
// hold control characters (ANSI escapes, C1 controls, a carriage return
// that rewrites the line above) or invalid UTF-8. Clean quotes them, Go
// style, so they show as what they are and do nothing.
package term

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Clean returns s with every unprintable rune, and every byte that is not
// UTF-8, escaped (\x1b, \u009b, \r); printable text, spaces included, is
// left as it is.
func Clean(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

// CleanLines cleans each line of s, keeping the line breaks, and indents
// the lines after the first by two spaces (for a message that continues).
func CleanLines(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = Clean(l)
	}
	return strings.Join(lines, "\n  ")
}
