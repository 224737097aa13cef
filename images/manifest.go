package images

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Artefact is one built file.
type Artefact struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Manifest lists what a build made.
type Manifest struct {
	Built         time.Time  `json:"built"`
	Kernel        string     `json:"kernel_package"`
	KernelVersion string     `json:"kernel_package_version"`
	Modules       []Module   `json:"modules"`
	Firmware      []Firmware `json:"firmware"`
	// FirmwareMissing names firmware files a module may ask for that no
	// package of FirmwarePackages has: "module: file".
	FirmwareMissing []string `json:"firmware_missing,omitempty"`
	// InitramfsUncompressed is the initramfs's size before zstd.
	InitramfsUncompressed int64      `json:"initramfs_uncompressed"`
	Artefacts             []Artefact `json:"artefacts"`
}

// InitramfsName is the RAM image's initramfs as served: zstd-compressed.
const InitramfsName = "initramfs.cpio.zst"

// Module is one kernel module in the image and where it came from.
type Module struct {
	Name    string `json:"name"`
	File    string `json:"file"` // relative to /lib/modules/VERSION
	Package string `json:"package"`
	Version string `json:"version"`
	Size    int64  `json:"size"`
}

// Hash returns the artefact entry of dir/name.
func Hash(dir, name string) (Artefact, error) {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return Artefact{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Artefact{}, err
	}
	return Artefact{Name: name, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

// Write writes dir/manifest.json.
func (m *Manifest) Write(dir string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "manifest.json"), append(b, '\n'), 0o644)
}
