package unlock

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/term"
)

// Before the passphrase, the session says what typing it would do when
// that is not the usual unlock: in a rescue boot the volumes are opened in
// place for a staff member, and a boot whose kernel or initrd changed
// since the customer's last unlock may not be the OS they unlocked before
// (a root shell in rescue can change an unencrypted /boot). A person is
// asked; a script is refused unless it said yes in advance with a flag.

// Options are what follows "unlock" on the ssh command line.
type Options struct {
	RescueGrant      string // --rescue-grant G: unlock in place during rescue under grant G
	AcceptBootChange bool   // --accept-boot-change: boot a kernel or initrd that changed since the last unlock
}

// ParseOptions reads them.
func ParseOptions(args []string) (Options, error) {
	var o Options
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(a, "=")
		switch name {
		case "--rescue-grant":
			if !hasVal {
				if i+1 == len(args) {
					return o, errors.New("--rescue-grant needs the grant's id")
				}
				i++
				val = args[i]
			}
			if !strings.HasPrefix(val, "g-") || len(val) > 64 {
				return o, fmt.Errorf("--rescue-grant %q: want the grant's id (g- and hex digits)", term.Clean(val))
			}
			o.RescueGrant = val
		case "--accept-boot-change":
			if hasVal {
				return o, errors.New("--accept-boot-change takes no value")
			}
			o.AcceptBootChange = true
		default:
			return o, fmt.Errorf("unknown option %q (unlock takes --rescue-grant G and --accept-boot-change)", term.Clean(a))
		}
	}
	return o, nil
}

// RescueGrant is what the session says of the rescue grant a boot serves.
type RescueGrant struct {
	ID, Staff, Scope string
	Until            time.Time
}

// BootRecord is what an unlock handed over to: the entry, and the SHA-256
// of what it boots.
type BootRecord struct {
	Device, Entry  string
	Kernel, Initrd string // SHA-256, hex
	Cmdline        string
	At             time.Time // when (for the previous unlock's)
}

// Changes lists what differs between the previous boot and this one, in
// words; none if they are the same (or there is no previous one).
func (prev *BootRecord) Changes(cur *BootRecord) []string {
	if prev == nil || cur == nil {
		return nil
	}
	var out []string
	diff := func(what, a, b string, short bool) {
		if a == b {
			return
		}
		if short {
			a, b = abbrev(a), abbrev(b)
		}
		out = append(out, fmt.Sprintf("%s: %s -> %s", what, term.Clean(a), term.Clean(b)))
	}
	diff("partition", prev.Device, cur.Device, false)
	diff("boot entry", prev.Entry, cur.Entry, false)
	diff("kernel sha256", prev.Kernel, cur.Kernel, true)
	diff("initrd sha256", prev.Initrd, cur.Initrd, true)
	diff("command line", prev.Cmdline, cur.Cmdline, false)
	return out
}

func abbrev(h string) string {
	if h == "" {
		return "(none)"
	}
	return h[:min(len(h), 16)]
}
