package unlock

import (
	"fmt"
	"strings"
	"time"
)

// Count says n things in words: "1 try", "2 tries".
func Count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Duration says d as people say it, to the second: "5 minutes",
// "1 hour 30 minutes", "45 seconds"; never "2m0s".
func Duration(d time.Duration) string {
	d = d.Round(time.Second)
	if d < time.Second {
		return "less than a second"
	}
	var parts []string
	for _, u := range []struct {
		d         time.Duration
		one, many string
	}{{time.Hour, "hour", "hours"}, {time.Minute, "minute", "minutes"}, {time.Second, "second", "seconds"}} {
		if n := int(d / u.d); n > 0 {
			parts = append(parts, Count(n, u.one, u.many))
			d -= time.Duration(n) * u.d
		}
	}
	return strings.Join(parts, " ")
}
