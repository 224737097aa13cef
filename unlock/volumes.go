package unlock

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Volume is one LUKS volume found on the host.
type Volume struct {
	Path     string // /dev/vda2
	PartName string // the GPT partition's name, as on disk: escape it before showing
	Header   *Header
	Size     int64 // bytes of the whole device
	Err      error // the header could not be read: shown, never tried
}

func (v Volume) String() string {
	if v.Err != nil {
		return fmt.Sprintf("%s  unreadable LUKS header: %v", v.Path, v.Err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  LUKS%d", v.Path, v.Header.Version)
	// Names from the disk are quoted with Go's escapes: a label can hold
	// anything, terminal escape sequences included.
	if v.Header.Label != "" {
		fmt.Fprintf(&b, "  label %s", strconv.Quote(v.Header.Label))
	}
	if v.PartName != "" {
		fmt.Fprintf(&b, "  partition %s", strconv.Quote(v.PartName))
	}
	if v.Header.Encryption != "" {
		fmt.Fprintf(&b, "  %s", esc(v.Header.Encryption))
	}
	fmt.Fprintf(&b, "  uuid %s  %s", esc(v.Header.UUID), HumanBytes(v.Size))
	return b.String()
}

// esc escapes what a string from the disk holds that is not printable,
// without quoting it.
func esc(s string) string {
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

// HumanBytes formats a size for people.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Scan lists the LUKS volumes among the block devices named in sysBlock
// (normally /sys/class/block), whose nodes are in devDir (normally /dev).
func Scan(sysBlock, devDir string) ([]Volume, error) {
	ents, err := os.ReadDir(sysBlock)
	if err != nil {
		return nil, fmt.Errorf("list block devices: %w", err)
	}
	var vols []Volume
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") || strings.HasPrefix(name, "dm-") {
			continue
		}
		path := filepath.Join(devDir, name)
		f, err := os.Open(path)
		if err != nil {
			continue // e.g. an empty CD drive
		}
		h, err := ReadHeader(f)
		f.Close()
		if errors.Is(err, ErrNotLUKS) || errors.Is(err, io.EOF) {
			continue
		}
		vols = append(vols, Volume{Path: path, Header: h, Err: err, Size: sectors(filepath.Join(sysBlock, name, "size")) * 512,
			PartName: partName(filepath.Join(sysBlock, name, "uevent"))})
	}
	sort.Slice(vols, func(i, j int) bool { return vols[i].Path < vols[j].Path })
	return vols, nil
}

// partName reads PARTNAME from a block device's uevent ("" if none).
func partName(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PARTNAME="); ok {
			return v
		}
	}
	return ""
}

func sectors(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}
