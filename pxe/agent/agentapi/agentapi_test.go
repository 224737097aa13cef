package agentapi

import (
	"testing"
	"time"
)

func TestConsoleCodeHash(t *testing.T) {
	h := ConsoleCodeHash("g-1", "1234-5678")
	if ConsoleCodeHash("g-1", "1234 5678") != h || ConsoleCodeHash("g-1", "12345678") != h {
		t.Error("the dash and spaces count")
	}
	if ConsoleCodeHash("g-2", "1234-5678") == h || ConsoleCodeHash("g-1", "1234-5679") == h {
		t.Error("another grant or code gives the same hash")
	}
	// Slow on purpose: a guess costs milliseconds, not nanoseconds.
	start := time.Now()
	ConsoleCodeHash("g-1", "0000-0000")
	if d := time.Since(start); d < time.Millisecond {
		t.Errorf("one hash took %s: fast enough to try all 10^8 codes", d)
	}
	if c := NewConsoleCode(); len(c) != 9 || c[4] != '-' {
		t.Errorf("NewConsoleCode() = %q", c)
	}
}
