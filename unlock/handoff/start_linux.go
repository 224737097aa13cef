package handoff

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/audit"
	"github.com/lifeboat-boot/lifeboat/unlock"
)

// JumpDelay is how long after the session's last words the OS starts.
const JumpDelay = time.Second

// Start is an unlock.Handoff: it finds the OS entry, builds the key archive
// for the opened volumes, records the hand-off with the server (before the
// act, as every action), and kexecs. It returns only on failure, with the
// host still in lifeboat.
func Start(mountBase string, report unlock.Reporter) unlock.Handoff {
	return func(ctx context.Context, pass []byte, opened []*unlock.Unsealed, out io.Writer) error {
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
			return fmt.Errorf("%w\nhint: lifeboat needs an unencrypted /boot with loader/entries/*.conf or grub/grub.cfg", err)
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
			return err
		}
		defer clear(archive)
		fmt.Fprintf(out, "Booting %q from %s\n  command line: %s\n", e.Label, e.Device, e.Image.Cmdline)
		for _, n := range list {
			fmt.Fprintf(out, "  key handed over in memory as /%s/%s.key\n", KeyDir, n)
		}
		if err := report(ctx, audit.Handoff, map[string]string{"entry": e.Label, "device": e.Device, "volumes": fmt.Sprint(list)}); err != nil {
			return fmt.Errorf("the server did not record the hand-off (%v); not booting", err)
		}
		if err := Load(e, archive); err != nil {
			_ = report(ctx, audit.HandoffFailed, map[string]string{"reason": err.Error()})
			return err
		}
		// The kernel holds its own copy of the initrd now. Jump a moment
		// later, so that this session can end cleanly (exit status 0,
		// connection closed) instead of dying mid-stream.
		fmt.Fprintf(out, "Handing over to the OS kernel in %s; this connection will close.\n", JumpDelay)
		go func() {
			time.Sleep(JumpDelay)
			if err := Jump(); err != nil {
				_ = report(context.Background(), audit.HandoffFailed, map[string]string{"reason": err.Error()})
			}
		}()
		return nil
	}
}
