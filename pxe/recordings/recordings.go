package recordings

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// MaxSize bounds one recording: a shell that prints more is cut off by the
// agent when its pieces are refused.
const MaxSize = 256 << 20

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
	hostRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	// ErrNotFound: no such recording.
	ErrNotFound = errors.New("no such recording")
	// ErrOffset: a piece does not start where the recording ends.
	ErrOffset = errors.New("piece does not start where the recording ends")
)

// Info describes one recording. ID is BOOT.NAME.
type Info struct {
	ID       string    `json:"id"`
	Host     string    `json:"host"`
	Boot     string    `json:"boot"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
}

// Store keeps recordings under Dir/HOST/BOOT.NAME.cast.
type Store struct {
	Dir string
	mu  sync.Mutex
}

// ID names a recording.
func ID(boot, name string) string { return boot + "." + name }

func (s *Store) path(host, boot, name string) (string, error) {
	if !hostRE.MatchString(host) || !nameRE.MatchString(boot) || !nameRE.MatchString(name) {
		return "", fmt.Errorf("recording %s/%s.%s: bad name (want lower-case letters, digits and dashes)", host, boot, name)
	}
	return filepath.Join(s.Dir, host, ID(boot, name)+".cast"), nil
}

// Append stores data at offset off of the recording and returns its size.
// A piece already stored (same offset, same bytes) is accepted again.
func (s *Store) Append(host, boot, name string, off int64, data []byte) (int64, error) {
	p, err := s.path(host, boot, name)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return 0, err
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	switch {
	case off == size:
	case off < size && off+int64(len(data)) <= size:
		have := make([]byte, len(data))
		if _, err := f.ReadAt(have, off); err != nil || !bytes.Equal(have, data) {
			return size, fmt.Errorf("%w: a different piece at %d is stored already", ErrOffset, off)
		}
		return size, nil // a retry of a piece stored
	default:
		return size, fmt.Errorf("%w: offset %d, the recording holds %d bytes", ErrOffset, off, size)
	}
	if size+int64(len(data)) > MaxSize {
		return size, fmt.Errorf("recording would pass %d MiB", MaxSize>>20)
	}
	if _, err := f.WriteAt(data, off); err != nil {
		return size, err
	}
	if err := f.Sync(); err != nil {
		return size, err
	}
	return size + int64(len(data)), nil
}

// List returns every recording, newest first.
func (s *Store) List() ([]Info, error) {
	var out []Info
	err := filepath.WalkDir(s.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == s.Dir {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".cast") {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		id := strings.TrimSuffix(d.Name(), ".cast")
		boot, _, _ := strings.Cut(id, ".")
		out = append(out, Info{ID: id, Host: filepath.Base(filepath.Dir(p)), Boot: boot, Size: fi.Size(), Modified: fi.ModTime().UTC()})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Modified.After(out[j].Modified) })
	return out, err
}

// Open returns a recording by ID with its description.
func (s *Store) Open(id string) (io.ReadSeekCloser, Info, error) {
	list, err := s.List()
	if err != nil {
		return nil, Info{}, err
	}
	for _, in := range list {
		if in.ID == id {
			boot, name, _ := strings.Cut(id, ".")
			p, err := s.path(in.Host, boot, name)
			if err != nil {
				return nil, Info{}, err
			}
			f, err := os.Open(p)
			return f, in, err
		}
	}
	return nil, Info{}, fmt.Errorf("%w: %q", ErrNotFound, id)
}
