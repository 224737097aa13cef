// Package term makes strings safe for a terminal, a log line or a notice:
// strings from a disk (LUKS UUIDs and KDF names, boot entry titles,
// os-release), from a packet or from an operator (a ticket, a reason) may
// hold control characters (ANSI escapes, C1 controls, a carriage return
// that rewrites the line above) or invalid UTF-8. Clean quotes them, Go
// style, so they show as what they are and do nothing.
package term

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Clean returns s with every unprintable rune, and every byte that is not
// UTF-8, escaped (\x1b, \u009b, \r); printable text is left as it is.
// The only space kept is U+0020: other spaces (U+3000, U+00A0) print as
// blanks a reader cannot tell apart, so they are escaped too. Once
// anything is escaped, backslashes are doubled so an escape cannot be
// forged by the text itself.
func Clean(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, unprintable) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case unprintable(r):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func unprintable(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }

// CleanLines cleans each line of s, keeping the line breaks, and indents
// the lines after the first by two spaces (for a message that continues).
func CleanLines(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = Clean(l)
	}
	return strings.Join(lines, "\n  ")
}
