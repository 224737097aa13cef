package consolecode

import (
	"testing"
	"time"
)

func TestHash(t *testing.T) {
	h := Hash("g-1", "1234-5678")
	if Hash("g-1", "1234 5678") != h || Hash("g-1", "12345678") != h {
		t.Error("the dash and spaces count")
	}
	if Hash("g-2", "1234-5678") == h || Hash("g-1", "1234-5679") == h {
		t.Error("another grant or code gives the same hash")
	}
	// Slow on purpose: a guess costs milliseconds, not nanoseconds.
	start := time.Now()
	Hash("g-1", "0000-0000")
	if d := time.Since(start); d < time.Millisecond {
		t.Errorf("one hash took %s: fast enough to try all 10^8 codes", d)
	}
	if c := New(); len(c) != 9 || c[4] != '-' {
		t.Errorf("New() = %q", c)
	}
}
