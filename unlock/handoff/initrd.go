package handoff

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// Flavour is how an OS initrd finds the keys of its LUKS volumes.
type Flavour int

const (
	// FlavourUnknown: no marker found; keys go where systemd looks.
	FlavourUnknown Flavour = iota
	// FlavourSystemd: systemd-cryptsetup (dracut, mkinitcpio sd-encrypt,
	// newer Ubuntu): /etc/cryptsetup-keys.d/NAME.key.
	FlavourSystemd
	// FlavourInitramfsTools: Debian/Ubuntu initramfs-tools with
	// cryptsetup-initramfs: /cryptroot/crypttab names the key file.
	FlavourInitramfsTools
	// FlavourMkinitcpio: Arch's busybox "encrypt" hook, which uses
	// /crypto_keyfile.bin when it exists.
	FlavourMkinitcpio
)

func (f Flavour) String() string {
	return [...]string{"another kind (systemd's key place is used)", "systemd-cryptsetup", "initramfs-tools (cryptsetup-initramfs)", "mkinitcpio encrypt hook"}[f]
}

// Initrd is what lifeboat needs to know of an OS initrd.
type Initrd struct {
	Flavour Flavour
	// Crypttab is the initrd's own crypttab: etc/crypttab (systemd) or
	// cryptroot/crypttab (initramfs-tools), as found.
	Crypttab []CrypttabEntry
	// Archives counts the cpio archives read (an early microcode one,
	// then the main one, for example); Compression names theirs.
	Archives    int
	Compression []string
}

// CrypttabEntry is one line of a crypttab(5).
type CrypttabEntry struct {
	Name, Device, KeyFile, Options string
}

// Limits on what Inspect reads: an initrd is outside input.
const (
	maxInitrdFiles = 200_000
	maxInitrdBytes = 2 << 30 // uncompressed
	maxCrypttab    = 64 << 10
)

// Inspect reads an OS initrd: one or more cpio archives, each plain or
// compressed (gzip, xz, zstd, lz4 legacy), one after another, as the kernel
// unpacks them; an early microcode archive comes first, plain.
func Inspect(r io.Reader) (*Initrd, error) {
	in := &Initrd{}
	markers := map[string]bool{}
	crypttabs := map[string][]byte{}
	br := bufio.NewReaderSize(r, 64<<10)
	total := int64(0)
	files := 0
	for {
		// Archives are padded with zeros to 4 (or 512) bytes.
		if err := skipZeros(br); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		magic, _ := br.Peek(6)
		var src io.Reader
		kind := ""
		switch {
		case bytes.HasPrefix(magic, []byte("07070")):
			src, kind = br, "none"
		case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
			z, err := gzip.NewReader(br)
			if err != nil {
				return nil, fmt.Errorf("initrd: gzip: %w", err)
			}
			src, kind = z, "gzip"
		case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
			z, err := xz.NewReader(br)
			if err != nil {
				return nil, fmt.Errorf("initrd: xz: %w", err)
			}
			src, kind = z, "xz"
		case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
			z, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(256<<20))
			if err != nil {
				return nil, fmt.Errorf("initrd: zstd: %w", err)
			}
			defer z.Close()
			src, kind = z, "zstd"
		case bytes.HasPrefix(magic, []byte{0x02, 0x21, 0x4c, 0x18}), bytes.HasPrefix(magic, []byte{0x04, 0x22, 0x4d, 0x18}):
			src, kind = lz4.NewReader(br), "lz4"
		default:
			return nil, fmt.Errorf("initrd: archive %d: unknown format (starts % x): want cpio, gzip, xz, zstd or lz4", in.Archives+1, magic)
		}
		in.Compression = append(in.Compression, kind)
		// A compressed stream holds one or more archives; a plain one is
		// read up to its trailer, and the loop goes on after it.
		n, err := readCpio(src, kind != "none", func(name string, size int64, data func(max int64) ([]byte, error)) error {
			files++
			if files > maxInitrdFiles {
				return errors.New("initrd: too many files")
			}
			total += size
			if total > maxInitrdBytes {
				return errors.New("initrd: too large")
			}
			name = path.Clean("/" + name)[1:]
			base := path.Base(name)
			switch {
			case base == "systemd-cryptsetup":
				markers["systemd"] = true
			case name == "scripts/local-top/cryptroot" || name == "conf/conf.d/cryptroot":
				markers["initramfs-tools"] = true
			case name == "hooks/encrypt":
				markers["mkinitcpio"] = true
			case name == "etc/crypttab" || name == "cryptroot/crypttab":
				b, err := data(maxCrypttab)
				if err != nil {
					return err
				}
				crypttabs[name] = b
			}
			return nil
		})
		in.Archives += n
		if err != nil {
			return nil, err
		}
		if kind != "none" {
			break // the kernel's decompressor takes the rest of the file too
		}
	}
	if in.Archives == 0 {
		return nil, errors.New("initrd: no cpio archive in it")
	}
	switch {
	case markers["initramfs-tools"]:
		in.Flavour = FlavourInitramfsTools
		in.Crypttab = ParseCrypttab(crypttabs["cryptroot/crypttab"])
	case markers["systemd"]:
		in.Flavour = FlavourSystemd
		in.Crypttab = ParseCrypttab(crypttabs["etc/crypttab"])
	case markers["mkinitcpio"]:
		in.Flavour = FlavourMkinitcpio
	default:
		in.Crypttab = ParseCrypttab(crypttabs["etc/crypttab"])
	}
	return in, nil
}

func skipZeros(br *bufio.Reader) error {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return err
		}
		if b != 0 {
			return br.UnreadByte()
		}
	}
}

// readCpio reads newc ("070701"/"070702") archives from r, calling visit
// for each file; data reads the file's contents (up to max bytes) if
// wanted, else they are skipped. With more set it reads archive after
// archive until r ends; else it stops after the first trailer. It returns
// how many archives it read.
func readCpio(r io.Reader, more bool, visit func(name string, size int64, data func(max int64) ([]byte, error)) error) (int, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	archives := 0
	var hdr [110]byte
	for {
		if archives > 0 || more {
			if err := skipZeros(br); err == io.EOF {
				return archives, nil
			} else if err != nil {
				return archives, err
			}
		}
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return archives, fmt.Errorf("initrd: cpio header: %w", err)
		}
		if string(hdr[:6]) != "070701" && string(hdr[:6]) != "070702" {
			if archives > 0 && !more {
				return archives, nil
			}
			return archives, fmt.Errorf("initrd: not a newc cpio header (%q)", hdr[:6])
		}
		field := func(i int) (int64, error) {
			v, err := strconv.ParseUint(string(hdr[6+8*i:14+8*i]), 16, 32)
			return int64(v), err
		}
		size, err1 := field(6)
		nameSize, err2 := field(11)
		if err1 != nil || err2 != nil || nameSize < 1 || nameSize > 4096 {
			return archives, errors.New("initrd: corrupt cpio header")
		}
		nameBuf := make([]byte, nameSize)
		if _, err := io.ReadFull(br, nameBuf); err != nil {
			return archives, fmt.Errorf("initrd: cpio name: %w", err)
		}
		name := string(bytes.TrimRight(nameBuf, "\x00"))
		if err := discard(br, pad4(110+nameSize)); err != nil {
			return archives, err
		}
		if name == "TRAILER!!!" {
			archives++
			if err := discard(br, size+pad4(size)); err != nil {
				return archives, err
			}
			if !more {
				return archives, nil
			}
			continue
		}
		read := false
		err := visit(name, size, func(max int64) ([]byte, error) {
			if size > max {
				return nil, fmt.Errorf("initrd: %s is larger than %d bytes", name, max)
			}
			read = true
			b := make([]byte, size)
			_, err := io.ReadFull(br, b)
			return b, err
		})
		if err != nil {
			return archives, err
		}
		skip := size
		if read {
			skip = 0
		}
		if err := discard(br, skip+pad4(size)); err != nil {
			return archives, err
		}
	}
}

func pad4(n int64) int64 { return (4 - n%4) % 4 }

func discard(br *bufio.Reader, n int64) error {
	if _, err := io.CopyN(io.Discard, br, n); err != nil {
		return fmt.Errorf("initrd: cut short: %w", err)
	}
	return nil
}

// ParseCrypttab reads crypttab(5) lines: name, device, key file, options.
func ParseCrypttab(b []byte) []CrypttabEntry {
	var out []CrypttabEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		e := CrypttabEntry{Name: f[0], Device: f[1]}
		if len(f) > 2 {
			e.KeyFile = f[2]
		}
		if len(f) > 3 {
			e.Options = f[3]
		}
		out = append(out, e)
	}
	return out
}

// formatCrypttab writes entries back, one a line.
func formatCrypttab(es []CrypttabEntry) []byte {
	var b bytes.Buffer
	for _, e := range es {
		key, opts := cmpOr(e.KeyFile, "none"), cmpOr(e.Options, "luks")
		fmt.Fprintf(&b, "%s %s %s %s\n", e.Name, e.Device, key, opts)
	}
	return b.Bytes()
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// matches says whether a crypttab device names the volume with uuid.
func (e CrypttabEntry) matches(uuid, path string) bool {
	d := e.Device
	if v, ok := strings.CutPrefix(d, "UUID="); ok {
		return strings.EqualFold(strings.Trim(v, `"`), uuid)
	}
	if v, ok := strings.CutPrefix(d, "/dev/disk/by-uuid/"); ok {
		return strings.EqualFold(v, uuid)
	}
	return d == path
}

// keyless reports whether the entry asks for a passphrase (no key file).
func (e CrypttabEntry) keyless() bool {
	return e.KeyFile == "" || e.KeyFile == "none" || e.KeyFile == "-"
}
