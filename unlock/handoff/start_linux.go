package handoff

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/lifeboat-boot/lifeboat/pxe/audit"
	"github.com/lifeboat-boot/lifeboat/unlock"
)

// Start is an unlock.Handoff: it finds the OS entry, builds the key archive
// for the opened volumes, records the hand-off with the server (before the
// act, as every action), and kexecs. It returns only on failure, with the
// host still in lifeboat.
func Start(mountBase string, report unlock.Reporter) unlock.Handoff {
	return func(ctx context.Context, pass []byte, opened []*unlock.Unsealed, out io.Writer) (func(), error) {
		skip := map[string]bool{}
		var uuids []string
		for _, u := range opened {
			skip[u.Volume.Path] = true
			uuids = append(uuids, u.Volume.Header.UUID)
		}
		fmt.Fprintf(out, "Looking for the installed OS's boot entry...\n")
		e, err := Find(ctx, mountBase, skip)
		if err != nil {
			_ = report(ctx, audit.HandoffFailed, map[string]string{"reason": err.Error()})
			return nil, fmt.Errorf("%w\nhint: lifeboat needs an unencrypted /boot with loader/entries/*.conf or grub/grub.cfg", err)
		}
		defer e.Close()
		names := VolumeNames(e.Image.Cmdline, uuids)
		var list []string
		for _, n := range names {
			list = append(list, n)
		}
		sort.Strings(list)
		archive, err := KeyArchive(list, pass)
		if err != nil {
			return nil, err
		}
		defer clear(archive)
		fmt.Fprintf(out, "Booting %q from %s\n  command line: %s\n", e.Label, e.Device, e.Image.Cmdline)
		for _, n := range list {
			fmt.Fprintf(out, "  key handed over in memory as /%s/%s.key\n", KeyDir, n)
		}
		if err := report(ctx, audit.Handoff, map[string]string{"entry": e.Label, "device": e.Device, "volumes": fmt.Sprint(list)}); err != nil {
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
