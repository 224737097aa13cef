package unlock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/term"
)

// Reporter records an event with the server; it returns once the event is
// durable.
type Reporter func(ctx context.Context, code audit.Code, details map[string]string) error

// Handoff prepares the host's own OS with the unsealed volumes' key (kernel
// loaded, key in its initrd) and writes what it does to out. It returns the
// jump into that OS, which the caller makes once the customer's session has
// ended cleanly; an error means the host stays in lifeboat.
type Handoff func(ctx context.Context, opened []*Unsealed, out io.Writer) (jump func(), err error)

// Session is the unlock dialog of one customer connection.
type Session struct {
	Host, Boot string
	Volumes    func() ([]Volume, error)
	Unsealer   *Unsealer
	Limiter    *Limiter
	Report     Reporter
	Handoff    Handoff
	// DisksReady, if set, is closed once the storage drivers have loaded
	// (the RAM image loads them while SSH already serves); the volumes are
	// looked for only then.
	DisksReady <-chan struct{}
	// Options are the command line's (ParseOptions).
	Options Options
	// Rescue is set in a rescue boot: the unlock opens the volumes in
	// place for its grant, and the customer is asked first.
	Rescue *RescueGrant
	// Previous is what the customer's last unlock booted (nil: none on
	// record); Inspect finds what this one would boot. A change is shown,
	// and confirmed, before the passphrase.
	Previous *BootRecord
	Inspect  func(ctx context.Context) (*BootRecord, error)

	jump func()
}

// Jump returns the jump into the OS that a successful Run prepared, or nil.
func (s *Session) Jump() func() { return s.jump }

// Exit codes of a non-interactive unlock (ssh host unlock < passfile).
const (
	ExitOK        = 0
	ExitWrong     = 1 // no volume accepted the passphrase
	ExitLocked    = 3 // too many wrong passphrases: try later
	ExitNoVolume  = 4 // no LUKS volume found
	ExitHandoff   = 5 // unlocked, but the OS could not be started
	ExitCannotTry = 6 // no volume could be tried (a cipher lifeboat does not open, a read error)
	ExitRefused   = 7 // not tried: a rescue boot, or a changed boot, that the customer did not confirm
	ExitUsage     = 2 // an unknown option
	ExitInterrupt = 130
)

// Run talks to the customer over rw until a passphrase opens the volumes and
// the hand-off starts, or the customer leaves. pty says whether rw is a
// terminal (then output lines end in CRLF and the progress line redraws).
func (s *Session) Run(ctx context.Context, rw io.ReadWriter, pty bool) int {
	out := &lineWriter{w: rw, crlf: pty}
	in := NewSecretReader(rw)
	defer in.Wipe()
	fmt.Fprintf(out, "lifeboat unlock: host %s, boot %s\n", term.Clean(s.Host), term.Clean(s.Boot))
	if s.DisksReady != nil {
		select {
		case <-s.DisksReady:
		default:
			fmt.Fprintf(out, "Waiting for the disk drivers to finish loading...\n")
			select {
			case <-s.DisksReady:
			case <-ctx.Done():
				return ExitInterrupt
			}
		}
	}

	vols, err := s.Volumes()
	if err != nil {
		fmt.Fprintf(out, "error: cannot list the disks: %v\nhint: check that the disk controller's driver is in the RAM image\n", err)
		return ExitNoVolume
	}
	var usable []Volume
	fmt.Fprintf(out, "Encrypted volumes found: %d\n", len(vols))
	for _, v := range vols {
		fmt.Fprintf(out, "  %s\n", v)
		if v.Err == nil {
			for _, sl := range v.Header.Slots {
				fmt.Fprintf(out, "      keyslot %d: %s\n", sl.ID, sl)
			}
			if err := Openable(v.Header); err != nil {
				// Said now, and tried without a key derivation: it
				// never counts as a wrong passphrase.
				fmt.Fprintf(out, "      %v\n", err)
			}
			usable = append(usable, v)
		}
	}
	if len(usable) == 0 {
		fmt.Fprintf(out, "error: no LUKS volume to unlock on this host\nhint: if the disk is there, its driver may be missing from the RAM image; tell your provider\n")
		return ExitNoVolume
	}
	if code := s.confirm(ctx, out, in, pty); code != ExitOK {
		return code
	}

	// Each passphrase is tried on the volumes still locked; what it opens
	// stays open. The host is handed over once every volume is open, or
	// when the customer says to go on with what is (Enter on an empty
	// line at a terminal; the end of a script's input).
	var opened []*Unsealed
	defer func() { wipe(opened) }()
	remaining := slices.Clone(usable) // DeleteFunc below must not touch usable
	tried := false
	for {
		if wait := s.Limiter.Wait(); wait > 0 {
			fmt.Fprintf(out, "Locked after too many wrong passphrases. Try again in %s.\n", Duration(wait))
			return ExitLocked
		}
		if pty {
			if len(opened) == 0 {
				fmt.Fprintf(out, "Passphrase for %s: ", s.Host)
			} else {
				fmt.Fprintf(out, "Passphrase for the %s still locked (Enter: boot with the %s open): ",
					Count(len(remaining), "volume", "volumes"), Count(len(opened), "volume", "volumes"))
			}
		}
		pass, err := ReadSecret(in)
		if pty {
			fmt.Fprint(out, "\n")
		}
		if err != nil {
			if errors.Is(err, ErrTooLong) {
				fmt.Fprintf(out, "error: %v\n", err)
				continue
			}
			if errors.Is(err, io.EOF) {
				if len(opened) > 0 {
					return s.finish(ctx, out, &opened, remaining)
				}
				if !tried {
					fmt.Fprintf(out, "No passphrase given; nothing unlocked.\n")
				}
				return ExitWrong // a tried one was answered already
			}
			fmt.Fprintf(out, "Interrupted; nothing unlocked.\n")
			return ExitInterrupt
		}
		if len(pass) == 0 {
			if pty && len(opened) > 0 {
				return s.finish(ctx, out, &opened, remaining)
			}
			continue // an empty line (or the LF of a CRLF) is not a try
		}
		// The try is reserved now, atomically with the lockout's check:
		// parallel channels cannot each pass the check and guess.
		t, wait, _ := s.Limiter.Reserve()
		if t == nil {
			clear(pass)
			if wait > 0 {
				fmt.Fprintf(out, "Locked after too many wrong passphrases. Try again in %s.\n", Duration(wait))
				return ExitLocked
			}
			fmt.Fprintf(out, "Another session is trying the last passphrases left before the lockout; this one was not tried. Try again when it has answered.\n")
			if pty {
				continue
			}
			return ExitLocked
		}
		tried = true
		got, untriable, code := s.try(ctx, out, remaining, pass, pty, len(opened) > 0, t)
		t.Cancel() // a no-op when try answered it, as it does
		clear(pass)
		opened = append(opened, got...)
		remaining = slices.DeleteFunc(remaining, func(v Volume) bool {
			return slices.ContainsFunc(got, func(u *Unsealed) bool { return u.Volume.Path == v.Path }) ||
				slices.ContainsFunc(untriable, func(x Volume) bool { return x.Path == v.Path })
		})
		switch {
		case code == ExitLocked:
			return code
		case code == ExitCannotTry && len(opened) == 0, code == ExitHandoff && !pty:
			return code
		case len(opened) > 0 && len(remaining) == 0:
			code := s.finish(ctx, out, &opened, remaining)
			if code == ExitHandoff && pty {
				// A person is here: keep the session open so they can
				// read what went wrong and try again once it is fixed.
				fmt.Fprintf(out, "The session stays open: type the passphrase again to retry, or press Ctrl-D to leave.\n")
				remaining = slices.Clone(usable)
				continue
			}
			return code
		case len(got) > 0:
			fmt.Fprintf(out, "Still locked (this passphrase does not open %s):\n", map[bool]string{true: "it", false: "them"}[len(remaining) == 1])
			for _, v := range remaining {
				fmt.Fprintf(out, "  %s\n", v)
			}
			if !pty {
				fmt.Fprintf(out, "The next line of input is tried on %s; at the end of the input the host boots with what is open.\n",
					map[bool]string{true: "it", false: "them"}[len(remaining) == 1])
			}
		}
		// A script gets one answer per passphrase line; it ends when its
		// input does.
	}
}

// wipe drops what the opened volumes hold: their passphrases and keys.
func wipe(opened []*Unsealed) {
	for _, u := range opened {
		clear(u.Pass)
		if k, ok := u.Key.(*MasterKey); ok {
			k.Wipe()
		}
		u.Pass, u.Key = nil, nil // luks.go keeps its master key unexported: that one goes to the GC
	}
}

// try tries pass on vols, and returns the volumes it opened (each with a
// copy of pass) and those that cannot be tried at all, with the exit code
// of the try: ExitOK when it opened any, else ExitWrong (counted towards
// the lockout), ExitLocked, or ExitCannotTry when no volume could say.
// again says earlier passphrases opened volumes already.
func (s *Session) try(ctx context.Context, out *lineWriter, vols []Volume, pass []byte, pty, again bool, t *Try) ([]*Unsealed, []Volume, int) {
	var opened []*Unsealed
	var untriable []Volume
	for _, v := range vols {
		u, err := s.unsealWithProgress(ctx, out, v, pass, pty)
		if err != nil {
			if errors.Is(err, ErrWrongPassphrase) {
				fmt.Fprintf(out, "  %s: passphrase does not match\n", v.Path)
			} else {
				fmt.Fprintf(out, "  %s: %v\n", v.Path, err)
				untriable = append(untriable, v)
			}
			continue
		}
		fmt.Fprintf(out, "  %s: unlocked with keyslot %d (key derivation took %s)\n", v.Path, u.Slot, u.Took.Round(100*time.Millisecond))
		u.Pass = slices.Clone(pass)
		opened = append(opened, u)
	}
	if len(opened) == 0 && len(untriable) == len(vols) {
		// No volume could say whether the passphrase is right: that is
		// not a wrong passphrase, and does not count towards the lockout.
		fmt.Fprintf(out, "None of the volumes could be tried, so nothing is known of this passphrase; it does not count as a wrong one.\nhint: tell your provider what the lines above say\n")
		t.Cancel()
		return nil, untriable, ExitCannotTry
	}
	if len(opened) == 0 {
		left, locked := t.Fail()
		details := map[string]string{"volumes": fmt.Sprint(len(vols)), "failed_tries": fmt.Sprint(s.Limiter.MaxTries - left),
			"tries_left": fmt.Sprint(left)}
		if err := s.Report(ctx, audit.UnlockFailure, details); err != nil {
			fmt.Fprintf(out, "warning: could not record the failed try with the server: %v\n", err)
		}
		if locked {
			_ = s.Report(ctx, audit.UnlockLockout, map[string]string{"lockout": s.Limiter.Lockout.String(), "failed_tries": fmt.Sprint(s.Limiter.MaxTries)})
			fmt.Fprintf(out, "Wrong passphrase. Too many wrong passphrases: the prompt is locked for %s.\n", Duration(s.Limiter.Lockout))
			return nil, untriable, ExitLocked
		}
		which := "the volumes above"
		if again {
			which = "the volumes still locked"
		}
		fmt.Fprintf(out, "Wrong passphrase: it opens none of %s. %s left; then the prompt locks for %s.\n", which, Count(left, "try", "tries"), Duration(s.Limiter.Lockout))
		return nil, untriable, ExitWrong
	}
	t.Succeed()
	var names []string
	for _, u := range opened {
		names = append(names, u.Volume.Path)
	}
	if err := s.Report(ctx, audit.UnlockSuccess, map[string]string{"volumes": strings.Join(names, ",")}); err != nil {
		// The record comes before the action: without it, these
		// volumes do not count as open.
		fmt.Fprintf(out, "error: the server did not record the unlock (%v); not booting.\nhint: check the host's network path to lifeboatd, then try again\n", err)
		wipe(opened)
		return nil, untriable, ExitHandoff
	}
	return opened, untriable, ExitOK
}

// finish hands the host over with the volumes opened; what stays locked is
// said first (the OS asks for it itself).
func (s *Session) finish(ctx context.Context, out *lineWriter, opened *[]*Unsealed, remaining []Volume) int {
	if len(remaining) > 0 {
		var paths []string
		for _, v := range remaining {
			paths = append(paths, v.Path)
		}
		fmt.Fprintf(out, "Booting with %s open; %s stays locked: the OS will ask for it itself.\n",
			Count(len(*opened), "volume", "volumes"), strings.Join(paths, ", "))
	}
	jump, err := s.Handoff(ctx, *opened, out)
	wipe(*opened)
	*opened = nil
	if err != nil {
		fmt.Fprintf(out, "error: %v\nThe volumes stay locked in this environment.\n", err)
		return ExitHandoff
	}
	s.jump = jump
	return ExitOK
}

// unsealWithProgress runs the KDF while telling the customer what is going
// on: with a terminal a line that counts seconds, without one a line every
// five seconds.
func (s *Session) unsealWithProgress(ctx context.Context, out *lineWriter, v Volume, pass []byte, pty bool) (*Unsealed, error) {
	done, exited := make(chan struct{}), make(chan struct{})
	started := make(chan Slot, 32)
	go func() {
		defer close(exited)
		var cur Slot
		var t0 time.Time
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case cur = <-started:
				t0 = time.Now()
				fmt.Fprintf(out, "  %s: trying keyslot %d (%s)...", v.Path, cur.ID, cur)
				if !pty {
					fmt.Fprint(out, "\n")
				}
			case now := <-tick.C:
				if t0.IsZero() {
					continue
				}
				secs := int(now.Sub(t0).Seconds())
				if pty {
					fmt.Fprintf(out, "\r  %s: trying keyslot %d (%s)... %ds", v.Path, cur.ID, cur, secs)
				} else if secs%5 == 0 {
					fmt.Fprintf(out, "  still deriving the key: %ds\n", secs)
				}
			}
		}
	}()
	u, err := s.Unsealer.Unseal(ctx, v, pass, func(_ Volume, sl Slot) { started <- sl })
	close(done)
	<-exited
	if pty {
		fmt.Fprint(out, "\n")
	}
	return u, err
}

// NewLineWriter returns a writer that turns \n into \r\n when crlf is set
// (output to a terminal the SSH server drives without a line discipline).
func NewLineWriter(w io.Writer, crlf bool) io.Writer { return &lineWriter{w: w, crlf: crlf} }

// lineWriter turns \n into \r\n on a terminal. It does not serialise
// writers: each Write goes to w as one call, in the caller's order.
type lineWriter struct {
	w    io.Writer
	crlf bool
}

func (l *lineWriter) Write(p []byte) (int, error) {
	if !l.crlf {
		return l.w.Write(p)
	}
	q := strings.ReplaceAll(string(p), "\n", "\r\n")
	if _, err := io.WriteString(l.w, q); err != nil {
		return 0, err
	}
	return len(p), nil
}

// confirm says, before the passphrase, what is not the usual unlock, and
// asks (a person) or checks the flag (a script). ExitOK goes on.
func (s *Session) confirm(ctx context.Context, out io.Writer, in io.ByteReader, pty bool) int {
	ask := func(prompt, want string) bool {
		fmt.Fprintf(out, "%s", prompt)
		line, err := ReadSecret(in)
		defer clear(line)
		if pty {
			fmt.Fprint(out, "\n")
		}
		return err == nil && strings.TrimSpace(string(line)) == want
	}
	if g := s.Rescue; g != nil {
		fmt.Fprintf(out, "WARNING: this host is in a rescue session, not booting its own system.\n"+
			"  Grant %s: %s for %s, until %s.\n"+
			"  If you unlock now, your volumes are opened here, in place, and %s can read and change what they hold until the grant ends.\n",
			term.Clean(g.ID), term.Clean(g.Scope), term.Clean(g.Staff), g.Until.UTC().Format("2006-01-02 15:04 MST"), term.Clean(g.Staff))
		if pty {
			if !ask("Type yes to unlock in place anyway, or press Enter to leave: ", "yes") {
				fmt.Fprintf(out, "Nothing unlocked.\n")
				return ExitRefused
			}
		} else if s.Options.RescueGrant != g.ID {
			fmt.Fprintf(out, "error: not unlocking during a rescue session without your say-so; nothing tried.\n"+
				"hint: to unlock in place for this grant, run: ssh HOST unlock --rescue-grant %s\n", term.Clean(g.ID))
			return ExitRefused
		}
		return ExitOK
	}
	if s.Inspect == nil || s.Previous == nil {
		return ExitOK
	}
	cur, err := s.Inspect(ctx)
	if err != nil {
		// The hand-off will say it too, after the passphrase; nothing is
		// booted that was not looked at.
		fmt.Fprintf(out, "note: the boot entry could not be read before the unlock: %v\n", err)
		return ExitOK
	}
	changes := s.Previous.Changes(cur)
	if len(changes) == 0 {
		return ExitOK
	}
	fmt.Fprintf(out, "The boot on this host changed since your last unlock on %s:\n", s.Previous.At.UTC().Format("2006-01-02 15:04 MST"))
	for _, c := range changes {
		fmt.Fprintf(out, "  %s\n", c)
	}
	fmt.Fprintf(out, "A kernel update by your own system does this. If you made none, stop: /boot is not encrypted, and someone may have changed it.\n")
	if pty {
		if !ask("Type yes to unlock and boot it, or press Enter to leave: ", "yes") {
			fmt.Fprintf(out, "Nothing unlocked.\n")
			return ExitRefused
		}
		return ExitOK
	}
	if !s.Options.AcceptBootChange {
		fmt.Fprintf(out, "error: not unlocking a changed boot from a script; nothing tried.\n"+
			"hint: if the change is yours (a kernel update), run: ssh HOST unlock --accept-boot-change\n")
		return ExitRefused
	}
	fmt.Fprintf(out, "Accepted (--accept-boot-change).\n")
	return ExitOK
}
