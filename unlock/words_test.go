package unlock

import (
	"testing"
	"time"
)

func TestWords(t *testing.T) {
	for _, tt := range []struct {
		got, want string
	}{
		{Count(1, "try", "tries"), "1 try"},
		{Count(0, "try", "tries"), "0 tries"},
		{Count(4, "volume", "volumes"), "4 volumes"},
		{Duration(2 * time.Minute), "2 minutes"},
		{Duration(time.Minute), "1 minute"},
		{Duration(90 * time.Second), "1 minute 30 seconds"},
		{Duration(time.Hour + 59*time.Minute + 59*time.Second + 600*time.Millisecond), "2 hours"},
		{Duration(5*time.Hour + 1*time.Second), "5 hours 1 second"},
		{Duration(400 * time.Millisecond), "less than a second"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
