package store

import (
	"fmt"
	"strings"
	"time"
)

// Meaning says in plain words what approving a grant of scope lets happen,
// what it costs and how to undo it: for the approval page and the notice
// that asks, so that both say the same.
func Meaning(scope Scope) []string {
	switch scope {
	case ScopePasswordReset:
		return []string{
			"The host reboots into lifeboat's rescue system: it is down until the reset is done and it boots its own system again (a few minutes).",
			"Support can reset the password of one user on the installed system, and nothing else. On an encrypted disk this is refused until you unlock it yourself.",
		}
	case ScopeShell:
		return []string{
			"The host reboots into lifeboat's rescue system: it is down for as long as the session lasts.",
			"Support gets a root shell there. From it they can read and change anything on a disk that is not encrypted, including /boot, and anything you unlock while it is open. Encrypted disks stay locked unless you unlock them.",
			"Everything shown in the shell is recorded. If you set an age key, only you can replay the recording; otherwise your provider's operators can.",
		}
	case ScopeConsole:
		return []string{
			"The host reboots into lifeboat's rescue system: it is down for as long as the session lasts.",
			"A data-centre technician at the host types a one-time code at the console and gets a root shell there. From it they can read and change anything on a disk that is not encrypted, including /boot, and anything you unlock while it is open.",
			"Everything shown on the console is recorded. If you set an age key, only you can replay the recording; otherwise your provider's operators can.",
		}
	}
	return []string{fmt.Sprintf("Scope %q.", scope)}
}

// AfterApproval says what happens next and how to take it back.
const AfterApproval = "The window starts when you approve and ends at the time shown. The host boots into rescue at its next reboot within it; when the session ends it reboots into its own system. You can end the grant at any time, even mid-session (the shell ends within seconds): lifeboat rescue revoke GRANT with your token, or ask your provider. You are told of every step."

// Duration says d in words: "2 hours", "1 hour 30 minutes", "45 minutes".
func Duration(d time.Duration) string {
	d = d.Round(time.Minute)
	h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
	var parts []string
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	if h > 0 {
		parts = append(parts, plural(h, "hour"))
	}
	if m > 0 || h == 0 {
		parts = append(parts, plural(m, "minute"))
	}
	return strings.Join(parts, " ")
}

// When says t in the customer's time zone tz (UTC if unset or unknown).
func When(t time.Time, tz string) string {
	loc := time.UTC
	if tz != "" {
		if l, err := time.LoadLocation(tz); err == nil {
			loc = l
		}
	}
	s := t.In(loc).Format("Mon 2 Jan 2006, 15:04 MST")
	if loc != time.UTC {
		s += " (" + loc.String() + ")"
	}
	return s
}
