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

	"filippo.io/age"

	"github.com/lifeboat-boot/lifeboat/pxe/recordings/sealed"
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
	Size     int64     `json:"size"` // bytes stored (sealed: with the encryption's overhead)
	Modified time.Time `json:"modified"`
	// Sealed: encrypted to the customer's age recipient; only their key
	// reads it.
	Sealed bool `json:"sealed,omitempty"`
	// Owner is the customer who owned the host when the recording began:
	// theirs to read, whoever owns the host later.
	Owner string `json:"owner,omitempty"`
}

// Store keeps recordings under Dir/HOST/BOOT.NAME.cast, or .cast.age when
// sealed.
type Store struct {
	Dir string
	// Recipient returns the age recipient of the host's customer ("" for
	// none); a recording begun while there is one is sealed to it.
	Recipient func(host string) (string, error)
	// Owner returns the host's customer now: a new recording is theirs
	// (kept beside it, as BOOT.NAME.owner).
	Owner func(host string) (string, error)
	mu    sync.Mutex
}

// ID names a recording.
func ID(boot, name string) string { return boot + "." + name }

func (s *Store) path(host, boot, name string) (string, error) {
	if !hostRE.MatchString(host) || !nameRE.MatchString(boot) || !nameRE.MatchString(name) {
		return "", fmt.Errorf("recording %s/%s.%s: bad name (want lower-case letters, digits and dashes)", host, boot, name)
	}
	return filepath.Join(s.Dir, host, ID(boot, name)+".cast"), nil
}

// recipient returns host's customer's recipient, nil for none.
func (s *Store) recipient(host string) (age.Recipient, error) {
	if s.Recipient == nil {
		return nil, nil
	}
	r, err := s.Recipient(host)
	if err != nil || r == "" {
		return nil, err
	}
	return age.ParseX25519Recipient(r)
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
	if _, err := os.Stat(p + ".age"); err == nil {
		to, err := s.recipient(host)
		if err == nil && to == nil {
			err = errors.New("the customer's age recipient was removed during the recording")
		}
		if err != nil {
			return 0, err
		}
		return s.appendSealed(p+".age", off, data, to)
	}
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		if err := s.keepOwner(host, p); err != nil {
			return 0, err
		}
		to, err := s.recipient(host)
		if err != nil {
			return 0, fmt.Errorf("the customer's age recipient: %w", err)
		}
		if to != nil {
			return s.appendSealed(p+".age", off, data, to)
		}
	}
	f, size, err := openRecording(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fresh, err := placement(size, off, func() bool {
		have := make([]byte, len(data))
		_, err := f.ReadAt(have, off)
		return err == nil && bytes.Equal(have, data)
	})
	if err != nil || !fresh {
		return size, err
	}
	if size+int64(len(data)) > MaxSize {
		return size, fmt.Errorf("recording would pass %d MiB", MaxSize>>20)
	}
	if err := writeSynced(f, data, off); err != nil {
		return size, err
	}
	return size + int64(len(data)), nil
}

// keepOwner writes, once, whose a new recording at p is.
func (s *Store) keepOwner(host, p string) error {
	if s.Owner == nil {
		return nil
	}
	if _, err := os.Stat(p + ".owner"); err == nil {
		return nil
	}
	who, err := s.Owner(host)
	if err != nil {
		return fmt.Errorf("the host's customer: %w", err)
	}
	f, err := os.OpenFile(p+".owner", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(who); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// openRecording opens (creating if needed) a recording file for appending,
// and returns its size on disk.
func openRecording(p string) (*os.File, int64, error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// writeSynced writes b at off and makes it durable: the agent forgets a
// piece once it is acknowledged.
func writeSynced(f *os.File, b []byte, off int64) error {
	if _, err := f.WriteAt(b, off); err != nil {
		return err
	}
	return f.Sync()
}

// appendSealed adds a piece to a sealed recording, made (sealed to to) if
// new. Its size is in plaintext bytes, as the agent counts.
func (s *Store) appendSealed(p string, off int64, data []byte, to age.Recipient) (int64, error) {
	f, onDisk, err := openRecording(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if onDisk == 0 {
		if to == nil {
			return 0, errors.New("sealed recording without a recipient")
		}
		if _, err := f.WriteAt([]byte(sealed.Magic), 0); err != nil {
			return 0, err
		}
		onDisk = int64(len(sealed.Magic))
	}
	segs, err := sealed.Segments(f, onDisk)
	if err != nil {
		return 0, err
	}
	var size int64
	if n := len(segs); n > 0 {
		size = segs[n-1].Off + int64(segs[n-1].Plain)
	}
	fresh, err := placement(size, off, func() bool {
		for _, sg := range segs {
			if sg.Off == off && int(sg.Plain) == len(data) {
				return true // its bytes cannot be compared: sealed
			}
		}
		return false
	})
	if err != nil || !fresh {
		return size, err
	}
	if onDisk+int64(len(data)) > MaxSize {
		return size, fmt.Errorf("recording would pass %d MiB", MaxSize>>20)
	}
	seg, err := sealed.Seal(off, data, to)
	if err != nil {
		return size, err
	}
	if err := writeSynced(f, seg, onDisk); err != nil {
		return size, err
	}
	return size + int64(len(data)), nil
}

// placement decides where a piece that starts at off goes in a recording
// of size bytes: at its end (fresh), nowhere (a retry of a piece stored, as
// stored says), or it is refused (a gap, or another piece in its place).
func placement(size, off int64, stored func() bool) (fresh bool, err error) {
	switch {
	case off == size:
		return true, nil
	case off < size && stored():
		return false, nil
	case off < size:
		return false, fmt.Errorf("%w: a different piece at %d is stored already", ErrOffset, off)
	}
	return false, fmt.Errorf("%w: offset %d, the recording holds %d bytes", ErrOffset, off, size)
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
		sealed := strings.HasSuffix(p, ".cast.age")
		if d.IsDir() || (!strings.HasSuffix(p, ".cast") && !sealed) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		id := strings.TrimSuffix(strings.TrimSuffix(d.Name(), ".age"), ".cast")
		boot, _, _ := strings.Cut(id, ".")
		owner, _ := os.ReadFile(strings.TrimSuffix(p, ".age") + ".owner")
		out = append(out, Info{ID: id, Host: filepath.Base(filepath.Dir(p)), Boot: boot, Size: fi.Size(), Modified: fi.ModTime().UTC(), Sealed: sealed,
			Owner: string(owner)})
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
			if in.Sealed {
				p += ".age"
			}
			f, err := os.Open(p)
			return f, in, err
		}
	}
	return nil, Info{}, fmt.Errorf("%w: %q", ErrNotFound, id)
}
