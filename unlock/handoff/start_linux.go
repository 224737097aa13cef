package handoff

import (
	"context"
	"fmt"
	"io"

	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/unlock"
)

// Start is an unlock.Handoff: it finds the OS entry, builds the key archive
// for the opened volumes, records the hand-off with the server (before the
// act, as every action), and loads the OS kernel for kexec. On success it
// returns the jump, which the caller runs once the session has closed; on
// failure an error, with the host still in lifeboat.
func Start(mountBase string, report unlock.Reporter) unlock.Handoff {
	return func(ctx context.Context, opened []*unlock.Unsealed, out io.Writer) (func(), error) {
		skip := map[string]bool{}
		var vols []Vol
		keys := map[string][]byte{}
		for _, u := range opened {
			skip[u.Volume.Path] = true
			vols = append(vols, Vol{UUID: u.Volume.Header.UUID, Path: u.Volume.Path})
			keys[u.Volume.Header.UUID] = u.Pass
		}
		fmt.Fprintf(out, "Looking for the installed OS's boot entry...\n")
		e, err := Find(ctx, mountBase, skip)
		if err != nil {
			_ = report(ctx, audit.HandoffFailed, map[string]string{"reason": err.Error()})
			return nil, fmt.Errorf("%w\nhint: lifeboat needs an unencrypted /boot with loader/entries/*.conf or grub/grub.cfg", err)
		}
		defer e.Close()
		// How the OS initrd unlocks its volumes decides where the key goes.
		in := &Initrd{}
		if e.Image.Initrd != nil {
			if in, err = Inspect(io.NewSectionReader(e.Image.Initrd, 0, 1<<40)); err != nil {
				fmt.Fprintf(out, "note: the OS initrd could not be read (%v)\n", err)
				in = &Initrd{}
			}
		}
		plan := MakePlan(in, e.Image.Cmdline, vols)
		archive, err := plan.Archive(keys)
		if err != nil {
			return nil, err
		}
		defer clear(archive)
		fmt.Fprintf(out, "Booting %q from %s\n  command line: %s\n  OS initrd: %s\n", e.Label, e.Device, e.Image.Cmdline, plan.Flavour)
		for _, k := range plan.KeyPaths {
			fmt.Fprintf(out, "  key handed over in memory as /%s\n", k)
		}
		for _, n := range plan.Notes {
			fmt.Fprintf(out, "  note: %s\n", n)
		}
		list := plan.Names
		if err := report(ctx, audit.Handoff, map[string]string{"entry": e.Label, "device": e.Device, "volumes": fmt.Sprint(list), "initrd": plan.Flavour.String()}); err != nil {
			return nil, fmt.Errorf("the server did not record the hand-off (%v); not booting", err)
		}
		if err := Load(e, archive); err != nil {
			_ = report(ctx, audit.HandoffFailed, map[string]string{"reason": err.Error()})
			return nil, err
		}
		// The kernel holds its own copy of the initrd now. The caller
		// jumps once the session has ended cleanly.
		fmt.Fprintf(out, "Handing over to the OS kernel as soon as this session closes.\n")
		return func() {
			if err := Jump(); err != nil {
				_ = report(context.Background(), audit.HandoffFailed, map[string]string{"reason": err.Error()})
			}
		}, nil
	}
}
