package shadow

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Change is one user's new hash, ready to be written.
type Change struct {
	User string
	Old  string // the hash it replaces (may be "!" or "*": no password)
	// Before and After are SHA-256 digests of the whole file: what the
	// audit record names instead of any hash.
	Before, After string
	data          []byte
}

var (
	ErrNoUser   = errors.New("no such user in /etc/shadow")
	ErrTwoLines = errors.New("the user has more than one line in /etc/shadow")
)

// Replace returns shadow with the password field of user's line set to
// hash, every other byte unchanged.
func Replace(shadow []byte, user, hash string) (*Change, error) {
	if user == "" || strings.ContainsAny(user, ":\n") {
		return nil, fmt.Errorf("user %q: not a user name", user)
	}
	if hash == "" || strings.ContainsAny(hash, ":\n") {
		return nil, errors.New("the new hash may not be empty or hold ':' or a newline")
	}
	start, end, found := -1, -1, 0
	for off := 0; off < len(shadow); {
		n := bytes.IndexByte(shadow[off:], '\n')
		next := len(shadow)
		if n >= 0 {
			next = off + n + 1
		}
		line := shadow[off:next]
		name, rest, ok := bytes.Cut(line, []byte(":"))
		if ok && string(name) == user {
			found++
			start = off + len(name) + 1
			end = start + bytes.IndexAny(rest, ":\n")
			if end < start {
				end = next // a line of just "user:hash" without a newline
			}
		}
		off = next
	}
	switch found {
	case 0:
		return nil, fmt.Errorf("%w: %q", ErrNoUser, user)
	case 1:
	default:
		return nil, fmt.Errorf("%w: %q has %d (fix the file by hand)", ErrTwoLines, user, found)
	}
	out := make([]byte, 0, len(shadow)-(end-start)+len(hash))
	out = append(out, shadow[:start]...)
	out = append(out, hash...)
	out = append(out, shadow[end:]...)
	return &Change{User: user, Old: string(shadow[start:end]), Before: digest(shadow), After: digest(out), data: out}, nil
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Apply writes the change to path in place of the file: a new file in the
// same folder with the old one's owner, mode and extended attributes, synced,
// then renamed over it, so that a power cut leaves the old file or the new,
// never half of one. It refuses if the file changed since it was read.
func (c *Change) Apply(path string) error {
	cur, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if digest(cur) != c.Before {
		return fmt.Errorf("%s changed while the new password was being made; nothing written, try again", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return err
	}
	attrs, err := xattrs(path)
	if err != nil {
		return fmt.Errorf("read %s's extended attributes: %w", path, err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".lifeboat")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o000)
	if err != nil {
		return fmt.Errorf("%w (a leftover from an interrupted reset? remove it)", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(c.data); err != nil {
		return err
	}
	if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := f.Chmod(os.FileMode(st.Mode & 0o7777)); err != nil {
		return err
	}
	for name, val := range attrs {
		if err := unix.Fsetxattr(int(f.Fd()), name, val, 0); err != nil {
			return fmt.Errorf("copy extended attribute %s: %w", name, err)
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// xattrs reads every extended attribute of path (security.selinux among them).
func xattrs(path string) (map[string][]byte, error) {
	sz, err := unix.Llistxattr(path, nil)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, err
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(path, buf)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		n, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			return nil, err
		}
		val := make([]byte, n)
		if n, err = unix.Lgetxattr(path, name, val); err != nil {
			return nil, err
		}
		out[name] = val[:n]
	}
	return out, nil
}

// Generate makes a password to read out over a phone: 20 characters of
// base32 (A-Z, 2-7: no 0/O or 1/I to mix up), in groups of 5; 100 bits.
func Generate() []byte {
	t := rand.Text()[:20]
	return []byte(t[:5] + "-" + t[5:10] + "-" + t[10:15] + "-" + t[15:])
}
