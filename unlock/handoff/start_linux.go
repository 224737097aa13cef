package handoff

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/term"
	"github.com/lifeboat-boot/lifeboat/unlock"
)

// Look finds the entry an unlock would boot, and says what it is: the
// partition, the entry, and the SHA-256 of its kernel and initrd.
func Look(ctx context.Context, mountBase string) (*unlock.BootRecord, error) {
	e, err := Find(ctx, mountBase, nil)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	return record(e)
}

func record(e *Entry) (*unlock.BootRecord, error) {
	r := &unlock.BootRecord{Device: e.Device, Entry: e.Label, Cmdline: e.Image.Cmdline}
	var err error
	if r.Kernel, err = sum(e.Image.Kernel); err != nil {
		return nil, fmt.Errorf("read the kernel: %w", err)
	}
	if e.Image.Initrd != nil {
		if r.Initrd, err = sum(e.Image.Initrd); err != nil {
			return nil, fmt.Errorf("read the initrd: %w", err)
		}
	}
	return r, nil
}

func sum(r io.ReaderAt) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, 1<<40)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Start is an unlock.Handoff: it finds the OS entry, builds the key archive
// for the opened volumes, records the hand-off with the server (before the
// act, as every action) with what it boots, and loads the OS kernel for
// kexec. On success it returns the jump, which the caller runs once the
// session has closed; on failure an error, with the host still in
// lifeboat. shown, if set, returns what the customer was shown before the
// passphrase: the entry must still be that one.
func Start(mountBase string, report unlock.Reporter, shown func() *unlock.BootRecord) unlock.Handoff {
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
		rec, err := record(e)
		if err != nil {
			_ = report(ctx, audit.HandoffFailed, map[string]string{"reason": err.Error()})
			return nil, err
		}
		if shown != nil {
			if s := shown(); s != nil && len(s.Changes(rec)) > 0 {
				err := fmt.Errorf("the boot entry changed since it was shown to you (%s); not booting it", strings.Join(s.Changes(rec), "; "))
				_ = report(ctx, audit.HandoffFailed, map[string]string{"reason": err.Error()})
				return nil, err
			}
		}
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
		fmt.Fprintf(out, "Booting %s from %s\n  command line: %s\n  kernel sha256: %s\n  initrd sha256: %s\n  OS initrd: %s\n",
			strconv.Quote(e.Label), e.Device, term.Clean(e.Image.Cmdline), rec.Kernel, rec.Initrd, plan.Flavour)
		for _, k := range plan.KeyPaths {
			fmt.Fprintf(out, "  key handed over in memory as /%s\n", k)
		}
		for _, n := range plan.Notes {
			fmt.Fprintf(out, "  note: %s\n", n)
		}
		list := plan.Names
		if err := report(ctx, audit.Handoff, map[string]string{"entry": e.Label, "device": e.Device, "volumes": fmt.Sprint(list), "initrd": plan.Flavour.String(),
			"kernel_sha256": rec.Kernel, "initrd_sha256": rec.Initrd, "cmdline": e.Image.Cmdline}); err != nil {
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
