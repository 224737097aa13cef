package consoles

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Paths the image reads.
const (
	ActivePath = "/sys/class/tty/console/active"
	SPCRPath   = "/sys/firmware/acpi/tables/SPCR"
	SysTTY     = "/sys/class/tty"
)

// SPCR is what the firmware's Serial Port Console Redirection table says
// of its console port.
type SPCR struct {
	IO      bool   // the address is an I/O port (else memory-mapped)
	Address uint64 // 0x3f8, 0x2f8, or an MMIO base
	Baud    int    // 0: as the firmware left it
}

var spcrBaud = map[byte]int{3: 9600, 4: 19200, 6: 57600, 7: 115200}

// ParseSPCR reads an SPCR table (ACPI header included), as
// /sys/firmware/acpi/tables/SPCR gives it.
func ParseSPCR(b []byte) (SPCR, error) {
	if len(b) < 80 || string(b[:4]) != "SPCR" {
		return SPCR{}, errors.New("SPCR: not an SPCR table (under 80 bytes, or another signature)")
	}
	if n := binary.LittleEndian.Uint32(b[4:8]); int(n) > len(b) || n < 80 {
		return SPCR{}, fmt.Errorf("SPCR: length %d does not fit the %d bytes read", n, len(b))
	}
	var sum byte
	for _, c := range b[:binary.LittleEndian.Uint32(b[4:8])] {
		sum += c
	}
	if sum != 0 {
		return SPCR{}, errors.New("SPCR: bad checksum")
	}
	space := b[40]
	if space != 0 && space != 1 {
		return SPCR{}, fmt.Errorf("SPCR: address space %d is neither memory nor I/O", space)
	}
	s := SPCR{IO: space == 1, Address: binary.LittleEndian.Uint64(b[44:52]), Baud: spcrBaud[b[58]]}
	if s.Address == 0 {
		return SPCR{}, errors.New("SPCR: no address")
	}
	return s, nil
}

// Table is the SPCR table (revision 2) of s: what a machine with that
// console port carries, for QEMU's -acpitable in the tests.
func (s SPCR) Table() []byte {
	b := make([]byte, 80)
	copy(b, "SPCR")
	binary.LittleEndian.PutUint32(b[4:], 80)
	b[8] = 2
	copy(b[10:], "LIFEBT")
	copy(b[16:], "SPCRTEST")
	if s.IO {
		b[40] = 1
	}
	b[41], b[43] = 8, 1 // 8-bit registers, byte access
	binary.LittleEndian.PutUint64(b[44:], s.Address)
	for code, baud := range spcrBaud {
		if baud == s.Baud {
			b[58] = code
		}
	}
	b[60] = 1 // one stop bit
	var sum byte
	for _, c := range b {
		sum += c
	}
	b[9] = -sum
	return b
}

// Device finds the tty of the SPCR port under sysTTY (/sys/class/tty):
// the ttyS whose port (I/O) or iomem_base (MMIO) is the table's address.
func (s SPCR) Device(sysTTY string) (string, error) {
	ents, err := os.ReadDir(sysTTY)
	if err != nil {
		return "", err
	}
	attr := "iomem_base"
	if s.IO {
		attr = "port"
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "ttyS") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(sysTTY, e.Name(), attr))
		if err != nil {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 0, 64)
		if err == nil && v == s.Address && v != 0 {
			return "/dev/" + e.Name(), nil
		}
	}
	return "", fmt.Errorf("no serial port at %#x", s.Address)
}

// Console is a console device, with the speed to set on it (0: leave it
// as the kernel set it).
type Console struct {
	Path string
	Baud int
}

// All lists the machine's consoles: the kernel's (activePath, "tty0
// ttyS0"; tty0 is the VGA console's current terminal, tty1 at boot), then
// the SPCR port if the kernel's are not already writing to it. Without
// sysfs it is /dev/console alone.
func All(activePath, spcrPath, sysTTY string) []Console {
	var out []Console
	if b, err := os.ReadFile(activePath); err == nil {
		for _, name := range strings.Fields(string(b)) {
			if name == "tty0" {
				name = "tty1"
			}
			out = append(out, Console{Path: "/dev/" + name})
		}
	}
	if len(out) == 0 {
		out = append(out, Console{Path: "/dev/console"})
	}
	b, err := os.ReadFile(spcrPath)
	if err != nil {
		return out
	}
	s, err := ParseSPCR(b)
	if err != nil {
		return out
	}
	dev, err := s.Device(sysTTY)
	if err != nil {
		return out
	}
	for _, c := range out {
		if c.Path == dev {
			return out
		}
	}
	return append(out, Console{Path: dev, Baud: s.Baud})
}

// Paths returns the consoles' device paths.
func Paths(cs []Console) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Path
	}
	return out
}

// Writer writes to every console that opens; one that fails to open or
// to write is left out, and the others go on.
type Writer struct {
	mu  sync.Mutex
	out []io.Writer
}

// Open opens the consoles for writing, setting each one's speed if it
// has one to set.
func Open(cs []Console) *Writer {
	w := &Writer{}
	for _, c := range cs {
		f, err := os.OpenFile(c.Path, os.O_WRONLY|unix.O_NOCTTY, 0)
		if err != nil {
			continue
		}
		if c.Baud != 0 {
			_ = setBaud(int(f.Fd()), c.Baud)
		}
		w.out = append(w.out, f)
	}
	return w
}

// Write writes p to every console; it fails only when no console took it.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ok := false
	for _, o := range w.out {
		if _, err := o.Write(p); err == nil {
			ok = true
		}
	}
	if !ok && len(w.out) > 0 {
		return 0, errors.New("no console took the message")
	}
	return len(p), nil
}

var baudFlag = map[int]uint32{9600: unix.B9600, 19200: unix.B19200, 57600: unix.B57600, 115200: unix.B115200}

// setBaud puts a serial port in raw 8N1 output at baud, with no modem
// control (a BMC's port has no carrier to wait for).
func setBaud(fd, baud int) error {
	speed, ok := baudFlag[baud]
	if !ok {
		return nil
	}
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Cflag &^= unix.CBAUD | unix.CSIZE | unix.PARENB | unix.CSTOPB | unix.CRTSCTS
	t.Cflag |= speed | unix.CS8 | unix.CLOCAL | unix.CREAD
	t.Oflag |= unix.OPOST | unix.ONLCR
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}
