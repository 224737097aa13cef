package vm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// VLAN is the server's end of a tagged boot network on the namespace's
// bridge: an interface (Iface, addressed CIDR) that carries untagged what
// crosses the bridge tagged with Tag, like a switch port's VLAN
// sub-interface. This machine's kernel has neither 802.1Q devices nor
// VLAN-filtering bridges, so the tagging happens here, in user space,
// between two tap devices: trunk on the bridge and Iface off it. The hosts
// in QEMU tag and untag with their own kernel's 8021q.
type VLAN struct {
	Tag   int
	Iface string

	trunk, access *os.File
	wg            sync.WaitGroup
}

// AddVLAN makes the VLAN: taps vlt<tag> (on the bridge) and vl<tag>
// (addressed cidr, e.g. 10.77.120.1/24), and the copying between them,
// which runs until Close.
func (n *NS) AddVLAN(tag int, cidr string) (*VLAN, error) {
	if tag < 1 || tag > 4094 {
		return nil, fmt.Errorf("VLAN tag %d: want 1..4094", tag)
	}
	v := &VLAN{Tag: tag, Iface: fmt.Sprintf("vl%d", tag)}
	trunk := fmt.Sprintf("vlt%d", tag)
	for _, args := range [][]string{
		{"tuntap", "add", trunk, "mode", "tap"},
		{"link", "set", trunk, "master", n.Bridge},
		{"link", "set", trunk, "up"},
		{"tuntap", "add", v.Iface, "mode", "tap"},
		{"addr", "add", cidr, "dev", v.Iface},
		{"link", "set", v.Iface, "up"},
	} {
		if err := ip(append([]string{"-n", n.Name}, args...)...); err != nil {
			return nil, err
		}
	}
	err := inNS(n.Name, func() error {
		var err error
		if v.trunk, err = openTap(trunk); err != nil {
			return err
		}
		v.access, err = openTap(v.Iface)
		return err
	})
	if err != nil {
		v.Close()
		return nil, err
	}
	v.wg.Add(2)
	go v.copy(v.trunk, v.access, v.untag)
	go v.copy(v.access, v.trunk, v.addTag)
	return v, nil
}

// openTap attaches to the tap called name in the calling thread's
// namespace.
func openTap(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open tun: %w", err)
	}
	var req [unix.IFNAMSIZ + 64]byte
	copy(req[:], name)
	binary.NativeEndian.PutUint16(req[unix.IFNAMSIZ:], unix.IFF_TAP|unix.IFF_NO_PI)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req[0]))); e != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("attach tap %s: %w", name, e)
	}
	// Non-blocking, so that the runtime's poller serves it and Close ends
	// a Read in progress.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// copy moves frames from src to dst through f (nil: the frame is not
// this VLAN's), until src is closed.
func (v *VLAN) copy(src, dst *os.File, f func([]byte) []byte) {
	defer v.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if out := f(buf[:n]); out != nil {
			_, _ = dst.Write(out)
		}
	}
}

const tpid = 0x8100

// untag takes a frame tagged with the VLAN's tag off the trunk: the frame
// without its tag. Untagged frames and other VLANs' are not this VLAN's.
func (v *VLAN) untag(f []byte) []byte {
	if len(f) < 18 || binary.BigEndian.Uint16(f[12:]) != tpid || int(binary.BigEndian.Uint16(f[14:])&0x0fff) != v.Tag {
		return nil
	}
	return append(f[:12:12], f[16:]...)
}

// addTag tags a frame from the VLAN's interface for the trunk.
func (v *VLAN) addTag(f []byte) []byte {
	if len(f) < 14 {
		return nil
	}
	out := make([]byte, 0, len(f)+4)
	out = append(out, f[:12]...)
	out = binary.BigEndian.AppendUint16(out, tpid)
	out = binary.BigEndian.AppendUint16(out, uint16(v.Tag))
	return append(out, f[12:]...)
}

// Close stops the copying; the taps go with the namespace.
func (v *VLAN) Close() error {
	var errs []error
	for _, f := range []*os.File{v.trunk, v.access} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	v.wg.Wait()
	return errors.Join(errs...)
}
