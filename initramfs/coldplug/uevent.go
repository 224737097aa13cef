package coldplug

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Uevent is one kernel uevent: "ACTION@DEVPATH" then KEY=VALUE fields.
type Uevent struct {
	Action, DevPath string
	Env             map[string]string
}

// ParseUevent reads one NETLINK_KOBJECT_UEVENT message from the kernel.
// Messages from udev's own netlink group ("libudev" header) are refused.
func ParseUevent(b []byte) (*Uevent, error) {
	parts := bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0})
	if len(parts) == 0 {
		return nil, fmt.Errorf("empty uevent")
	}
	head := string(parts[0])
	action, devpath, ok := strings.Cut(head, "@")
	if !ok || action == "" || devpath == "" {
		return nil, fmt.Errorf("uevent header %q: want ACTION@DEVPATH", head)
	}
	ev := &Uevent{Action: action, DevPath: devpath, Env: map[string]string{}}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(string(p), "=")
		if !ok || k == "" {
			continue
		}
		ev.Env[k] = v
	}
	return ev, nil
}

// Follow loads the modules for devices the kernel adds until ctx ends: the
// devices that appear only after their parent's driver loaded (SCSI disks
// behind an HBA, USB devices behind their controller, PHYs). Each event,
// handled or not, is passed to seen (may be nil) once its modules have
// loaded, for whoever waits for the device tree to settle. It returns once
// listening has begun, or with the error that kept it from listening.
func (l *Loader) Follow(ctx context.Context, seen func(*Uevent)) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return fmt.Errorf("uevent socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("uevent bind: %w", err)
	}
	// Wake the reader now and then so that it sees ctx end.
	tv := unix.NsecToTimeval((500 * time.Millisecond).Nanoseconds())
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	go func() {
		defer unix.Close(fd)
		buf := make([]byte, 64<<10)
		for ctx.Err() == nil {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil || n <= 0 {
				continue
			}
			ev, err := ParseUevent(buf[:n])
			if err != nil {
				continue
			}
			if m := ev.Env["MODALIAS"]; ev.Action == "add" && m != "" {
				for _, mod := range l.Index.Match(m) {
					if err := l.Load(mod); err != nil && l.Log != nil {
						l.Log.Debug("module for a new device not loaded", "modalias", m, "module", mod, "err", err)
					}
				}
			}
			// After the loads: a module that took seconds to load is
			// activity too, and what it adds comes after it.
			if seen != nil {
				seen(ev)
			}
		}
	}()
	return nil
}
