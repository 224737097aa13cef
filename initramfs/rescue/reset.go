package rescue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/lifeboat-boot/lifeboat/pxe/term"

	"github.com/lifeboat-boot/lifeboat/initramfs/rescue/shadow"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/unlock"
)

// Exit codes of reset-password.
const (
	ExitOK        = 0
	ExitUsage     = 2
	ExitNoRoot    = 3 // no installed system found
	ExitEncrypted = 4 // the root is locked: the customer must unlock first
	ExitFailed    = 5
)

var userRE = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}\$?$`)

// Reset is one run of reset-password.
type Reset struct {
	User     string
	FindRoot func() (*Root, error)
	Report   unlock.Reporter
}

// Run resets the user's password: it finds the installed system, chooses
// the hash method the system uses, takes a new password (typed without echo,
// or generated and shown once), records the change with the server (user and
// file digests, never a hash or password) and only then writes it.
func (r *Reset) Run(ctx context.Context, rw io.ReadWriter, pty bool) int {
	out := unlock.NewLineWriter(rw, pty)
	if !userRE.MatchString(r.User) {
		fmt.Fprintf(out, "usage: reset-password USER\n(%q is not a user name)\n", r.User)
		return ExitUsage
	}
	fmt.Fprintf(out, "Looking for the installed system...\n")
	root, err := r.FindRoot()
	if errors.Is(err, ErrEncrypted) {
		fmt.Fprintf(out, "error: %v.\nSupport cannot read an encrypted disk: ask the customer to log in and unlock it in this boot (ssh root@this-host unlock), then run reset-password again.\n", err)
		_ = r.Report(ctx, audit.RescueResetRefused, map[string]string{"user": r.User, "reason": "root locked"})
		return ExitEncrypted
	}
	if err != nil {
		fmt.Fprintf(out, "error: %v\n", err)
		return ExitNoRoot
	}
	defer root.Close()
	name := root.Name
	if name == "" {
		name = "an installed system"
	}
	fmt.Fprintf(out, "Found %s on %s.\n", term.Clean(name), root.Device) // PRETTY_NAME is the disk's to say
	// The installed system's files are read through an os.Root: a link
	// in it that leads out (into the RAM image) is not followed.
	rt, err := os.OpenRoot(root.Dir)
	if err != nil {
		fmt.Fprintf(out, "error: %v\n", err)
		return ExitFailed
	}
	defer rt.Close()
	path := filepath.Join(root.Dir, "etc", "shadow")
	data, err := rt.ReadFile("etc/shadow")
	if err != nil {
		fmt.Fprintf(out, "error: %v\n", err)
		return ExitFailed
	}
	defs, _ := rt.ReadFile("etc/login.defs")
	probe, err := shadow.Replace(data, r.User, "x")
	if err != nil {
		fmt.Fprintf(out, "error: %v\n", err)
		return ExitFailed
	}
	m := shadow.ChooseMethod(defs, probe.Old)
	fmt.Fprintf(out, "Hash method: %s.\n", m)

	in := unlock.NewSecretReader(rw)
	defer in.Wipe()
	if pty {
		fmt.Fprintf(out, "New password for %s (press Enter to generate one): ", r.User)
	}
	pass, err := unlock.ReadSecret(in)
	if pty {
		fmt.Fprint(out, "\n")
	}
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintf(out, "No password given (%v); nothing changed.\n", err)
		return ExitFailed
	}
	generated := len(pass) == 0
	if generated {
		pass = shadow.Generate()
	} else if len(pass) < 8 {
		clear(pass)
		fmt.Fprintf(out, "error: a password of fewer than 8 characters is not set; nothing changed.\n")
		return ExitUsage
	}
	defer clear(pass)
	fmt.Fprintf(out, "Hashing...\n")
	hash, err := m.Hash(pass)
	if err != nil {
		fmt.Fprintf(out, "error: %v\n", err)
		return ExitFailed
	}
	c, err := shadow.Replace(data, r.User, hash)
	if err != nil {
		fmt.Fprintf(out, "error: %v\n", err)
		return ExitFailed
	}
	details := map[string]string{"user": r.User, "device": root.Device, "method": strings.ToLower(m.Name),
		"shadow_before": c.Before, "shadow_after": c.After, "generated": fmt.Sprint(generated)}
	if err := r.Report(ctx, audit.RescuePasswordReset, details); err != nil {
		fmt.Fprintf(out, "error: the server did not record the reset (%v); nothing changed.\nhint: check the host's network path to lifeboatd, then try again\n", err)
		return ExitFailed
	}
	if err := c.Apply(path); err != nil {
		fmt.Fprintf(out, "error: writing %s: %v\n", "/etc/shadow", err)
		return ExitFailed
	}
	if err := root.Close(); err != nil {
		fmt.Fprintf(out, "warning: unmounting %s: %v\n", root.Device, err)
	}
	fmt.Fprintf(out, "The password of %s on %s is reset: one line of /etc/shadow changed (sha256 %s -> %s).\n", r.User, root.Device, c.Before[:16], c.After[:16])
	if generated {
		fmt.Fprintf(out, "New password (shown this once; pass it to the customer the usual secure way): %s\n", pass)
	}
	fmt.Fprintf(out, "The customer has been told. The host reboots into its own system when the grant ends.\n")
	return ExitOK
}
