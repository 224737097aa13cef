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
	Built     time.Time  `json:"built"`
	Kernel    string     `json:"kernel_package"`
	Modules   []string   `json:"modules"`
	Artefacts []Artefact `json:"artefacts"`
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
