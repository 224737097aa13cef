package term

import (
	"strings"
	"testing"
	"unicode"
)

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"web1":                           "web1",
		"Debian GNU/Linux 12 (bookworm)": "Debian GNU/Linux 12 (bookworm)",
		"Grüße":                          "Grüße",
		"\x1b[2J\x1b[Hfake prompt":       `\x1b[2J\x1b[Hfake prompt`,
		"SUP-1\u009b31mred":              `SUP-1\u009b31mred`,
		"line\rover":                     `line\rover`,
		"a\nb":                           `a\nb`,
		"bad\xffutf8":                    `bad\xffutf8`,
		"\u202eevil":                     `\u202eevil`, // right-to-left override
		"wide\u3000space":                `wide\u3000space`,
		"nb\u00a0sp":                     `nb\u00a0sp`,
		`back\slash`:                     `back\slash`,
		"\\x1b\x1b":                      `\\x1b\x1b`, // a literal escape stays told apart
		`say "hi"` + "\a":                `say "hi"\a`,
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzClean(f *testing.F) {
	f.Add("\x1b]0;title\x07")
	f.Add("ok")
	f.Add("0\u3000")
	f.Fuzz(func(t *testing.T, s string) {
		c := Clean(s)
		if strings.ContainsFunc(c, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) {
			t.Fatalf("Clean(%q) = %q keeps an unprintable rune", s, c)
		}
	})
}
