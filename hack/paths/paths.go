package paths

import "strings"

// Hostile returns at least 200 distinct names, none of which names a file
// to serve when the served files are allowed and the secret is secret.
func Hostile(allowed []string, secret string) []string {
	prefixes := []string{"", "/", "./", "../", "../../", "/../", "..\\", "..\\..\\", "%2e%2e/", "%2e%2e%2f", "..%2f", "%252e%252e/",
		"....//", "..;/", "/etc/", "C:\\", "\\\\server\\share\\", "file:///", "~/", "./../", ".%00./", "\x00", "sub/../../"}
	targets := []string{secret, "etc/passwd", "/etc/shadow", "proc/self/environ", "..", ".", "", " ", "\t", "\x1b[2J",
		strings.Repeat("A", 300), strings.Repeat("../", 80) + "etc/passwd"}
	for _, a := range allowed {
		targets = append(targets, a+"/../"+secret, a+"\x00", a+"%00", a+"/", a+"\\..\\"+secret, strings.ToUpper(a), a+".bak")
	}
	seen := map[string]bool{}
	for _, a := range allowed {
		seen[a], seen["/"+a] = true, true // the names a server may legitimately serve
	}
	var out []string
	for _, p := range prefixes {
		for _, t := range targets {
			n := p + t
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}
